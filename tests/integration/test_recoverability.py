"""Retries, idempotency, status ordering, circuit breaking and poison, on the real broker."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from adapters.testing.standin import Behaviour
from bus.contract.ids import uuid7
from bus.store import DELIVERED, SUPERSEDED, DeadFilter
from tests.integration.harness import ROOT, collect_dead, send, wait_until
from tests.integration.store_fixtures import STORES

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
    doc["payload"]["status_at"] = doc["occurred_at"]  # statuses are ordered by status_at
    return doc


def outcomes_of(bus, message_id: str) -> set[tuple[str, str]]:
    return {(target, outcome) for mid, target, outcome in bus.store.outcomes([message_id])}


def delivered_ids(bus, docs: list[dict[str, Any]]) -> set[str]:
    ids = [d["id"] for d in docs]
    return {mid for mid, _, o in bus.store.outcomes(ids) if o == DELIVERED}


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
    assert all(h["reason"].startswith("HTTP 503") for h in dead.history), dead.history
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


def circuit_changes(dispatcher, target: str) -> list[tuple[float, str]]:
    """(time, new state) of every circuit change of ``target`` in a dispatcher's log."""
    changes = []
    for line in dispatcher.log_text().splitlines():
        if '"dispatcher.circuit"' not in line:
            continue
        doc = orjson.loads(line)
        if doc.get("target") == target:
            at = datetime.fromisoformat(doc["timestamp"].replace("Z", "+00:00")).timestamp()
            changes.append((at, doc["new"]))
    return changes


@pytest.mark.parametrize("store", STORES)
def test_an_agency_outage_opens_the_circuit_and_delivers_in_status_order_after(
    make_bus, store, figures
) -> None:
    bus = make_bus(fast_retries, store=store)
    bus.start_router()
    dispatcher = bus.start_dispatcher()
    dossiers = [f"000.00.12.H26-261125-{n:04d}" for n in range(10)]
    before = [status(d, 0, 10) for d in dossiers]  # each dossier's first status, delivered
    send(bus.names, [orjson.dumps(d) for d in before])
    assert wait_until(lambda: len(delivered_ids(bus, before)) == len(before), 20)

    bus.standins.program("portal", Behaviour(status=503))  # the portal goes down
    during = [status(d, seq, 10 + seq) for seq in (1, 2, 3) for d in dossiers]
    send(bus.names, [orjson.dumps(d) for d in during])
    assert wait_until(lambda: "open" in {n for _, n in circuit_changes(dispatcher, "portal")}, 20)
    opened_at = next(at for at, new in circuit_changes(dispatcher, "portal") if new == "open")
    cooldown = 2.0  # fast_retries
    time.sleep(max(0.0, opened_at + 3 * cooldown - time.time()))  # down for a while
    healed_at = time.time()
    bus.standins.heal("portal")  # the agency is back

    ids = {d["id"] for d in during}

    def settled() -> bool:
        return {mid for mid, t, _ in bus.store.outcomes(list(ids)) if t == "portal"} == ids

    assert wait_until(settled, 60)
    assert wait_until(lambda: circuit_changes(dispatcher, "portal")[-1][1] == "closed", 10)
    changes = circuit_changes(dispatcher, "portal")
    receipts = bus.receipts("portal")
    # While it was open the bus stopped calling: only probes, one per cool-down. The calls
    # answered in the first instant after it opened were already on their way (in flight).
    settle_in = 1.0  # less than the cool-down: the first probe comes after it
    while_open = [r for r in receipts if opened_at + settle_in < r.at < healed_at]
    probes = sum(1 for at, new in changes if new == "half_open" and at < healed_at)
    outcomes = {mid: o for mid, t, o in bus.store.outcomes(list(ids)) if t == "portal"}
    accepted: dict[str, list[int]] = {}  # dossier -> statuses the portal accepted, in order
    for r in receipts:
        if r.ok:
            payload = orjson.loads(r.body)["payload"]
            accepted.setdefault(payload["dossier_no"], []).append(payload["sequence"])
    figures(
        f"outage ({store})",
        {
            "messages": len(before) + len(during),
            "calls_while_open": len(while_open),
            "calls_just_after_opening": sum(
                opened_at <= r.at <= opened_at + settle_in for r in receipts
            ),
            "probes": probes,
            "open_s": round(healed_at - opened_at, 1),
            "delivered_after": sum(o == DELIVERED for o in outcomes.values()),
            "superseded_after": sum(o == SUPERSEDED for o in outcomes.values()),
        },
    )
    assert [new for _, new in changes][:1] == ["open"]
    assert any(new == "closed" and at > healed_at for at, new in changes), changes
    assert probes >= 1 and len(while_open) <= probes, (while_open, changes)
    assert all(not r.ok for r in receipts if opened_at < r.at < healed_at)
    # Delivered after recovery: each dossier's newest status reached the portal, accepted;
    # an older one is either delivered before it or superseded, never lost.
    newest = {d["payload"]["dossier_no"]: d["id"] for d in during if d["payload"]["sequence"] == 3}
    assert all(outcomes[mid] == DELIVERED for mid in newest.values()), outcomes
    assert set(outcomes.values()) <= {DELIVERED, SUPERSEDED}
    ok_after = {r.key for r in receipts if r.ok and r.at > healed_at}
    assert {mid for mid, o in outcomes.items() if o == DELIVERED} <= ok_after
    # In status order per dossier: something to check (the status from before the outage
    # and at least the newest one), and never backward.
    assert set(accepted) == set(dossiers)
    for dossier, sequences in accepted.items():
        assert len(sequences) >= 2 and sequences[0] == 0 and sequences[-1] == 3, accepted
        assert sequences == sorted(set(sequences)), f"{dossier} went backward: {sequences}"


