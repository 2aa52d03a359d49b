"""The broker topology is declared from routes.yaml at start, idempotently, and checked."""

from tests.integration.harness import (
    blocking_channel,
    consumer_count,
    free_port,
    wait_for_consumers,
)


def test_topology_is_declared_by_every_process_without_conflict(bus) -> None:
    bus.start_router()
    bus.start_router()  # a second router declares the same topology: a no-op
    bus.start_dispatcher()
    assert consumer_count(bus.names.ingress_queue) == 2
    conn, ch = blocking_channel()
    try:
        for target in bus.routes.targets:
            ch.queue_declare(bus.names.delivery_queue(target), passive=True)
        ch.queue_declare(bus.names.dead_queue, passive=True)
    finally:
        conn.close()


def test_a_conflicting_live_queue_stops_the_router_with_the_reason(bus) -> None:
    conn, ch = blocking_channel()
    ch.queue_declare(bus.names.ingress_queue, durable=True)  # a classic queue, not quorum
    conn.close()
    router = bus.process("run", "router")
    assert router.proc is not None
    assert router.proc.wait(30) == 2
    log = router.log_text()
    assert f"queue {bus.names.ingress_queue} exists on the broker with other settings" in log


def test_a_policy_that_could_drop_dead_letters_stops_the_bus_from_starting(bus) -> None:
    import urllib.request
    from base64 import b64encode

    name = f"{bus.names.namespace}-cap"
    url = f"http://127.0.0.1:15672/api/policies/%2F/{name}"
    # policies are the administrator's (guest's) to set, through the management API
    auth = {"Authorization": "Basic " + b64encode(b"guest:guest").decode()}
    body = (
        f'{{"pattern": "^{bus.names.namespace}\\\\.dead$", "apply-to": "queues", '
        '"definition": {"max-length": 100}}'
    ).encode()
    put = urllib.request.Request(
        url, data=body, method="PUT", headers={**auth, "content-type": "application/json"}
    )
    urllib.request.urlopen(put, timeout=10).close()
    try:
        router = bus.process("run", "router")
        assert router.proc is not None and router.proc.wait(30) == 2
        log = router.log_text()
        assert f"queue {bus.names.dead_queue}: a length limit with overflow drop-head" in log
        assert f"policy '{name}'" in log
    finally:
        urllib.request.urlopen(
            urllib.request.Request(url, method="DELETE", headers=auth), timeout=10
        ).close()


def test_a_broker_whose_policies_cannot_be_read_stops_the_bus_unless_told_to_warn(bus) -> None:
    closed = f"http://guest:guest@127.0.0.1:{free_port()}"  # nothing listens there
    router = bus.process("run", "router", DVCBUS_MANAGEMENT_URL=closed)
    assert router.proc is not None and router.proc.wait(30) == 2
    log = router.log_text()
    assert "cannot check the broker's policies" in log and "refusing to start" in log
    bus.process(
        "run", "router", DVCBUS_MANAGEMENT_URL=closed, DVCBUS_POLICY_CHECK_UNAVAILABLE="warn"
    )
    wait_for_consumers([bus.names.ingress_queue])
