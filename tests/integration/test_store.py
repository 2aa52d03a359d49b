"""The store on real SQLite and PostgreSQL: migrations, idempotency, ordering, dead letters."""

import asyncio
import time
from pathlib import Path

import pytest

from bus.store import (
    DEAD_LETTERED,
    DELIVERED,
    PARKED,
    PURGED,
    REPLAYED,
    SUPERSEDED,
    DeadFilter,
    DeadLetter,
    Outcome,
    PaymentState,
    StatusPosition,
    TargetState,
    open_store,
)
from tests.integration.store_fixtures import opened_store, postgres_schema_url, sqlite_url


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path: Path):
    with opened_store(request.param, tmp_path) as s:
        yield s


def record(store, *outcomes: Outcome) -> None:
    async def go() -> None:
        await asyncio.gather(*(store.record(o) for o in outcomes))  # each returns once committed

    asyncio.run(go())


def test_migrations_apply_once(store) -> None:
    assert store.migrate() == []  # already applied by open_store


def test_a_recorded_delivery_is_remembered(store) -> None:
    assert not store.delivered_already("m1", "hanoi")
    record(store, Outcome("m1", "hanoi", DELIVERED, time.time(), reference="HN-1"))
    assert store.delivered_already("m1", "hanoi")
    assert not store.delivered_already("m1", "portal")


def test_many_concurrent_records_share_commits_and_all_land(store) -> None:
    outcomes = [Outcome(f"m{i}", "portal", DELIVERED, time.time()) for i in range(2000)]
    record(store, *outcomes)
    assert len(store.outcomes()) == 2000


def test_status_position_only_moves_forward(store) -> None:
    newer = StatusPosition(2000.0, 3, 9, "m-new")
    older = StatusPosition(1000.0, 5, 4, "m-old")
    same_time_later_seq = StatusPosition(2000.0, 4, 10, "m-last")
    record(store, Outcome("m-new", "portal", DELIVERED, 1.0, dossier_no="D1", position=newer))
    record(store, Outcome("m-old", "portal", DELIVERED, 2.0, dossier_no="D1", position=older))
    assert store.status_position("D1", "portal") == newer
    record(
        store,
        Outcome("m-last", "portal", DELIVERED, 3.0, dossier_no="D1", position=same_time_later_seq),
    )
    assert store.status_position("D1", "portal") == same_time_later_seq
    assert store.status_position("D1", "hanoi") is None


def test_payment_state_only_moves_forward_per_reference_and_target(store) -> None:
    """pending → success sticks; a later failed or pending leaves success in place."""
    for i, result in enumerate(["pending", "success", "failed", "pending"]):
        state = PaymentState("REF-1", result, f"p{i}")
        record(store, Outcome(f"p{i}", "agency", DELIVERED, float(i), payment=state))
    assert store.payment_state("REF-1", "agency") == PaymentState("REF-1", "success", "p1")
    assert store.payment_state("REF-1", "portal") is None
    assert store.payment_state("REF-2", "agency") is None
    superseded = PaymentState("REF-3", "success", "q1")
    record(store, Outcome("q1", "agency", SUPERSEDED, 1.0, payment=superseded))
    assert store.payment_state("REF-3", "agency") is None  # only deliveries move it


def test_pending_payments_are_those_with_no_final_result_anywhere(store) -> None:
    def deliver(message_id: str, target: str, reference: str, result: str, at: float) -> None:
        body = f"body of {message_id}".encode() if result == "pending" else None
        state = PaymentState(reference, result, message_id, body)
        record(store, Outcome(message_id, target, DELIVERED, at, payment=state))

    deliver("a1", "portal", "A", "pending", 10.0)
    deliver("a1", "agency", "A", "pending", 11.0)
    deliver("b1", "portal", "B", "pending", 5.0)
    deliver("b2", "portal", "B", "success", 20.0)  # final at one target: answered
    deliver("c1", "portal", "C", "pending", 30.0)
    pending = store.pending_payments()
    assert [(p.reference, p.since, p.targets) for p in pending] == [
        ("A", 10.0, ("agency", "portal")),
        ("C", 30.0, ("portal",)),
    ]
    assert pending[0].body == b"body of a1" and pending[0].message_id == "a1"
    assert [p.reference for p in store.pending_payments(before=20.0)] == ["A"]
    deliver("a2", "agency", "A", "failed", 40.0)
    assert [p.reference for p in store.pending_payments()] == ["C"]


def test_superseded_and_dead_letter_outcomes_do_not_count_as_delivered(store) -> None:
    record(store, Outcome("m2", "portal", SUPERSEDED, 1.0))
    assert not store.delivered_already("m2", "portal")
    record(store, Outcome("m2", "portal", DELIVERED, 2.0))  # replayed later, delivered
    assert store.delivered_already("m2", "portal")
    record(store, Outcome("m2", "portal", DEAD_LETTERED, 3.0))  # never overwrites delivered
    assert store.outcomes(["m2"]) == [("m2", "portal", DELIVERED)]


def letter(i: int, **kw) -> DeadLetter:
    base = dict(
        message_id=f"id{i}",
        message_type="dossier.submitted",
        target="hanoi",
        reason="rejected",
        detail="HTTP 400",
        stage="dispatcher",
        attempts=1,
        history=[{"at": 1.0, "reason": "HTTP 400"}],
        headers={"x-dvcbus-target": "hanoi"},
        body=b'{"id": "x"}',
        dead_at=1000.0 + i,
        dossier_no="D9",
    )
    base.update(kw)
    return DeadLetter(**base)


