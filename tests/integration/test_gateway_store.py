"""The gateway's records on real SQLite and PostgreSQL: idempotency keys and who sent what."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.store import KeyState, Store, Submission
from tests.integration.store_fixtures import opened_store

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with opened_store(request.param, tmp_path) as s:
        yield s


def test_the_first_claim_of_a_key_wins_and_the_next_sees_it(store: Store) -> None:
    assert store.claim_idempotency_key("portal", "k1", "aa", 100.0) is None
    seen = store.claim_idempotency_key("portal", "k1", "bb", 101.0)
    assert seen is not None
    assert (seen.state, seen.request_sha256, seen.message_id) == (KeyState.IN_FLIGHT, "aa", None)
    assert store.claim_idempotency_key("hanoi", "k1", "bb", 101.0) is None  # keys are per sender


def test_an_answered_key_gives_its_message_id(store: Store) -> None:
    store.claim_idempotency_key("portal", "k1", "aa", 100.0)
    store.answer_idempotency_key("portal", "k1", "m-1", 102.0)
    seen = store.claim_idempotency_key("portal", "k1", "aa", 103.0)
    assert seen is not None
    assert (seen.state, seen.message_id) == (KeyState.ANSWERED, "m-1")
    store.release_idempotency_key("portal", "k1")  # only an in-flight key is released
    assert store.claim_idempotency_key("portal", "k1", "aa", 104.0) is not None


def test_a_released_key_can_be_claimed_again(store: Store) -> None:
    store.claim_idempotency_key("portal", "k1", "aa", 100.0)
    store.release_idempotency_key("portal", "k1")
    assert store.claim_idempotency_key("portal", "k1", "bb", 101.0) is None


def test_a_stale_key_is_taken_over_once(store: Store) -> None:
    store.claim_idempotency_key("portal", "k1", "aa", 100.0)
    assert store.take_over_idempotency_key("portal", "k1", "aa", 100.0, 500.0)
    assert not store.take_over_idempotency_key("portal", "k1", "aa", 100.0, 501.0)


def test_the_first_sender_of_an_id_keeps_it_until_the_retention_ends(store: Store) -> None:
    now = time.time()
    store.record_submission(Submission("m-1", "portal", "dossier.submitted", "aa", now - 10))
    store.record_submission(Submission("m-1", "hanoi", "dossier.submitted", "bb", now))
    assert store.submission("m-1") == Submission(
        "m-1", "portal", "dossier.submitted", "aa", now - 10
    )
    store.claim_idempotency_key("portal", "old", "aa", now - 10)
    store.claim_idempotency_key("portal", "new", "aa", now)
    assert store.purge_gateway(now - 5) == 2
    assert store.submission("m-1") is None
    assert store.claim_idempotency_key("portal", "new", "aa", now) is not None


def test_a_batch_of_gateway_calls_answers_each_in_order_as_one_by_one_would(store: Store) -> None:
    now = time.time()
    results = store.gateway_batch(
        [
            ("claim_idempotency_key", ("portal", "k1", "aa", now)),
            ("claim_idempotency_key", ("portal", "k1", "aa", now)),  # the same key again
            ("record_submission", (Submission("m-1", "portal", "dossier.submitted", "aa", now),)),
            ("answer_idempotency_key", ("portal", "k1", "m-1", now)),
            ("submission", ("m-1",)),
            ("submission", ("m-2",)),
            ("claim_idempotency_key", ("portal", "k1", "aa", now)),
        ]
    )
    assert results[0] is None  # claimed now
    assert results[1] is not None and results[1].state == KeyState.IN_FLIGHT
    assert results[4] == Submission("m-1", "portal", "dossier.submitted", "aa", now)
    assert results[5] is None
    assert results[6] is not None and (results[6].state, results[6].message_id) == (
        KeyState.ANSWERED,
        "m-1",
    )
    assert store.submission("m-1") is not None  # committed


def test_a_batch_that_fails_commits_none_of_its_calls(store: Store) -> None:
    now = time.time()
    with pytest.raises(ValueError, match="cannot be batched"):
        store.gateway_batch([("purge_gateway", (now,))])
    with pytest.raises(Exception):  # noqa: B017 - sqlite3 and psycopg raise their own errors
        store.gateway_batch(
            [
                ("claim_idempotency_key", ("portal", "k9", "aa", now)),
                ("record_submission", (Submission("m-9", "portal", "t", "aa", None),)),  # type: ignore[arg-type]
            ]
        )
    assert store.claim_idempotency_key("portal", "k9", "aa", now) is None  # rolled back
    assert store.submission("m-9") is None
