"""``python -m benchmarks hotpath``: what the hostile-input checks cost per message, in µs.

The end-to-end benchmark tells the whole CPU per message, but a few microseconds are lost in
its run-to-run noise (±4-5% of 120-340 µs). Here each step the hostile-input fixes put on the
normal path is timed alone, on the realistic traffic mix, beside what it replaced or what the
path costs without it, in the same run: the duplicate-key check, the router's stamp, the
stamp's verification, copy properties as pika encodes them and as the router now does, and
the call bounds (``asyncio.timeout`` plus aiohttp's ``total``, against one watchdog each);
and the status checks of issue 13: the router's "its sender speaks for the dossier's agency"
and the dispatcher's lifecycle step beside the ordering it shares a store read with.
Best of five runs, so a busy neighbour inflates the figures less. Nothing is asserted.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import timeit
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
from aiohttp.helpers import TimeoutHandle
from pika import frame
from rich.console import Console
from rich.table import Table

from adapters.watchdog import Watchdog
from bus.broker import wire
from bus.broker.copy_encoding import CopyEncoder
from bus.broker.stamp import StampKey, body_digest, seal, verify_digest
from bus.contract.envelope import STATUS_TYPE, Message, parse
from bus.contract.rejections import Rejection
from bus.delivery import steps
from bus.delivery.ordering import position
from bus.delivery.retry import AttemptRecord
from bus.demo.traffic import TrafficGenerator
from bus.routes.lifecycle import Lifecycle
from bus.routing.pipeline import Forward, RouterPipeline
from bus.routing.reporting import ReportingRule, Speaks
from bus.settings import PROJECT_ROOT
from bus.store import StatusPosition

KEY = StampKey(b"benchmark-stamp-key-32-bytes-long")
Rows = dict[str, float]


def _per_item_us(loop: Callable[[], Any], items: int, repeat: int = 7) -> float:
    """µs of CPU per item of a call that handles ``items`` items: the best of ``repeat`` runs
    (process time, not wall time: a neighbour taking the core does not count)."""
    timer = timeit.Timer(loop, timer=time.process_time)
    loop()  # warm: first-call allocations and caches are not the steady state
    return min(timer.repeat(number=1, repeat=repeat)) / items * 1e6


def _pair_us(
    before: Callable[[], Any], after: Callable[[], Any], items: int, repeat: int = 9
) -> tuple[float, float]:
    """(before, after) µs of CPU per item, their runs alternated so that neither gets the
    machine's better moments (measured apart, whichever ran first came out slower)."""
    timers = [timeit.Timer(fn, timer=time.process_time) for fn in (before, after)]
    before()
    after()
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, timer in enumerate(timers):
            best[i] = min(best[i], timer.timeit(number=1))
    return best[0] / items * 1e6, best[1] / items * 1e6


def sample(loaded: Any, n: int, seed: int = 7) -> tuple[list[bytes], list[Forward]]:
    """``n`` bodies of the realistic mix, and the router's decision for those it forwards."""
    gen = TrafficGenerator(seed, loaded, oversized=False)
    pipeline = RouterPipeline(loaded.schemas, loaded.table, loaded.settings.max_message_bytes)
    bodies = [gen.one().body for _ in range(n)]
    forwards = [d for d in map(pipeline.decide, bodies) if isinstance(d, Forward)]
    return bodies, forwards


def _parses(body: bytes) -> bool:
    try:
        parse(body)
    except Rejection:
        return False
    return True


def router_steps(bodies: list[bytes], forwards: list[Forward]) -> dict[str, tuple[float, float]]:
    """Per router step: (µs per message before the checks, µs per message now)."""
    json_bodies = [b for b in bodies if _parses(b)]  # the normal path, not the refusals
    pretty = [orjson.dumps(orjson.loads(b), option=orjson.OPT_INDENT_2) for b in json_bodies]
    now = int(time.time())

    def loads(batch: list[bytes]) -> Callable[[], None]:
        return lambda: [orjson.loads(b) for b in batch] and None

    def parsed(batch: list[bytes]) -> Callable[[], None]:
        return lambda: [parse(b) for b in batch] and None

    def audit_digests() -> None:  # before: the audit sink hashed each hop's body itself
        for d in forwards:
            hashlib.sha256(d.body).hexdigest()

    def stamps() -> None:  # now: hashed once for the stamp, the audit reuses it (hex)
        for d in forwards:
            digest = body_digest(d.body)
            for target in d.targets:
                seal(KEY, d.message_id, target, digest)
            digest.hex()

    def pika_copies(stamped: bool) -> Callable[[], None]:
        def run() -> None:
            for d in forwards:
                shared = wire.route_headers(d.routes, d.unit_notes)
                for target in d.targets:
                    props = wire.copy_properties(
                        d.message_id, d.message_type, shared, target, "a" * 64
                    )
                    if not stamped:
                        del props.headers[wire.Header.STAMP.value]
                    frame.Header(1, len(d.body), props).marshal()

        return run

    def encoded_copies() -> None:
        for d in forwards:
            shared = wire.route_headers(d.routes, d.unit_notes)
            copies = CopyEncoder(d.message_id, d.message_type, shared, now)
            for target in d.targets:
                frame.Header(1, len(d.body), copies.copy(target, "a" * 64)).marshal()

    reporting = ReportingRule(None)
    speaks = Speaks(SimpleNamespace(agencies=("000.00.00.H26",), delegated_for=("*",)))
    statuses = [orjson.loads(d.body)["payload"] for d in forwards if d.message_type == STATUS_TYPE]

    def unchecked() -> None:  # before: the router took a status from any identified system
        for _ in forwards:
            pass

    def reporters() -> None:  # now: its sender must speak for the dossier's agency (issue 13)
        for payload in statuses:
            reporting.check("sender", speaks, payload)

    n, m = len(json_bodies), len(forwards)
    return {
        "status update: + its sender speaks for the dossier's agency": _pair_us(
            unchecked, reporters, m
        ),
        "parse (compact bodies): + duplicate-key check": _pair_us(
            loads(json_bodies), parsed(json_bodies), n
        ),
        "parse (indented bodies): + duplicate-key check": _pair_us(
            loads(pretty), parsed(pretty), n
        ),
        "body SHA-256 (audit) → SHA-256 + HMAC per copy (stamp)": _pair_us(
            audit_digests, stamps, m
        ),
        "copy properties: pika's encoder → + stamp, encoded once per message": _pair_us(
            pika_copies(stamped=False), encoded_copies, m
        ),
        "(issue 11 as first built: pika's encoder with the stamp)": _pair_us(
            pika_copies(stamped=False), pika_copies(stamped=True), m
        ),
    }


