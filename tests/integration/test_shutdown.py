"""SIGTERM stops a process gracefully: in-flight work finishes or goes back to its queue."""

import threading
import time

import orjson

from adapters.testing.standin import Behaviour
from bus.contract.ids import uuid7
from tests.integration.harness import ROOT, queue_depth, send, wait_until

EXAMPLES = ROOT / "schemas" / "examples"


def test_dispatcher_finishes_in_flight_deliveries_before_exiting(bus) -> None:
    bus.start_router()
    dispatcher = bus.start_dispatcher()
    bus.standins.program("hanoi", Behaviour(delay=1.5))
    body = (EXAMPLES / "dossier.submitted.v1/valid/citizen-hanoi-online.json").read_bytes()
    send(bus.names, [body])
    assert wait_until(lambda: bus.standins.received("hanoi"), 10)  # the agency is answering
    started = time.monotonic()
    assert dispatcher.terminate() == 0
    assert time.monotonic() - started < 10
    # The slow answer was waited for and acknowledged: nothing is left to redeliver.
    assert queue_depth(bus.names.delivery_queue("hanoi")) == 0
    log = dispatcher.log_text()
    assert "dispatcher.stopped" in log


def test_router_stopped_mid_stream_leaves_the_rest_queued_and_loses_nothing(bus) -> None:
    router = bus.start_router()
    bus.start_dispatcher()
    body = (EXAMPLES / "dossier.status_changed.v1/valid/received.json").read_bytes()
    bodies = []
    for _ in range(3000):
        doc = orjson.loads(body)
        doc["id"] = uuid7()
        bodies.append(orjson.dumps(doc))
    results: list = []
    sender = threading.Thread(target=lambda: results.extend(send(bus.names, bodies, rate=3000)))
    sender.start()
    time.sleep(0.5)
    assert router.terminate() == 0
    assert "router.stopped" in router.log_text()
    sender.join(30)
    delivered_before = {r.headers["Idempotency-Key"] for r in bus.standins.received()}
    assert 0 < len(delivered_before) < len(bodies)
    bus.start_router()
    ids = {r.message_id for r in results}
    assert wait_until(
        lambda: {r.headers["Idempotency-Key"] for r in bus.standins.received()} >= ids, 30
    )
