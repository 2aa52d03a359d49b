"""Retries, idempotency, status ordering, circuit breaking and poison, on the real broker."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from bus.ids import uuid7
from bus.standin import Behaviour
from bus.store import DELIVERED, SUPERSEDED, DeadFilter
from tests.integration.harness import ROOT, collect_dead, send, wait_until

EXAMPLES = ROOT / "schemas" / "examples"
PLUGINS = ROOT / "tests" / "integration" / "plugins"
VN = timezone(timedelta(hours=7))


def fast_retries(doc: dict[str, Any], *, max_attempts: int = 5) -> None:
    """Waits of seconds instead of minutes, and a quick circuit, so tests run in seconds."""
    doc["defaults"]["retry"] = {
        "schedule": ["1s", "2s"],
        "max_attempts": max_attempts,
        "max_age": "1h",
    }
    doc["defaults"]["circuit"] = {"failures": 3, "cooldown": "2s"}


def example(name: str, **changes: Any) -> dict[str, Any]:
    doc = orjson.loads((EXAMPLES / name).read_bytes())
    doc["id"] = uuid7()
    for key, value in changes.items():
        doc["payload"][key] = value
    return doc


def hanoi_dossier(**changes: Any) -> dict[str, Any]:
    return example("dossier.submitted.v1/valid/citizen-hanoi-online.json", **changes)


def status(dossier_no: str, sequence: int, minute: int) -> dict[str, Any]:
    doc = example("dossier.status_changed.v1/valid/received.json", sequence=sequence)
    doc["payload"]["dossier_no"] = dossier_no
    doc["correlation_id"] = dossier_no
    doc["occurred_at"] = datetime(2026, 11, 25, 9, minute, tzinfo=VN).isoformat()
    return doc


def outcomes_of(bus, message_id: str) -> set[tuple[str, str]]:
    return {(target, outcome) for mid, target, outcome in bus.store.outcomes([message_id])}


def test_a_transient_failure_is_retried_until_delivered(make_bus) -> None:
    bus = make_bus(fast_retries)
    bus.start_router()
    bus.start_dispatcher()
    bus.standins.program("hanoi", Behaviour(status=503, times=2))
    doc = hanoi_dossier()
    send(bus.names, [orjson.dumps(doc)])
    assert wait_until(lambda: outcomes_of(bus, doc["id"]) == {("hanoi", DELIVERED)}, 30)
    calls = bus.standins.received("hanoi")
    assert len(calls) == 3
    assert {c.headers["Idempotency-Key"] for c in calls} == {doc["id"]}
    assert calls[2].received_at - calls[0].received_at >= 1.0 + 2.0 - 0.5  # waited 1 s, then 2 s


def test_retries_exhausted_are_dead_lettered_with_every_attempt(make_bus) -> None:
    bus = make_bus(lambda d: fast_retries(d, max_attempts=3))
    bus.start_router()
    bus.start_dispatcher()
    bus.standins.program("hcmc", Behaviour(status=503))
    doc = example("dossier.submitted.v1/valid/organisation-hcmc-direct.json")
    send(bus.names, [orjson.dumps(doc)])
    (dead,) = collect_dead(bus.store, 1, timeout=30)
    assert (dead.reason, dead.target, dead.attempts) == ("retries_exhausted", "hcmc", 3)
    assert [h["attempt"] for h in dead.history] == [1, 2, 3]
    assert all(h["reason"] == "HTTP 503" for h in dead.history)
    assert "3 attempts made (max_attempts 3)" in dead.detail
    assert len(bus.standins.received("hcmc")) == 3


def test_a_redelivered_message_is_not_delivered_again(make_bus) -> None:
    bus = make_bus(fast_retries)
    bus.start_router()
    bus.start_dispatcher()
    body = orjson.dumps(hanoi_dossier())
    send(bus.names, [body])
    assert wait_until(lambda: len(bus.standins.received("hanoi")) == 1, 20)
    send(bus.names, [body, body])  # a replay, and a copy at the same time
    log_has = lambda: bus.processes[1].log_text().count("duplicate_suppressed") >= 2  # noqa: E731
    assert wait_until(log_has, 20)
    assert len(bus.standins.received("hanoi")) == 1


def test_an_older_status_never_overwrites_a_newer_one(make_bus) -> None:
    bus = make_bus(fast_retries)
    bus.start_router()
    bus.start_dispatcher()
    newer, older = (
        status("000.00.12.H26-261125-0007", 4, 30),
        status("000.00.12.H26-261125-0007", 2, 10),
    )
    send(bus.names, [orjson.dumps(newer)])
    assert wait_until(lambda: outcomes_of(bus, newer["id"]) == {("portal", DELIVERED)}, 20)
    send(bus.names, [orjson.dumps(older)])
    assert wait_until(lambda: outcomes_of(bus, older["id"]) == {("portal", SUPERSEDED)}, 20)
    assert [orjson.loads(r.body)["id"] for r in bus.standins.received("portal")] == [newer["id"]]


def test_an_agency_outage_opens_the_circuit_and_delivers_in_status_order_after(make_bus) -> None:
    bus = make_bus(fast_retries)
    bus.start_router()
    dispatcher = bus.start_dispatcher()
    bus.standins.program("portal", Behaviour(status=503))
    dossiers = [f"000.00.12.H26-261125-{n:04d}" for n in range(10)]
    docs = [status(d, seq, 10 + seq) for seq in range(4) for d in dossiers]
    send(bus.names, [orjson.dumps(d) for d in docs])
    time.sleep(6)  # down for a while: the circuit opens, probes every 2 s fail
    calls_while_down = len(bus.standins.received("portal"))
    assert calls_while_down < len(docs), "an open circuit must stop calling the agency"
    bus.standins.heal("portal")  # the agency is back

    ids = {d["id"] for d in docs}

    def settled() -> bool:
        return {mid for mid, t, _ in bus.store.outcomes(list(ids)) if t == "portal"} == ids

    assert wait_until(settled, 60)
    delivered: dict[str, list[int]] = {}
    for r in bus.standins.received("portal")[calls_while_down:]:
        payload = orjson.loads(r.body)["payload"]
        if r.headers.get("Idempotency-Key") and payload["dossier_no"] in dossiers:
            delivered.setdefault(payload["dossier_no"], []).append(payload["sequence"])
    for dossier, sequences in delivered.items():
        assert sequences == sorted(sequences), f"{dossier} went backward: {sequences}"
    log = dispatcher.log_text()
    assert '"new":"open"' in log and '"new":"closed"' in log
    print(f"outage: {calls_while_down} calls while down for {len(docs)} messages")


def test_a_message_that_crashes_the_adapter_ends_as_poison_and_the_rest_flow(
    make_bus, monkeypatch
) -> None:
    def crashy_hanoi(doc: dict[str, Any]) -> None:
        fast_retries(doc)
        doc["targets"]["hanoi"]["adapter"] = "crashy"
        doc["targets"]["hanoi"]["delivery_limit"] = 3

    monkeypatch.syspath_prepend(str(PLUGINS))  # "installs" the plug-in here as well
    bus = make_bus(crashy_hanoi, env={"PYTHONPATH": str(PLUGINS)})
    bus.start_router()
    bus.start_dispatcher()
    poison = hanoi_dossier(summary="chaos: raise")
    fine = [hanoi_dossier() for _ in range(5)]
    send(bus.names, [orjson.dumps(poison), *(orjson.dumps(d) for d in fine)])
    (dead,) = collect_dead(bus.store, 1, timeout=30)
    assert (dead.reason, dead.message_id, dead.target) == ("poison", poison["id"], "hanoi")
    assert "delivery limit" in dead.detail
    fine_ids = {d["id"] for d in fine}
    assert wait_until(
        lambda: (
            {mid for mid, _, o in bus.store.outcomes(list(fine_ids)) if o == DELIVERED} == fine_ids
        ),
        20,
    )


def test_a_message_that_kills_the_process_ends_as_poison_after_restarts(
    make_bus, monkeypatch
) -> None:
    def crashy_hanoi(doc: dict[str, Any]) -> None:
        fast_retries(doc)
        doc["targets"]["hanoi"]["adapter"] = "crashy"
        doc["targets"]["hanoi"]["delivery_limit"] = 2

    monkeypatch.syspath_prepend(str(PLUGINS))  # "installs" the plug-in here as well
    bus = make_bus(crashy_hanoi, env={"PYTHONPATH": str(PLUGINS)})
    bus.start_router()
    killer = hanoi_dossier(summary="chaos: exit")
    send(bus.names, [orjson.dumps(killer)])
    crashes = 0
    for _ in range(6):
        dispatcher = bus.process("run", "dispatcher")  # may die before it is fully up
        if not wait_until(lambda: not dispatcher.alive, 8):  # noqa: B023
            break  # it survived: the message is gone from its queue
        crashes += 1
    assert 1 <= crashes <= 4
    (dead,) = collect_dead(bus.store, 1, timeout=20)
    assert (dead.reason, dead.message_id) == ("poison", killer["id"])
    assert bus.store.dead_letters(DeadFilter(reason="poison"))[0].target == "hanoi"
