"""The gateway phase: a real ``dvcbus run gateway`` on the real broker, under HTTP load.

Issue 12's benchmark: requests/s and p50/p99 from request to 202 at a fixed offered load
(500 req/s) and at saturation, beside the AMQP ingress (``send_bodies``, pipelined confirms)
in the same run, and CPU per request of the gateway process (with its audit writer child).

* The gateway runs as in production: its own SQLite store (submissions, audit trail, hop
  journal), JSON hop log lines, metrics. No router runs: what the gateway accepts waits on
  the ingress queue, whose depth proves every 202 is there (then it is purged).
* The load comes from ``benchmarks.gateway_load`` processes (aiohttp, keep-alive), whose
  CPU is measured too: on 2 cores, a generator that eats a core would be the bottleneck.
  Each generator warms up (connections, caches), says it is ready, and starts its measured
  requests when told, so every process's CPU is read over the same interval.
* Bodies are the realistic mix's messages the router would route (the gateway refuses the
  others with 4xx: they are not the path being measured).

``source`` runs the gateway of another source tree (a ``git archive`` of a commit): the
same phase on the code before a change, in the same run (``--gateway-before REF``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import (
    ROOT,
    CpuMark,
    Procs,
    QueueWatch,
    broker_pid,
    cpu_per_1k,
    declare_topology,
    free_port,
    helper_pids,
    memory_kb,
    percentile,
    wait_until,
)
from benchmarks.profiling import PySpy, top_entries
from benchmarks.workload import Workload
from bus.broker.sending import send_bodies
from bus.routing.pipeline import Forward

SENDER = "bench-http"


def snapshot(ref: str, dest: Path) -> Path:
    """The source tree of commit ``ref`` (``git archive``), to run its gateway; ``ref`` may
    also be a directory holding such a tree already (a run from a copy has no ``.git``)."""
    if Path(ref).is_dir():
        return Path(ref).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", ref], cwd=ROOT, capture_output=True, check=True, timeout=60
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=60)
    return dest


def _senders_yaml(token: str, types: list[str]) -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return (
        "version: 1\nsenders:\n"
        f"  {SENDER}:\n"
        "    agencies: [000.00.00.G22]\n"
        '    sources: ["*"]\n'
        f"    types: [{', '.join(types)}]\n"
        f"    auth: {{ bearer: [sha256:{digest}] }}\n"
        "    rate_limit: 1000000/s\n"
    )


def accepted_bodies(workload: Workload, n: int) -> list[bytes]:
    """``n`` bodies of the mix that the router would route (the gateway accepts them)."""
    out: list[bytes] = []
    while len(out) < n:
        for _ in range(min(2 * (n - len(out)) + 50, 20_000)):
            g = workload.gen.one()
            if isinstance(workload.pipeline.decide(g.body), Forward):
                out.append(g.body)
                if len(out) == n:
                    break
    return out


class _Load:
    """Load generator processes, warmed up, started together on :meth:`go`."""

    def __init__(
        self,
        logdir: Path,
        url: str,
        token: str,
        parts: list[list[bytes]],
        *,
        rate: float = 0.0,
        concurrency: int = 64,
        warmup: int = 100,
    ) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        logdir.mkdir(parents=True, exist_ok=True)
        for i, bodies in enumerate(parts):
            path = logdir / f"load-{time.monotonic_ns()}-{i}.json"
            path.write_bytes(orjson.dumps([b.decode() for b in bodies]))
            # Open loop: connections enough for a stall of the gateway to show as latency,
            # not as requests waiting for a free connection in the generator.
            connections = 128 if rate else max(concurrency, 1)
            argv = [sys.executable, "-m", "benchmarks.gateway_load", url, token, str(path),
                    "--warmup", str(warmup), "--concurrency", str(concurrency),
                    "--connections", str(connections),
                    "--wait-for-go", "--raw", "--keys"]  # fmt: skip
            if rate:
                argv += ["--rate", str(rate / len(parts))]
            self.procs.append(
                subprocess.Popen(
                    argv,
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=(logdir / f"load-{i}.log").open("ab"),
                )
            )

    @property
    def pids(self) -> dict[str, int]:
        if len(self.procs) == 1:
            return {"load generator": self.procs[0].pid}
        return {f"load generator {i}": p.pid for i, p in enumerate(self.procs)}

    def ready(self, timeout: float = 120) -> None:
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until its warm-up is done
            if not line.startswith(b'{"ready"'):
                raise RuntimeError(f"the load generator failed to warm up: {line[:200]!r}")

    def go(self) -> list[dict[str, Any]]:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        results = []
        for proc in self.procs:
            assert proc.stdout is not None
            results.append(orjson.loads(proc.stdout.readline()))
        return results

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(10)


def _merge(parts: list[dict[str, Any]], latencies_ms: list[float]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for part in parts:
        for code, n in part["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    seconds = max(p["seconds"] for p in parts)
    answered = sum(p["answered"] for p in parts)
    latencies_ms.sort()
    return {
        "requests": sum(p["requests"] for p in parts),
        "answered": answered,
        "statuses": statuses,
        "errors": {k: v for p in parts for k, v in p["errors"].items()},
        "seconds": seconds,
        "requests_per_s": round(answered / max(seconds, 1e-9), 1),
        "offered_per_s": sum(p["offered_per_s"] or 0 for p in parts) or None,
        "concurrency": sum(p["concurrency"] or 0 for p in parts) or None,
        "latency_ms": {
            q: percentile(latencies_ms, n)
            for q, n in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        },
        "send_lag_ms_p99": max((p.get("send_lag_ms") or {}).get("p99") or 0 for p in parts),
        "load_generators": len(parts),
    }


def _offer(
    ctx: Any,
    watch: QueueWatch,
    queue: str,
    pids: dict[str, int],
    url: str,
    token: str,
    bodies: list[bytes],
    *,
    rate: float = 0.0,
    concurrency: int = 64,
    processes: int = 1,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One measured load: warm up, purge the ingress, go; every 202 must be on the queue."""
    warmup = 100
    parts = [bodies[i::processes] for i in range(processes)]
    per = max(1, concurrency // processes)
    load = _Load(ctx.workdir / "gateway-load", url, token, parts, rate=rate, concurrency=per,
                 warmup=warmup)  # fmt: skip
    try:
        load.ready()
        watch.purge(queue)
        all_pids = pids | load.pids
        spy = PySpy(pids["gateway"], profile) if profile else None
        before = CpuMark.take(all_pids)
        try:
            results = load.go()
        finally:
            if spy is not None:
                spy.stop()
        after = CpuMark.take(all_pids)
    finally:
        load.stop()
    latencies = [ms for part in results for ms in part.pop("latencies_ms", [])]
    out = _merge(results, latencies)
    accepted = out["statuses"].get("202", 0)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: watch.depth(queue) >= accepted, 10, what="every 202 on the queue")
    out["on_ingress_queue"] = watch.depth(queue)
    out["cpu"] = cpu_per_1k(before, after, max(out["answered"], 1))
    if profile is not None:
        out["profile"] = {"raw": str(profile), **top_entries(profile)}
    out["cpu_us_per_request"] = {
        name: round(c["cpu_s_per_1k_msgs"] * 1000, 1) for name, c in out["cpu"].items()
    }
    watch.purge(queue)
    return out