@pytest.mark.parametrize("store", STORES)
def test_a_message_that_crashes_the_adapter_ends_as_poison_and_the_rest_flow(
    make_bus, monkeypatch, store
) -> None:
    def crashy_hanoi(doc: dict[str, Any]) -> None:
        fast_retries(doc)
        doc["targets"]["hanoi"]["adapter"] = "crashy"
        doc["targets"]["hanoi"]["delivery_limit"] = 3

    monkeypatch.syspath_prepend(str(PLUGINS))  # "installs" the plug-in here as well
    bus = make_bus(crashy_hanoi, store=store, env={"PYTHONPATH": str(PLUGINS)})
    bus.start_router()
    bus.start_dispatcher()
    poison = hanoi_dossier(summary="chaos: raise")
    fine = [hanoi_dossier() for _ in range(5)]
    send(bus.names, [orjson.dumps(poison), *(orjson.dumps(d) for d in fine)])
    (dead,) = collect_dead(bus.store, 1, timeout=30)
    assert (dead.reason, dead.message_id, dead.target) == ("poison", poison["id"], "hanoi")
    assert dead.attempts == 4  # delivered 1 + delivery_limit times, never with an outcome
    assert dead.detail.startswith("delivered 4 times without an outcome: "), dead.detail
    assert "the adapter or the process crashed each time" in dead.detail
    assert "delivery limit 3" in dead.detail
    fine_ids = {d["id"] for d in fine}
    assert wait_until(
        lambda: (
            {mid for mid, _, o in bus.store.outcomes(list(fine_ids)) if o == DELIVERED} == fine_ids
        ),
        20,
    )


@pytest.mark.parametrize("store", STORES)
def test_a_message_that_kills_the_process_ends_as_poison_after_restarts(
    make_bus, monkeypatch, store
) -> None:
    def crashy_hanoi(doc: dict[str, Any]) -> None:
        fast_retries(doc)
        doc["targets"]["hanoi"]["adapter"] = "crashy"
        doc["targets"]["hanoi"]["delivery_limit"] = 2

    monkeypatch.syspath_prepend(str(PLUGINS))  # "installs" the plug-in here as well
    bus = make_bus(crashy_hanoi, store=store, env={"PYTHONPATH": str(PLUGINS)})
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
    assert dead.attempts == 3 and "delivered 3 times without an outcome" in dead.detail
