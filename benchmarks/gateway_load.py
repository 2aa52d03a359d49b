"""The gateway benchmark's load generator: its own process, an aiohttp client with keep-alive.

    python -m benchmarks.gateway_load URL TOKEN BODIES_FILE --rate 500 --seconds 10
    python -m benchmarks.gateway_load URL TOKEN BODIES_FILE --concurrency 64

``BODIES_FILE`` is a JSON list of message bodies (strings), each POSTed once to
``URL``/v1/messages with ``Authorization: Bearer TOKEN``. Two ways to offer load:

* ``--rate R``: request *i* is due at start + i/R, sent at that moment whatever the
  others are doing (open loop: a slow answer never delays the next request). Latency is
  timed from the moment it was due (no coordinated omission), the lag between due and
  sent is reported beside it, so a late load generator shows as itself.
* ``--concurrency C``: C requests in flight at all times (closed loop): the gateway's
  saturation throughput.

It prints one JSON line (after ``{"ready": true}`` with ``--wait-for-go``): statuses,
requests/s, latency percentiles (ms), and its own CPU seconds (``time.process_time``), so
the benchmark can tell whether the generator, not the gateway, was the bottleneck. The
connection pool is bounded (``--connections``) and kept alive: a new TCP connection per
request would measure the kernel, not the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson


def _percentiles(values: list[float]) -> dict[str, float | None]:
    values.sort()

    def at(q: float) -> float | None:
        if not values:
            return None
        k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
        return round(values[k] * 1000, 2)

    return {"p50": at(50), "p95": at(95), "p99": at(99), "max": at(100)}


async def _run(args: argparse.Namespace, bodies: list[bytes]) -> dict[str, Any]:
    url = args.url.rstrip("/") + "/v1/messages"
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []  # from due (rate) or sent (concurrency) to the answer read
    lags: list[float] = []  # rate only: from due to sent
    connector = aiohttp.TCPConnector(limit=args.connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(body: bytes, due: float, key: str | None = None) -> None:
            sent = time.perf_counter()
            try:
                sent_headers = headers if key is None else {**headers, "Idempotency-Key": key}
                async with session.post(url, data=body, headers=sent_headers) as resp:
                    await resp.read()
                    statuses[resp.status] += 1
            except Exception as exc:  # counted, never fatal: a refused connection is a figure
                errors[type(exc).__name__] += 1
                return
            done = time.perf_counter()
            latencies.append(done - due)
            if args.rate:
                lags.append(sent - due)

        # A few requests first, outside the figures: connections open, caches warm.
        warm = bodies[: args.warmup]
        await asyncio.gather(*(one(b, time.perf_counter()) for b in warm))
        statuses.clear()
        errors.clear()
        latencies.clear()
        lags.clear()
        if args.wait_for_go:  # several generators start their measured requests together
            sys.stdout.write('{"ready": true}\n')
            sys.stdout.flush()
            await asyncio.to_thread(sys.stdin.readline)
        measured = bodies[args.warmup :]
        prefix = f"bench-{os.getpid()}-{time.time_ns()}-"
        keys = [f"{prefix}{i}" if args.keys else None for i in range(len(measured))]
        cpu0 = time.process_time()
        started = time.perf_counter()
        if args.rate:
            tasks = []
            for i, body in enumerate(measured):
                due = started + i / args.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(body, due, keys[i])))
            await asyncio.gather(*tasks)
        else:
            queue = iter(zip(measured, keys, strict=True))

            async def worker() -> None:
                for body, key in queue:
                    await one(body, time.perf_counter(), key)

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    answered = sum(statuses.values())
    return {
        "requests": len(measured),
        "answered": answered,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": dict(errors),
        "seconds": round(elapsed, 3),
        "requests_per_s": round(answered / max(elapsed, 1e-9), 1),
        "offered_per_s": args.rate or None,
        "concurrency": None if args.rate else args.concurrency,
        "latency_ms": _percentiles(latencies),
        "send_lag_ms": _percentiles(lags) if args.rate else None,
        "cpu_s": round(cpu, 3),
        "cpu_us_per_request": round(cpu / max(answered, 1) * 1e6, 1),
        "latencies_ms": [round(x * 1000, 3) for x in latencies] if args.raw else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gateway_load")
    p.add_argument("url", help="the gateway's base URL, e.g. http://127.0.0.1:9190")
    p.add_argument("token", help="a sender's bearer token")
    p.add_argument("bodies", type=Path, help="a JSON list of message bodies (strings)")
    p.add_argument("--rate", type=float, default=0.0, help="requests/s offered (open loop)")
    p.add_argument("--concurrency", type=int, default=64, help="in flight (closed loop)")
    p.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    p.add_argument("--warmup", type=int, default=200, help="first requests not measured")
    p.add_argument(
        "--wait-for-go",
        action="store_true",
        help='after the warm-up print {"ready": true} and wait for a line on stdin',
    )
    p.add_argument("--raw", action="store_true", help="also print every latency (ms)")
    p.add_argument(
        "--keys",
        action="store_true",
        help="an Idempotency-Key on every measured request, as the Python client sends",
    )
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    bodies = [b.encode() for b in orjson.loads(args.bodies.read_bytes())]
    result = asyncio.run(_run(args, bodies))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