def test_dead_letters_are_listed_by_filter_and_shown_whole(store) -> None:
    ids = store.add_dead_letters(
        [letter(1), letter(2, reason="invalid", target=None, stage="router"), letter(3)]
    )
    assert len(ids) == 3
    assert [d.id for d in store.dead_letters(DeadFilter(reason="rejected"))] == [ids[0], ids[2]]
    assert [d.id for d in store.dead_letters(DeadFilter(since=1002.0))] == [ids[1], ids[2]]
    shown = store.dead_letter(ids[0])
    assert (
        shown is not None
        and shown.body == b'{"id": "x"}'
        and shown.history[0]["reason"] == "HTTP 400"
    )
    # a dispatcher dead letter is also the final outcome of that (message, target)
    assert ("id1", "hanoi", DEAD_LETTERED) in store.outcomes()


def test_nothing_leaves_the_dead_letter_store_without_a_record(store) -> None:
    (dead_id,) = store.add_dead_letters([letter(5)])
    assert store.mark(dead_id, REPLAYED, "replay", "ops@hanoi", "to hanoi")
    assert not store.mark(dead_id, REPLAYED, "replay", "ops@hanoi", "again")  # idempotent
    (purge_id,) = store.add_dead_letters([letter(6)])
    assert store.mark(purge_id, PURGED, "purge", "ops", "test data")
    purged = store.dead_letter(purge_id)
    assert purged is not None and purged.state == PURGED and purged.body == b""
    assert [a["action"] for a in purged.actions] == ["purge"]
    replayed = store.dead_letter(dead_id)
    assert replayed is not None and replayed.state == REPLAYED
    assert [(a["action"], a["actor"]) for a in replayed.actions] == [("replay", "ops@hanoi")]
    assert store.dead_letters(DeadFilter(state=PARKED)) == []


def test_target_states_are_upserted_per_process(store) -> None:
    state = TargetState("hanoi", "host:1", "open", 3, "HTTP 503", 5.0, 4.0, 6.0)
    store.save_target_states([state])
    store.save_target_states([TargetState("hanoi", "host:1", "closed", 0, None, None, None, 7.0)])
    (saved,) = store.target_states()
    assert (saved.state, saved.in_flight, saved.updated_at) == ("closed", 0, 7.0)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_processes_starting_together_migrate_once(dialect, tmp_path: Path) -> None:
    import contextlib
    import threading

    with contextlib.ExitStack() as stack:
        url = (
            sqlite_url(tmp_path)
            if dialect == "sqlite"
            else stack.enter_context(postgres_schema_url())
        )
        errors: list[BaseException] = []
        stores: list = []

        def start() -> None:
            try:
                stores.append(open_store(url))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert stores[0].migrate() == []
        for s in stores:
            s.close()


def test_the_same_dead_letter_arriving_twice_is_kept_once(store) -> None:
    first = store.add_dead_letters([letter(1)])
    again = store.add_dead_letters([letter(1)])  # redelivered after a crash before the ack
    assert first == again
    assert len(store.dead_letters(DeadFilter(state=None))) == 1


def test_distinct_bodies_refused_with_one_id_and_reason_are_distinct_dead_letters(store) -> None:
    bodies = [b'{"id": "m1", "n": 1}', b'{"id": "m1", "n": 2}', b'{"id": "m1", "n": 3}']
    details = ["payload.n: const 0 (1)", "payload.n: const 0 (2)", "payload.n: const 0 (3)"]
    ids = store.add_dead_letters(
        [
            letter(1, message_id="m1", target=None, reason="invalid", body=b, detail=d)
            for b, d in zip(bodies, details, strict=True)
        ]
    )
    assert len(set(ids)) == 3
    kept = store.dead_letters(DeadFilter(state=None), with_body=True)
    assert [(d.body, d.detail) for d in kept] == list(zip(bodies, details, strict=True))


def test_a_body_without_message_id_redelivered_is_kept_once(store) -> None:
    broken = letter(1, message_id=None, target=None, reason="malformed", body=b'{"id": ')
    first = store.add_dead_letters([broken])
    assert store.add_dead_letters([broken]) == first
    other = store.add_dead_letters([letter(1, message_id=None, body=b"[]", reason="malformed")])
    assert other != first
    assert len(store.dead_letters(DeadFilter(state=None))) == 2


def test_the_same_body_parked_again_after_a_replay_is_a_new_dead_letter(store) -> None:
    (first,) = store.add_dead_letters([letter(1)])
    assert store.mark(first, REPLAYED, "replay", "ops", "to hanoi")
    (again,) = store.add_dead_letters([letter(1)])  # refused again by the agency
    assert again != first


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_dead_letters_stored_before_the_digest_are_still_recognised_when_redelivered(
    dialect, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib

    from bus.store import migrations

    with contextlib.ExitStack() as stack:
        url = (
            sqlite_url(tmp_path)
            if dialect == "sqlite"
            else stack.enter_context(postgres_schema_url())
        )
        monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        old = open_store(url)  # a store as version 1 left it
        with old.transaction() as cur:
            cur.execute(
                old.sql(
                    "INSERT INTO dead_letters (message_id, target, reason, detail, stage, "
                    "attempts, history, headers, body, dead_at, recorded_at, state) "
                    "VALUES ('id1', 'hanoi', 'rejected', 'HTTP 400', 'dispatcher', 1, '[]', "
                    "'{}', ?, 1000.0, 1000.0, 'parked')"
                ),
                (b'{"id": "x"}',),
            )
        old.close()
        monkeypatch.undo()
        upgraded = open_store(url)
        try:
            (before,) = upgraded.dead_letters(DeadFilter(state=None))
            assert upgraded.add_dead_letters([letter(1)]) == [before.id]  # same body, kept once
            assert upgraded.add_dead_letters([letter(1, body=b'{"id": "y"}')]) != [before.id]
        finally:
            upgraded.close()
