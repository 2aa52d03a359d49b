"""Refused input becomes a dead letter with its reason and exact error; no agency sees it."""

import orjson

from adapters.testing.standin import Behaviour
from tests.integration.harness import ROOT, cli_user, collect_dead, send, wait_until

EXAMPLES = ROOT / "schemas" / "examples"


def example_doc(name: str) -> dict:
    return orjson.loads((EXAMPLES / name).read_bytes())


def test_refused_messages_are_dead_lettered_with_reason_and_nothing_is_delivered(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    invalid = example_doc("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    invalid["payload"]["procedure_code"] = "1.01288"
    unroutable = example_doc("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    unroutable["payload"]["receiving_agency"] = "000.00.00.G09"
    unauthorised = example_doc("payment.confirmed.v1/valid/success-vcb.json")
    unauthorised["source"] = "000.00.00.H29"
    for doc, suffix in ((invalid, "1"), (unroutable, "2"), (unauthorised, "3")):
        doc["id"] = doc["id"][:-1] + suffix  # distinct ids
    typed = {
        "invalid": orjson.dumps(invalid),
        "unroutable": orjson.dumps(unroutable),
        "unauthorised": orjson.dumps(unauthorised),
    }
    # No type to route by: a sender's user may not publish them (its topic permission), the
    # operators' may (`dvcbus send`); the router refuses them before asking who sent them.
    untyped = {
        "malformed": b'{"id": "x", "type": ',
        "too_large": orjson.dumps({"id": "big", "payload": "x" * (1024 * 1024)}),
    }
    bodies = {**typed, **untyped}
    results = send(bus.names, typed.values())
    results += send(bus.names, untyped.values(), user=cli_user(bus.names))
    assert all(r.ok for r in results)

    dead = collect_dead(bus.store, len(bodies))
    by_reason = {d.reason: d for d in dead}
    assert set(by_reason) == set(bodies)
    for reason, body in bodies.items():
        assert by_reason[reason].body == body, f"{reason}: the dead letter keeps the original body"
        assert by_reason[reason].stage == "router"
        assert by_reason[reason].attempts == 0
    assert by_reason["invalid"].detail == ("payload.procedure_code: pattern ^[1-3]\\.[0-9]{6}$")
    assert "agency=000.00.00.G09" in by_reason["unroutable"].detail
    assert "000.00.00.H29 may not send payment.confirmed" in by_reason["unauthorised"].detail
    assert by_reason["malformed"].detail.startswith("not JSON")
    assert "cap is 1048576" in by_reason["too_large"].detail
    assert by_reason["invalid"].message_id == invalid["id"]
    assert by_reason["invalid"].dossier_no == invalid["correlation_id"]
    assert bus.standins.received() == []


def test_bad_input_does_not_crash_the_router_or_hold_up_good_messages(bus) -> None:
    router = bus.start_router()
    bus.start_dispatcher()
    good = (EXAMPLES / "dossier.status_changed.v1/valid/received.json").read_bytes()
    hostile = [b"\xff\xfe\x00", b"[]", b"null", b'{"payload": []}', b"{" * 100_000, b""]
    operators = cli_user(bus.names)  # no type: a sender's user may not publish them
    send(bus.names, hostile, user=operators)
    send(bus.names, [good])
    send(bus.names, hostile, user=operators)
    assert wait_until(lambda: bus.standins.received("portal"), 20)
    dead = collect_dead(bus.store, 2 * len(hostile))
    assert len(dead) == 2 * len(hostile)
    assert {d.reason for d in dead} <= {"malformed", "invalid"}
    assert router.alive


def test_an_agency_refusal_is_dead_lettered_at_once_with_the_target(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    bus.standins.program("hanoi", Behaviour(status=400))
    hanoi = (EXAMPLES / "dossier.submitted.v1/valid/citizen-hanoi-online.json").read_bytes()
    send(bus.names, [hanoi])
    (dead,) = collect_dead(bus.store, 1)
    assert (dead.reason, dead.target, dead.stage, dead.attempts) == (
        "rejected",
        "hanoi",
        "dispatcher",
        1,
    )
    # the status, then the agency's own words (masked): routes.yaml declares where they are
    assert dead.detail == "HTTP 400: 'Yêu cầu của bạn thực hiện thất bại'"
    assert dead.history[0]["reason"] == dead.detail
    assert dead.body == hanoi
    assert len(bus.standins.received("hanoi")) == 1  # a refusal is never retried


def test_a_body_with_two_type_keys_is_dead_lettered_malformed_and_reaches_no_agency(bus) -> None:
    """Routed on the last ``type``, it would reach Hà Nội as a dossier; an agency parser keeping
    the first would read a status update. The bus refuses it instead, naming the key."""
    bus.start_router()
    bus.start_dispatcher()
    dossier = (EXAMPLES / "dossier.submitted.v1/valid/citizen-hanoi-online.json").read_bytes()
    assert dossier.startswith(b"{")
    two_types = b'{"type": "dossier.status_changed",' + dossier[1:]
    good = (EXAMPLES / "dossier.status_changed.v1/valid/received.json").read_bytes()
    send(bus.names, [two_types, good])

    assert wait_until(lambda: bus.standins.received("portal"), 20)  # the router went past it
    (dead,) = collect_dead(bus.store, 1)
    assert (dead.reason, dead.stage) == ("malformed", "router")
    assert dead.detail == 'duplicate key "type" at $'
    assert dead.body == two_types
    assert [r.target for r in bus.standins.received()] == ["portal"]


def test_distinct_bodies_refused_with_one_id_are_each_their_own_dead_letter(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    base = example_doc("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    wrong_procedure = {**base, "payload": {**base["payload"], "procedure_code": "1.01288"}}
    wrong_agency = {**base, "payload": {**base["payload"], "receiving_agency": "H26"}}
    wrong_version = {**base, "version": 0}
    bodies = [orjson.dumps(d) for d in (wrong_procedure, wrong_agency, wrong_version)]
    again = bodies[0]  # the same body a second time is the same dead letter
    good = (EXAMPLES / "dossier.status_changed.v1/valid/received.json").read_bytes()
    send(bus.names, [*bodies, again, good])

    assert wait_until(lambda: bus.standins.received("portal"), 20)  # the router went past all
    dead = collect_dead(bus.store, len(bodies) + 1, timeout=3)  # time for a 4th to show up
    assert sorted(d.body for d in dead) == sorted(bodies)
    assert {(d.message_id, d.reason) for d in dead} == {(base["id"], "invalid")}
    details = {d.body: d.detail for d in dead}
    assert details[bodies[0]] == "payload.procedure_code: pattern ^[1-3]\\.[0-9]{6}$"
    assert details[bodies[1]].startswith("payload.receiving_agency: pattern")
    assert details[bodies[2]].startswith("version: ")
