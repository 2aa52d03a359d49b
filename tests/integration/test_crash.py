"""Killing a bus process with SIGKILL in the middle of a stream loses nothing.

Every message sent is accounted for by id: delivered to every target it routes to, or
dead-lettered. Redeliveries after the crash may repeat a delivery, for at most 3% of the
deliveries, and only under the same Idempotency-Key (the agency can tell it is a repeat).
"""

import threading
import time
from typing import Any

from bus import app
from bus.broker.sending import SendResult
from bus.demo import traffic
from bus.routing.pipeline import Forward, RouterPipeline
from bus.settings import Settings
from bus.store import DeadFilter
from tests.integration.harness import send, wait_until
from tests.integration.test_chaos import (
    check_repeats,
    duplicate_window,
    in_flight_window,
    repeated_deliveries,
    suppressed_without_delivered_hop,
    verify_audit,
)

STREAM = 5000
# Messages per second: 5 s of traffic, so that on a busy machine the bus has handled part of
# it (300 outcomes) while the rest is still coming when the kill lands.
RATE = 1000


class Stream:
    """A realistic 5,000-message stream sent in the background at a steady rate."""

    def __init__(self, bus, seed: int) -> None:
        self.bus = bus
        loaded = app.load(Settings.load(routes_file=bus.routes_file))
        self.bodies = [g.body for g in traffic.generate(STREAM, seed=seed, loaded=loaded)]
        pipeline = RouterPipeline(loaded.schemas, loaded.table, loaded.settings.max_message_bytes)
        self.fates = [pipeline.decide(body) for body in self.bodies]
        self.results: list[SendResult] = []
        self._thread = threading.Thread(
            target=lambda: self.results.extend(send(bus.names, self.bodies, rate=RATE))
        )

    def start(self) -> None:
        self._thread.start()

    def midway(self) -> None:
        """Wait until the bus has handled part of the stream while the rest is still coming:
        the kill that follows lands in the middle, not before the first or after the last."""
        assert wait_until(lambda: len(self.bus.store.outcomes()) >= 300, 30, 0.05)
        assert self._thread.is_alive(), "the stream was over before the kill"

    def finish(self) -> None:
        self._thread.join(60)
        assert len(self.results) == STREAM and all(r.ok for r in self.results)

    def unaccounted(self, timeout: float) -> tuple[list[str], dict[str, Any]]:
        """(ids without a final outcome everywhere they should have one, repeated deliveries).

        The store is the account: every (message, target) a message routes to has one final
        outcome (delivered, superseded or dead-lettered); a refused message has a dead letter.
        """
        expected: dict[str, tuple[str, ...]] = {}
        for result, fate in zip(self.results, self.fates, strict=True):
            expected[result.message_id] = fate.targets if isinstance(fate, Forward) else ()
        store = self.bus.store

        def missing() -> list[str]:
            done = {(mid, target) for mid, target, _ in store.outcomes()}
            parked = {d.message_id for d in store.dead_letters(DeadFilter(state=None))}
            return [
                mid
                for mid, targets in expected.items()
                if not (targets and all((mid, t) in done for t in targets))
                and not (not targets and mid in parked)
            ]

        wait_until(lambda: not missing(), timeout, 0.5)
        return missing(), repeated_deliveries(self.bus)

    @property
    def deliveries(self) -> int:
        """Deliveries the stream asks for: one per target of every message routed."""
        return sum(len(fate.targets) for fate in self.fates if isinstance(fate, Forward))


# Audit records committed once a second, not every 100 ms: a kill then always catches acked
# work whose hops are not in the store yet, so only the hop journal keeps them.
SLOW_AUDIT = {"DVCBUS_AUDIT_FLUSH_INTERVAL": "1"}