def _amqp(ctx: Any, names: Any, bodies: list[bytes], rate: float | None) -> dict[str, Any]:
    """The same bodies published straight to the ingress over AMQP (pipelined confirms)."""
    import asyncio

    before = time.process_time()
    started = time.perf_counter()
    results = asyncio.run(send_bodies(ctx.url, names, bodies, window=1000, rate=rate))
    seconds = time.perf_counter() - started
    cpu = time.process_time() - before
    ok = [r for r in results if r.ok]
    lat = sorted((r.confirmed_at - r.published_at) * 1000 for r in ok)
    return {
        "messages": len(bodies),
        "confirmed": len(ok),
        "seconds": round(seconds, 3),
        "msgs_per_s": round(len(ok) / max(seconds, 1e-9), 1),
        "offered_per_s": rate,
        "latency_ms": {
            q: None if not lat else round(percentile(lat, n) or 0, 2)
            for q, n in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        },
        "publisher_cpu_us_per_message": round(cpu / max(len(ok), 1) * 1e6, 1),
    }


def gateway_phase(
    ctx: Any,
    workload: Workload,
    *,
    requests: int,
    rate: float = 500.0,
    seconds: float = 10.0,
    concurrency: int = 64,
    load_processes: int = 1,
    source: Path | None = None,
    amqp: bool = True,
    profile: Path | None = None,
) -> dict[str, Any]:
    """The gateway at ``rate`` req/s for ``seconds``, then ``requests`` at saturation."""
    loaded = ctx.load("g")
    names = loaded.names
    declare_topology(ctx.url, loaded.topology)
    token = secrets.token_urlsafe(24)
    senders = ctx.workdir / f"senders-{names.namespace}.yaml"
    types = sorted({t for t, _ in loaded.schemas.message_types})
    senders.write_text(_senders_yaml(token, types), encoding="utf-8")
    procs: Procs = ctx.procs(loaded, "gateway" if source is None else "gateway-before")
    procs.env["DVCBUS_SENDERS_FILE"] = str(senders)
    port = free_port()
    cwd = None
    if source is not None:  # another tree's code: first on the path, run from there
        procs.env["PYTHONPATH"] = os.pathsep.join([str(source), procs.env.get("PYTHONPATH", "")])
        cwd = source
    watch = QueueWatch(ctx.url)
    try:
        gw = procs.start(
            "gateway",
            [sys.executable, "-m", "bus.cli", "run", "gateway", "--http-port", str(port)],
            cwd=cwd,
        )
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            gw.check()
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_until(ready, 60, 0.1, what="the gateway ready")
        pids = {"gateway": gw.pid} | helper_pids({"gateway": gw.pid})
        broker = broker_pid()
        if broker:
            pids["broker (beam.smp)"] = broker
        out: dict[str, Any] = {"code": "now" if source is None else str(source)}
        n_fixed = int(rate * seconds)
        fixed_bodies = accepted_bodies(workload, n_fixed + 100)
        sat_bodies = accepted_bodies(workload, requests + 100 * load_processes)
        out["mean_body_bytes"] = round(sum(map(len, sat_bodies)) / len(sat_bodies))
        if n_fixed:
            ctx.say(f"  gateway: {n_fixed:,} requests at {rate:,.0f} req/s …")
            out["fixed_load"] = _offer(
                ctx, watch, names.ingress_queue, pids, base, token, fixed_bodies, rate=rate
            )
        ctx.say(
            f"  gateway: {requests:,} requests at saturation ({concurrency} in flight, "
            f"{load_processes} load process(es)) …"
        )
        out["saturation"] = _offer(
            ctx,
            watch,
            names.ingress_queue,
            pids,
            base,
            token,
            sat_bodies,
            concurrency=concurrency,
            processes=load_processes,
            profile=profile,
        )
        out["peak_rss_mb"] = {
            name: round(memory_kb(pid).get("VmHWM", 0) / 1024, 1)
            for name, pid in pids.items()
            if not name.startswith("broker")
        }
        gw.check()
        if amqp:
            ctx.say("  AMQP ingress, same bodies: fixed load, then saturation …")
            amqp_bodies = accepted_bodies(workload, max(requests, n_fixed))
            out["amqp_ingress"] = {}
            if n_fixed:
                out["amqp_ingress"]["fixed_load"] = _amqp(ctx, names, amqp_bodies[:n_fixed], rate)
                watch.purge(names.ingress_queue)
            out["amqp_ingress"]["saturation"] = _amqp(ctx, names, amqp_bodies[:requests], None)
            watch.purge(names.ingress_queue)
        return out
    finally:
        procs.stop_all()
        watch.close()
        ctx.drop(loaded)
