"""Messages of every type reach the right stand-in agency with the body it expects."""

from pathlib import Path

import orjson

from tests.integration.harness import ROOT, send, wait_until

EXAMPLES = ROOT / "schemas" / "examples"


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def test_each_message_type_is_delivered_to_its_targets_with_the_exact_body(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    dossier = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    status = example("dossier.status_changed.v1/valid/supplement-requested.json")
    payment = example("payment.confirmed.v2/valid/success-bidv-above-2-31.json")
    results = send(bus.names, [dossier, status, payment])
    assert all(r.ok for r in results)

    expected = {("hanoi", dossier), ("portal", status), ("portal", payment), ("hcmc", payment)}
    assert wait_until(lambda: len(bus.standins.received()) >= len(expected), 20)
    got = {(r.target, r.body) for r in bus.standins.received()}
    assert got == expected

    for received in bus.standins.received():
        doc = orjson.loads(received.body)
        assert received.headers["Idempotency-Key"] == doc["id"]
        assert received.headers["traceparent"] == doc["traceparent"]
        assert received.headers["X-Message-Type"] == doc["type"]
    portal = bus.standins.received("portal")[0]
    assert portal.headers["Authorization"] == "Bearer test-portal-token"


def test_pre_reform_unit_codes_reach_the_agency_translated(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    original = orjson.loads(example("dossier.submitted.v1/valid/pre-reform-unit-codes.json"))
    assert original["payload"]["applicant"]["address"]["province_code"] == "26"
    send(bus.names, [orjson.dumps(original)])

    assert wait_until(lambda: bus.standins.received("shared-igate"), 20)
    (received,) = bus.standins.received()
    delivered = orjson.loads(received.body)
    address = delivered["payload"]["applicant"]["address"]
    assert (address["province_code"], address["commune_code"]) == ("25", "08716")
    # Everything else is the message as sent.
    address.update(original["payload"]["applicant"]["address"])
    assert delivered == original


def test_run_all_serves_both_stages_in_one_process(bus, tmp_path: Path) -> None:
    bus.process("run", "all")
    from tests.integration.harness import wait_for_consumers

    wait_for_consumers([bus.names.ingress_queue, bus.names.delivery_queue("portal")])
    send(bus.names, [example("dossier.status_changed.v1/valid/received.json")])
    assert wait_until(lambda: bus.standins.received("portal"), 20)