def test_router_killed_mid_stream_and_restarted_loses_nothing(bus) -> None:
    bus.extra_env.update(SLOW_AUDIT)
    router = bus.start_router()
    bus.start_dispatcher()
    stream = Stream(bus, seed=7)
    stream.start()
    stream.midway()
    router.kill()
    time.sleep(0.3)
    bus.start_router()
    stream.finish()

    missing, repeats = stream.unaccounted(timeout=60)
    assert missing == [], f"{len(missing)} of {STREAM} messages lost after a router crash"
    print(f"router crash: {STREAM} accounted for, {repeats['repeated']} repeated deliveries")
    window = in_flight_window(bus.routes_file)  # one kill: at most one window
    assert check_repeats(repeats, stream.deliveries, allowed=window) == []
    audit = verify_audit(bus)
    print(f"router crash: {audit.stdout.strip()} {audit.stderr.strip()}")
    assert audit.returncode == 0  # every routed / dead_lettered hop survived the kill


def test_dispatcher_killed_mid_stream_and_restarted_loses_nothing(bus) -> None:
    bus.extra_env.update(SLOW_AUDIT)
    bus.start_router()
    dispatcher = bus.start_dispatcher()
    stream = Stream(bus, seed=8)
    stream.start()
    stream.midway()
    killed_at = time.time()
    dispatcher.kill()
    time.sleep(0.3)
    bus.start_dispatcher()
    stream.finish()

    missing, repeats = stream.unaccounted(timeout=60)
    assert missing == [], f"{len(missing)} of {STREAM} messages lost after a dispatcher crash"
    print(f"dispatcher crash: {STREAM} accounted for, {repeats['repeated']} repeated deliveries")
    print(f"dispatcher crash: duplicate window {duplicate_window(bus, [killed_at])}")
    window = in_flight_window(bus.routes_file)  # one kill: at most one window
    assert check_repeats(repeats, stream.deliveries, allowed=window) == []
    audit = verify_audit(bus)
    print(f"dispatcher crash: {audit.stdout.strip()} {audit.stderr.strip()}")
    suppressed, without_hop = suppressed_without_delivered_hop(bus.store)
    print(f"dispatcher crash: {suppressed} redeliveries suppressed, {len(without_hop)} without hop")
    assert audit.returncode == 0  # every delivered / dead_lettered hop survived the kill
    assert without_hop == []  # trace shows the first delivery, from the killed one's journal


def test_hops_of_acknowledged_work_survive_sigkill_of_both_processes(bus) -> None:
    """Every message routed, delivered or refused and acked, with its hops still out of the
    store (audit commits once a minute here), then router and dispatcher killed: the next
    process drains their journals and the trail is complete. Without the journal the trail
    would be empty."""
    bus.extra_env["DVCBUS_AUDIT_FLUSH_INTERVAL"] = "60"
    router, dispatcher = bus.start_router(), bus.start_dispatcher()
    loaded = app.load(Settings.load(routes_file=bus.routes_file))
    bodies = [g.body for g in traffic.generate(300, seed=9, loaded=loaded)]
    pipeline = RouterPipeline(loaded.schemas, loaded.table, loaded.settings.max_message_bytes)
    fates = [pipeline.decide(body) for body in bodies]
    forwarded = {(f.message_id, t) for f in fates if isinstance(f, Forward) for t in f.targets}
    refused = sum(not isinstance(f, Forward) for f in fates)
    assert refused, "the traffic should have messages the router refuses"
    assert all(r.ok for r in send(bus.names, bodies, rate=500))
    store = bus.store

    def settled() -> bool:
        done = {(mid, target) for mid, target, _ in store.outcomes()}
        parked = store.dead_letters(DeadFilter(state=None))
        return forwarded <= done and sum(d.stage == "router" for d in parked) >= refused

    assert wait_until(settled, 60, 0.2)
    time.sleep(1.0)  # the acks of the last records go out at the end of their loop turn
    assert store.audit_head()[0] == 0, "no hop should be in the store before the kills"
    router.kill()
    dispatcher.kill()
    bus.start_router()  # its audit sink drains both journals as it starts
    wait_until(lambda: store.audit_head()[0] > 0, 30, 0.2)  # (verify says what is missing)
    audit = verify_audit(bus)
    print(f"killed with every hop unstored: {audit.stdout.strip()} {audit.stderr.strip()}")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    routed = {r.message_id for r in store.iter_audit() if r.event == "routed"}
    assert routed == {f.message_id for f in fates if isinstance(f, Forward)}
