"""Chaos: crashes and a broker restart in the middle of real traffic lose nothing.

Every message sent must end with exactly one final outcome per target it routes to, or as
a dead letter with the router's reason if the router refused it. The store written by the
code under test is not the only witness: the stand-in agencies' own record of the calls
they answered with a 2xx must show every delivery the store claims, no call for a message
that was never routed there, and an Idempotency-Key on every call. An agency may see a
call twice only with the same key, and for at most 3% of the deliveries.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.testing.standin import Behaviour
from bus import app
from bus.broker.sending import SendResult
from bus.demo import traffic
from bus.routes import load_routes
from bus.routing.pipeline import Forward, RouterPipeline
from bus.settings import Settings
from bus.store import DEAD_LETTERED, DELIVERED, SUPERSEDED, DeadFilter
from tests.integration.harness import ROOT, send, wait_until
from tests.integration.store_fixtures import STORES
from tests.integration.test_recoverability import fast_retries

STATUS_TYPE = "dossier.status_changed"


# A killed dispatcher's calls still in flight are answered by the agency, then redelivered
# and called again (same Idempotency-Key): each kill may repeat at most what it held, one
# window of every target's prefetch (twice its concurrency). A regression delivering
# everything twice fails, whatever the size of the stream.


def in_flight_window(routes_file: Path) -> int:
    """The most deliveries one dispatcher holds at once: the sum of its targets' prefetch."""
    return sum(2 * t.concurrency for t in load_routes(routes_file).targets.values())


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def repeated_deliveries(bus) -> dict[str, Any]:
    """Deliveries an agency accepted (2xx) more than once, and any repeat that changed its key.

    A repeat is known by what it delivers, not by its key: a call carries the message's own
    ``traceparent`` (every test message has one), so two accepted calls to one target with the
    same trace id deliver the same message, and must carry the same Idempotency-Key. A batch
    item (its key recorded per item) is known by its key alone.
    """
    accepted = {r.seq for r in bus.receipts() if r.ok}
    keys: dict[tuple[str, str], list[str | None]] = {}
    for r in bus.standins.received():
        if r.seq not in accepted:
            continue
        if r.key is not None:  # an item of a batch
            keys.setdefault((r.target, "key " + r.key), []).append(r.key)
            continue
        trace = r.headers.get("traceparent", "").split("-")
        message = "trace " + trace[1] if len(trace) == 4 else f"call {r.seq}"
        keys.setdefault((r.target, message), []).append(r.idempotency_key)
    by_target: Counter[str] = Counter()
    for (target, _), seen in keys.items():
        by_target[target] += len(seen) - 1
    return {
        "repeated": sum(by_target.values()),
        "repeated_by_target": {t: n for t, n in sorted(by_target.items()) if n},
        "repeated_under_another_key": sorted(
            f"{target} {message}: {seen}"
            for (target, message), seen in keys.items()
            if len(set(seen)) > 1 or None in seen
        ),
    }


IN_FLIGHT_AT_KILL = 0.5  # s: a call may reach the agency this long after its caller's kill


