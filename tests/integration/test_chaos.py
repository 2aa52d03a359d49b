"""Chaos: crashes and a broker restart in the middle of real traffic lose nothing.

The store is the account. Every message sent must end with exactly one final outcome per
target it routes to (delivered, superseded or dead-lettered), or as one dead letter if the
router refused it. An agency may see a message twice only with the same Idempotency-Key;
the tests report how often.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time

import pytest

from bus import app
from bus.demo import traffic
from bus.pipeline import Forward, RouterPipeline
from bus.sending import SendResult
from bus.settings import Settings
from bus.standin import Behaviour
from bus.store import DeadFilter
from tests.integration.harness import send, wait_until
from tests.integration.test_recoverability import fast_retries


class Traffic:
    """A realistic stream sent in the background, and its account in the store."""

    def __init__(self, bus, count: int, seed: int, rate: float) -> None:
        self.bus = bus
        loaded = app.load(Settings.load(routes_file=bus.routes_file))
        self.bodies = [g.body for g in traffic.generate(count, seed=seed, loaded=loaded)]
        pipeline = RouterPipeline(loaded.schemas, loaded.table, loaded.settings.max_message_bytes)
        self.fates = [pipeline.decide(body) for body in self.bodies]
        self.results: list[SendResult] = []
        self.rate = rate
        self._thread = threading.Thread(
            target=lambda: self.results.extend(send(bus.names, self.bodies, rate=self.rate))
        )

    def start(self) -> None:
        self._thread.start()

    @property
    def sending(self) -> bool:
        return self._thread.is_alive()

    def finish(self) -> None:
        self._thread.join(120)
        assert len(self.results) == len(self.bodies) and all(r.ok for r in self.results)

    def account(self, timeout: float) -> dict[str, int]:
        """Wait until every message has its outcomes; return the counts (and what is missing)."""
        expected: dict[str, tuple[str, ...]] = {}
        for result, fate in zip(self.results, self.fates, strict=True):
            expected[result.message_id] = fate.targets if isinstance(fate, Forward) else ()
        store = self.bus.store
        counts: dict[str, int] = {}

        def settled() -> bool:
            rows = store.outcomes()
            done = {(mid, target) for mid, target, _ in rows}
            parked = {d.message_id for d in store.dead_letters(DeadFilter(state=None))}
            missing = [
                mid
                for mid, targets in expected.items()
                if (targets and not all((mid, t) in done for t in targets))
                or (not targets and mid not in parked)
            ]
            counts.clear()
            counts["missing"] = len(missing)
            for _, _, outcome in rows:
                counts[outcome] = counts.get(outcome, 0) + 1
            counts["refused_by_router"] = sum(1 for t in expected.values() if not t)
            return not missing

        wait_until(settled, timeout, 1.0)
        # The same call twice is a duplicate; an insert answered "already exists" and then
        # sent as an update is one delivery in two calls (different paths), not a duplicate.
        keys = [
            (r.idempotency_key, r.target, r.method, r.path.split("?")[0])
            for r in self.bus.standins.received()
        ]
        counts["agency_calls"] = len(keys)
        seen: set[tuple[str | None, str, str, str]] = set()
        for key in keys:
            if key in seen:
                name = f"agency_duplicates_{key[1]}"
                counts[name] = counts.get(name, 0) + 1
            seen.add(key)
        return counts


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_20000_messages_survive_repeated_sigkills_of_router_and_dispatcher(make_bus, store) -> None:
    bus = make_bus(fast_retries, store=store)
    router, dispatcher = bus.start_router(), bus.start_dispatcher()
    bus.standins.program("danang", Behaviour(status=503, times=40))  # some retries in flight too
    stream = Traffic(bus, 20_000, seed=11, rate=1600)  # about 12.5 s of traffic
    rng = random.Random(5)
    kills = {"router": 0, "dispatcher": 0}
    stream.start()
    for victim in ("router", "dispatcher", "router", "dispatcher", "dispatcher", "router"):
        time.sleep(rng.uniform(0.8, 2.0))
        if victim == "router":
            router.kill()
            router = bus.process("run", "router")  # restarted at once, no waiting
        else:
            dispatcher.kill()
            dispatcher = bus.process("run", "dispatcher")
        kills[victim] += 1
    assert stream.sending, "the stream should still be running when the last kill lands"
    stream.finish()
    counts = stream.account(timeout=120)
    print(f"chaos ({store}): kills {kills}, account {counts}")
    assert counts["missing"] == 0, counts
    assert router.alive and dispatcher.alive


def test_a_broker_restart_mid_run_loses_nothing(make_bus) -> None:
    bus = make_bus(fast_retries)
    bus.start_router()
    dispatcher = bus.start_dispatcher()
    bus.standins.program("portal", Behaviour(delay=0.05))  # keep work in flight
    stream = Traffic(bus, 3000, seed=12, rate=3000)
    stream.start()
    stream.finish()  # everything is in the broker's hands
    time.sleep(0.5)
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    time.sleep(1.0)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "await_startup"], check=True, capture_output=True, timeout=120)
    bus.standins.heal("portal")
    counts = stream.account(timeout=120)
    print(f"broker restart: account {counts}")
    assert counts["missing"] == 0, counts
    assert dispatcher.alive
    assert "broker.connection_lost" in dispatcher.log_text()