def dispatcher_steps(forwards: list[Forward], calls: int) -> dict[str, tuple[float, float]]:
    """Per dispatcher step: (µs per delivery before the checks, µs per delivery now)."""
    copies = [(d.message_id, t, d.body, seal(KEY, d.message_id, t, body_digest(d.body)))
              for d in forwards for t in d.targets]  # fmt: skip

    def audit_digests() -> None:
        for _mid, _target, body, _stamp in copies:
            hashlib.sha256(body).hexdigest()

    def verify() -> None:
        for mid, target, body, stamp in copies:
            digest = body_digest(body)
            verify_digest(KEY, mid, target, digest, stamp)
            digest.hex()

    async def bounds() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        lane, pool = Watchdog(), Watchdog()

        async def deadline_only() -> None:  # before: the dispatcher's asyncio.timeout
            for _ in range(calls):
                async with asyncio.timeout(29):
                    pass

        async def with_total() -> None:  # issue 11 as first built: + aiohttp's total
            for _ in range(calls):
                async with asyncio.timeout(29):
                    handle = TimeoutHandle(loop, 15, ceil_threshold=5)
                    timer = handle.start()
                    with handle.timer():
                        pass
                    if timer is not None:
                        timer.cancel()

        async def watchdogs() -> None:  # now: one watchdog per lane, one per target's pool
            for _ in range(calls):
                with lane.bound(29), pool.bound(15):
                    pass

        out: dict[str, float] = {}
        for name, body in (("before", deadline_only), ("total", with_total), ("now", watchdogs)):
            best = float("inf")
            await body()  # warm
            for _ in range(7):
                started = time.process_time()
                await body()
                best = min(best, time.process_time() - started)
            out[name] = best / calls * 1e6
        return out

    lifecycle = Lifecycle.load(PROJECT_ROOT / "statuses.yaml")
    record = AttemptRecord(1, 0.0, [])
    positions = []  # each status against the one before it (its previous_status: a step)
    for d in forwards:
        message = Message.from_doc(orjson.loads(d.body), d.body)
        p = position(message)
        if p is not None:
            before = message.payload.get("previous_status", p.status)
            earlier = StatusPosition(p.status_at - 60, p.sequence - 1, before, "earlier")
            positions.extend((p, earlier) for _ in d.targets)

    def ordered() -> None:  # before: a late status superseded, by the envelope's time
        for _ in copies:
            pass
        for pos, current in positions:
            steps.screen(False, pos, current)

    def judged() -> None:  # now: + history or current, + the lifecycle's step (issue 13)
        for _ in copies:
            pass
        for pos, current in positions:
            steps.screen_status(pos, current, lifecycle, False, False, record)

    timed = asyncio.run(bounds())
    n = len(copies)
    return {
        "status: order → order + lifecycle step (the same store read)": _pair_us(
            ordered, judged, n
        ),
        "body SHA-256 (audit) → SHA-256 + HMAC check (stamp)": _pair_us(audit_digests, verify, n),
        "call bounds: deadline → deadline + whole answer, two watchdogs": (
            timed["before"],
            timed["now"],
        ),
        "(issue 11 as first built: asyncio.timeout + aiohttp total)": (
            timed["before"],
            timed["total"],
        ),
    }


def measure(
    loaded: Any, messages: int = 2_000, calls: int = 20_000
) -> dict[str, dict[str, tuple[float, float]]]:
    bodies, forwards = sample(loaded, messages)
    return {
        "router": router_steps(bodies, forwards),
        "dispatcher": dispatcher_steps(forwards, calls),
    }


def net(rows: dict[str, tuple[float, float]]) -> float:
    """µs the steps add now against before (the parenthesised rows are history, not summed;
    of the two parse rows only the compact one, the bodies senders' libraries write)."""
    return sum(
        after - before
        for name, (before, after) in rows.items()
        if not name.startswith("(") and "indented" not in name
    )


def main(console: Console, loaded: Any, messages: int = 2_000) -> dict[str, Any]:
    """Measure and print the table; return the figures (µs)."""
    figures = measure(loaded, messages)
    table = Table(
        title="µs per message (router) or delivery (dispatcher), best of 9, before and now "
        f"alternated, {messages:,} messages of the mix"
    )
    for column in ("process", "step", "before", "now", "change"):
        table.add_column(column, justify="left" if column in ("process", "step") else "right")
    for process, rows in figures.items():
        for name, (before, after) in rows.items():
            table.add_row(process, name, f"{before:.2f}", f"{after:.2f}", f"{after - before:+.2f}")
    console.print(table)
    totals = {process: net(rows) for process, rows in figures.items()}
    console.print(
        f"net: router {totals['router']:+.2f} µs per message, "
        f"dispatcher {totals['dispatcher']:+.2f} µs per delivery"
    )
    return {"steps": figures, "net": totals}