def duplicate_window(bus, kills: list[float]) -> dict[str, Any]:
    """The repeats the dispatcher kills caused, as docs/operations.md reports them.

    Every message an agency accepted more than once: how long before the kill that caused
    the repeat its first call reached the agency (the first kill after that call; negative
    when the call reached the agency just after the signal, having left before it), how
    many repeats each kill caused, and whether every repeat carried the first call's
    Idempotency-Key.
    """
    accepted = {r.seq for r in bus.receipts() if r.ok}
    calls: dict[tuple[str, str], list[tuple[float, str | None]]] = {}
    for r in bus.standins.received():
        if r.seq not in accepted:
            continue
        if r.key is not None:  # an item of a batch: known by its key (as repeated_deliveries)
            message = "key " + r.key
        else:
            trace = r.headers.get("traceparent", "").split("-")
            message = "trace " + trace[1] if len(trace) == 4 else f"call {r.seq}"
        calls.setdefault((r.target, message), []).append((r.received_at, r.idempotency_key))
    per_kill = [0] * len(kills)
    kill_minus_first_ms: list[float] = []
    same_key = True
    for seen in calls.values():
        if len(seen) < 2:
            continue
        seen.sort()
        same_key = same_key and len({key for _, key in seen}) == 1 and seen[0][1] is not None
        first = seen[0][0]
        after = [i for i, k in enumerate(kills) if k > first - IN_FLIGHT_AT_KILL]
        if after:
            per_kill[after[0]] += len(seen) - 1
            kill_minus_first_ms.append((kills[after[0]] - first) * 1000)
    kill_minus_first_ms.sort()
    return {
        "repeats": sum(len(seen) - 1 for seen in calls.values()),
        "repeats_per_kill": per_kill,
        "kill_minus_first_call_ms": (
            {
                "min": round(kill_minus_first_ms[0], 1),
                "median": round(kill_minus_first_ms[len(kill_minus_first_ms) // 2], 1),
                "max": round(kill_minus_first_ms[-1], 1),
            }
            if kill_minus_first_ms
            else None
        ),
        "every_repeat_same_idempotency_key": same_key,
    }


def verify_audit(bus) -> subprocess.CompletedProcess[str]:
    """`dvcbus audit verify` (chain and completeness) once the bus's processes have stopped
    (SIGTERM: what a killed process left in its journal was drained when it was replaced,
    and a clean stop leaves no journal behind)."""
    for proc in bus.processes:
        if proc.alive:
            proc.terminate()
    left = sorted(p.name for p in Path(bus.env()["DVCBUS_AUDIT_JOURNAL_DIR"]).glob("*"))
    assert left == [], f"hop journals left after every process stopped: {left}"
    return subprocess.run(
        [sys.executable, "-m", "bus.cli", "audit", "verify", "--settle", "0"],
        env=bus.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def suppressed_without_delivered_hop(store) -> tuple[int, list[tuple[str, str]]]:
    """(redeliveries suppressed as already delivered, those whose ``trace`` lacks the
    ``delivered`` hop of the first delivery): a kill between the record and the ack."""
    events: dict[tuple[str, str], set[str]] = {}
    for r in store.iter_audit():
        if r.stage == "dispatcher" and r.message_id and r.target:
            events.setdefault((r.message_id, r.target), set()).add(r.event)
    suppressed = [k for k, e in events.items() if "duplicate_suppressed" in e]
    return len(suppressed), [k for k in suppressed if "delivered" not in events[k]]


def check_repeats(repeats: dict[str, Any], deliveries: int, *, allowed: int) -> list[str]:
    """The problems with ``repeated_deliveries``: more than ``allowed``, or under another key."""
    problems = []
    if repeats["repeated"] > allowed:
        problems.append(
            f"{repeats['repeated']} repeated deliveries of {deliveries}, more than the "
            f"{allowed} the interruptions could hold in flight: {repeats['repeated_by_target']}"
        )
    if repeats["repeated_under_another_key"]:
        shown = repeats["repeated_under_another_key"][:5]
        problems.append(f"a repeat without the first call's Idempotency-Key: {shown}")
    return problems


class Traffic:
    """A realistic stream sent in the background, and its account from store and agencies.

    With ``chunk``, the stream is sent ``chunk`` messages per connection and whatever the
    broker did not confirm is sent again (a broker restart interrupts the sender too).
    """

    def __init__(self, bus, count: int, seed: int, rate: float, chunk: int | None = None) -> None:
        self.bus = bus
        loaded = app.load(Settings.load(routes_file=bus.routes_file))
        self.bodies = [g.body for g in traffic.generate(count, seed=seed, loaded=loaded)]
        pipeline = RouterPipeline(loaded.schemas, loaded.table, loaded.settings.max_message_bytes)
        self.fates = [pipeline.decide(body) for body in self.bodies]
        self.results: list[SendResult | None] = [None] * len(self.bodies)
        self.sends = 0  # publishes, resends included
        self.interruptions = 0  # sends that failed or were not confirmed, then were repeated
        self.rate = rate
        self.chunk = chunk
        self._thread = threading.Thread(target=self._send_all, daemon=True)

    def _send_all(self) -> None:
        names, bodies, url = self.bus.names, self.bodies, self.bus.amqp_url
        if self.chunk is None:
            for i, result in enumerate(send(names, bodies, url, rate=self.rate)):
                self.results[i] = result
            self.sends = len(bodies)
            return
        started = time.monotonic()
        deadline = started + 600
        for first in range(0, len(bodies), self.chunk):
            time.sleep(max(0.0, started + first / self.rate - time.monotonic()))
            pending = list(range(first, min(first + self.chunk, len(bodies))))
            while pending and time.monotonic() < deadline:
                self.sends += len(pending)
                try:
                    results = send(names, [bodies[i] for i in pending], url, rate=self.rate)
                except Exception:  # the broker went away mid-send: nothing here was confirmed
                    results = []
                for i, result in zip(pending, results, strict=False):
                    self.results[i] = result
                pending = [i for i in pending if not (self.results[i] and self.results[i].ok)]
                if pending:
                    self.interruptions += 1
                    time.sleep(0.5)

    def start(self) -> None:
        self._thread.start()

    @property
    def sending(self) -> bool:
        return self._thread.is_alive()

    def finish(self, timeout: float = 120) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not finish in time"
        assert all(r is not None and r.ok for r in self.results)

    def account(
        self,
        timeout: float,
        *,
        may_fail: dict[str, tuple[str, int]] | None = None,
        interruptions: int = 1,
    ) -> dict[str, Any]:
        """Wait until every message has its outcomes; check them against the agencies' record.

        ``may_fail`` names the targets the test deliberately makes fail: target -> (the one
        dead-letter reason allowed there, at most how many). Any other dead letter, or any
        expected delivery that did not happen, is a failure. Returns the figures.
        """
        may_fail = may_fail or {}
        expected: set[tuple[str, str]] = set()  # (message id, target) the router forwards
        types: dict[str, str] = {}
        refused: dict[str, list[str]] = {}  # body digest -> the router's reason, per copy sent
        for body, fate in zip(self.bodies, self.fates, strict=True):
            if isinstance(fate, Forward):
                expected.update((fate.message_id, t) for t in fate.targets)
                types[fate.message_id] = fate.message_type
                if fate.parked is not None:  # a payment's agency copy nobody routes: parked
                    refused.setdefault(_digest(body), []).append(fate.parked.reason.value)
            else:
                refused.setdefault(_digest(body), []).append(fate.reason.value)
        refused_ids = {
            r.message_id
            for r, fate in zip(self.results, self.fates, strict=True)
            if r is not None and not isinstance(fate, Forward)
        }
        store = self.bus.store
        outcome: dict[tuple[str, str], str] = {}
        dead: list[Any] = []

        def settled() -> bool:
            outcome.clear()
            outcome.update({(mid, t): o for mid, t, o in store.outcomes()})
            dead[:] = store.dead_letters(DeadFilter(state=None), with_body=True)
            parked = {_digest(d.body) for d in dead if d.stage == "router"}
            return expected <= outcome.keys() and refused.keys() <= parked

        wait_until(settled, timeout, 1.0)
        receipts = self.bus.receipts()
        answered_ok = {(r.key, r.target) for r in receipts if r.ok}
        counts: Counter[str] = Counter(outcome.values())
        repeats = repeated_deliveries(self.bus)
        figures: dict[str, Any] = {
            "messages": len(self.bodies),
            "expected_deliveries": len(expected),
            "delivered": counts[DELIVERED],
            "dead_lettered": counts[DEAD_LETTERED],
            "superseded": counts[SUPERSEDED],
            "refused_by_router": sum(len(v) for v in refused.values()),
            "agency_calls": len(receipts),
            "agency_2xx": sum(r.ok for r in receipts),
            "duplicates_same_key": repeats["repeated"],
            "duplicates_by_target": repeats["repeated_by_target"],
            "accepted_but_not_recorded_delivered": len(
                {p for p in answered_ok if outcome.get(p) != DELIVERED}
            ),  # e.g. superseded after an agency saw it, before a crash let it be recorded
        }
        problems: list[str] = []

        def check(what: str, bad: Any) -> None:
            if bad:
                shown = sorted(bad, key=str)[:5] if isinstance(bad, set | list) else bad
                size = len(bad) if isinstance(bad, set | list) else ""
                problems.append(f"{what}: {size} {shown}")

        check("no outcome", expected - outcome.keys())
        check("outcomes for a target the message was never routed to", outcome.keys() - expected)
        delivered = {p for p, o in outcome.items() if o == DELIVERED}
        check("recorded delivered, no 2xx at the agency", delivered - answered_ok)
        check(
            "superseded but not a status update",
            {p for p, o in outcome.items() if o == SUPERSEDED and types.get(p[0]) != STATUS_TYPE},
        )
        check(
            "dead-lettered at a target not made to fail",
            {p for p, o in outcome.items() if o == DEAD_LETTERED and p[1] not in may_fail},
        )
        check("calls without an Idempotency-Key", [r.seq for r in receipts if not r.key])
        allowed = max(interruptions, 1) * in_flight_window(self.bus.routes_file)
        problems.extend(check_repeats(repeats, len(expected), allowed=allowed))
        check(
            "calls for a message not routed to that agency",
            {(r.key, r.target) for r in receipts} - expected,
        )
        check(
            "router-refused messages that reached an agency",
            {r.key for r in receipts} & refused_ids,
        )
        per_body = Counter(_digest(d.body) for d in dead if d.stage == "router")
        for d in dead:
            if d.stage == "router":
                reasons = refused.get(_digest(d.body))
                if reasons is None or d.reason not in reasons:
                    problems.append(f"router dead letter {d.id}: {d.reason}, expected {reasons}")
            elif (d.message_id, d.target) not in expected or d.reason != may_fail.get(
                d.target or "", ("",)
            )[0]:
                problems.append(f"dead letter {d.id} ({d.stage}, {d.target}, {d.reason})")
        if self.sends == len(self.bodies):  # nothing was sent twice: one dead letter per copy
            check(
                "router dead letters not exactly one per refused message",
                {k for k, v in refused.items() if per_body[k] != len(v)},
            )
        for target, (reason, most) in may_fail.items():
            n = sum(1 for d in dead if d.target == target and d.reason == reason)
            figures[f"dead_lettered_{target}_{reason}"] = n
            if n > most:
                problems.append(f"{n} {reason} dead letters at {target}, at most {most} expected")
        figures["problems"] = problems
        return figures


@pytest.mark.parametrize("store", STORES)
def test_20000_messages_survive_repeated_sigkills_of_router_and_dispatcher(
    make_bus, store, figures
) -> None:
    # Audit records committed once a second: a kill catches acked work whose hops only the
    # hop journal holds (at 100 ms, a slow machine's acks often lag the commits instead).
    bus = make_bus(fast_retries, store=store, env={"DVCBUS_AUDIT_FLUSH_INTERVAL": "1"})
    router, dispatcher = bus.start_router(), bus.start_dispatcher()
    # Made to fail on purpose: the first 40 calls to Đà Nẵng (retries; a message whose 5
    # attempts all land in them is exhausted) and the first 5 to the justice ministry (refused).
    bus.standins.program("danang", Behaviour(status=503, times=40))
    bus.standins.program("justice", Behaviour(status=422, times=5))
    stream = Traffic(bus, 20_000, seed=11, rate=1600)  # about 12.5 s of traffic
    rng = random.Random(5)
    kills = {"router": 0, "dispatcher": 0}
    dispatcher_killed_at: list[float] = []
    stream.start()
    for victim in ("router", "dispatcher", "router", "dispatcher", "dispatcher", "router"):
        time.sleep(rng.uniform(0.8, 2.0))
        if victim == "router":
            router.kill()
            router = bus.process("run", "router")  # restarted at once, no waiting
        else:
            dispatcher_killed_at.append(time.time())
            dispatcher.kill()
            dispatcher = bus.process("run", "dispatcher")
        kills[victim] += 1
    assert stream.sending, "the stream should still be running when the last kill lands"
    stream.finish()
    account = stream.account(
        timeout=120,
        may_fail={"danang": ("retries_exhausted", 40 // 5), "justice": ("rejected", 5)},
        interruptions=kills["dispatcher"],
    )
    alive = router.alive and dispatcher.alive
    window = duplicate_window(bus, dispatcher_killed_at)
    audit = verify_audit(bus)
    suppressed, without_hop = suppressed_without_delivered_hop(bus.store)
    figures(
        f"crash test ({store})",
        {
            "kills": kills,
            **account,
            "duplicate_window": window,
            "suppressed_redeliveries": suppressed,
            "audit_verify": (audit.stdout + audit.stderr).strip()[-1500:],
        },
    )
    assert account["problems"] == []
    assert (
        account["delivered"] + account["dead_lettered"] + account["superseded"]
        == (account["expected_deliveries"])
    )
    assert account["dead_lettered_justice_rejected"] >= 1  # the failures did happen
    assert alive
    assert without_hop == []  # trace shows the first delivery of a suppressed redelivery
    assert audit.returncode == 0, audit.stdout + audit.stderr  # no hop lost to the kills
    assert "audit trail complete" in audit.stdout


def _broker_events(log_text: str) -> list[tuple[str, str]]:
    """(event, component) of the broker connection lines of a process log, in order."""
    events = []
    for line in log_text.splitlines():
        if '"broker.' not in line:
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        events.append((doc.get("event", ""), doc.get("component", "")))
    return events


def _reconnected(log_text: str, component: str) -> bool:
    """The component lost its connection and connected again afterwards, by itself."""
    events = _broker_events(log_text)
    lost = [i for i, e in enumerate(events) if e == ("broker.connection_lost", component)]
    return bool(lost) and ("broker.connected", component) in events[lost[0] :]


def test_a_broker_restart_mid_run_loses_nothing(make_bus, broker_control, figures) -> None:
    bus = make_bus(fast_retries)
    router = bus.start_router()
    dispatcher = bus.start_dispatcher()
    bus.standins.program("portal", Behaviour(delay=0.05))  # keep work in flight
    stream = Traffic(bus, 4000, seed=12, rate=250, chunk=100)  # about 16 s of traffic
    stream.start()
    # Restart while messages are being published and delivered, not after.
    assert wait_until(lambda: sum(r.ok for r in bus.receipts()) >= 300, 60, 0.2)
    assert stream.sending
    stopped_at = broker_control.stop()
    back_at = broker_control.start()
    stream.finish(timeout=300)
    account = stream.account(timeout=180)
    after = [r for r in bus.receipts() if r.ok and r.at > back_at]
    published_after = sum(1 for r in stream.results if r is not None and r.confirmed_at > back_at)
    figures(
        "broker restart",
        {
            "broker_down_s": round(back_at - stopped_at, 1),
            "sender_interruptions": stream.interruptions,
            "published_after_restart": published_after,
            "delivered_after_restart": len(after),
            **account,
        },
    )
    assert account["problems"] == []
    assert account["delivered"] + account["superseded"] == account["expected_deliveries"]
    assert published_after > 0 and after, "traffic must flow through the bus after the restart"
    assert router.alive and dispatcher.alive  # the same processes: nobody restarted them
    assert _reconnected(router.log_text(), "dvcbus-router"), router.log_text()[-3000:]
    assert _reconnected(dispatcher.log_text(), "dvcbus-dispatcher"), dispatcher.log_text()[-3000:]
