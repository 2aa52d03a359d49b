"""The gateway's store calls are committed in batches, each request still getting its own
answer: what batching may change is how many transactions, never what a call returns."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from bus.ingress.batched_store import BatchedStore
from bus.store import Submission


class RecordingStore:
    """Answers submission lookups from a dict; records every batch it was given."""

    def __init__(self, fail: bool = False, hold: threading.Event | None = None) -> None:
        self.batches: list[list[tuple[str, tuple[Any, ...]]]] = []
        self.known = {"m-1": Submission("m-1", "portal", "dossier.submitted", "aa", 1.0)}
        self.fail = fail
        self.hold = hold

    def gateway_batch(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        if self.hold is not None:
            self.hold.wait(5)
        self.batches.append(list(calls))
        if self.fail:
            raise RuntimeError("database is locked")
        return [self.known.get(args[0]) if name == "submission" else None for name, args in calls]


def test_calls_made_in_one_turn_of_the_loop_are_one_batch_with_their_own_answers() -> None:
    store = RecordingStore()
    books = BatchedStore(store)  # type: ignore[arg-type]

    async def run() -> list[Any]:
        return await asyncio.gather(
            books.submission("m-1"), books.submission("m-2"), books.submission("m-1")
        )

    try:
        found = asyncio.run(run())
    finally:
        books.close()
    assert [f.message_id if f else None for f in found] == ["m-1", None, "m-1"]
    assert len(store.batches) == 1
    assert [name for name, _ in store.batches[0]] == ["submission"] * 3


def test_calls_arriving_while_a_batch_runs_form_the_next_batch() -> None:
    hold = threading.Event()
    store = RecordingStore(hold=hold)
    books = BatchedStore(store)  # type: ignore[arg-type]

    async def run() -> None:
        first = asyncio.ensure_future(books.submission("m-1"))
        await asyncio.sleep(0.05)  # the first batch is in the store's thread, held there
        later = [asyncio.ensure_future(books.submission(f"m-{i}")) for i in range(2, 6)]
        await asyncio.sleep(0.05)
        hold.set()
        await asyncio.gather(first, *later)

    try:
        asyncio.run(run())
    finally:
        books.close()
    assert [len(b) for b in store.batches] == [1, 4]


def test_remember_queues_the_submission_and_the_keys_answer_together() -> None:
    store = RecordingStore()
    books = BatchedStore(store)  # type: ignore[arg-type]
    sub = Submission("m-3", "portal", "dossier.submitted", "bb", 2.0)
    try:
        asyncio.run(books.remember(sub, "key-1"))
    finally:
        books.close()
    assert store.batches == [
        [
            ("record_submission", (sub,)),
            ("answer_idempotency_key", ("portal", "key-1", "m-3", 2.0)),
        ]
    ]


def test_a_failed_batch_fails_every_call_in_it_and_the_next_batch_still_runs() -> None:
    store = RecordingStore(fail=True)
    books = BatchedStore(store)  # type: ignore[arg-type]

    async def run() -> None:
        calls = [books.submission("m-1"), books.release_idempotency_key("portal", "k")]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        store.fail = False
        assert (await books.submission("m-1")) is not None

    try:
        asyncio.run(run())
    finally:
        books.close()
    assert len(store.batches) == 2


@pytest.mark.parametrize("size", [1, 3])
def test_a_batch_is_never_larger_than_max_batch(size: int) -> None:
    store = RecordingStore()
    books = BatchedStore(store, max_batch=size)  # type: ignore[arg-type]

    async def run() -> None:
        await asyncio.gather(*(books.submission(f"m-{i}") for i in range(7)))

    try:
        asyncio.run(run())
    finally:
        books.close()
    assert max(len(b) for b in store.batches) <= size
    assert sum(len(b) for b in store.batches) == 7


def test_the_id_lookup_queued_before_the_keys_claim_shares_its_batch() -> None:
    """Admission.admit asks who sent the id, then claims the key: one store trip for both."""
    store = RecordingStore()
    books = BatchedStore(store)  # type: ignore[arg-type]

    async def run() -> tuple[Any, Any]:
        known = books.submission("m-1")
        claimed = await books.claim_idempotency_key("portal", "k-1", "aa", 1.0)
        return await known, claimed

    try:
        known, claimed = asyncio.run(run())
    finally:
        books.close()
    assert known is not None and known.message_id == "m-1" and claimed is None
    assert [[name for name, _ in batch] for batch in store.batches] == [
        ["submission", "claim_idempotency_key"]
    ]


def test_a_lookup_nobody_awaits_fails_quietly() -> None:
    """A request refused at its key's claim never reads its id lookup: a store failure there
    is the request's to report, not an asyncio warning about an exception never retrieved."""
    store = RecordingStore(fail=True)
    books = BatchedStore(store)  # type: ignore[arg-type]
    unretrieved: list[dict[str, Any]] = []

    async def run() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: unretrieved.append(ctx))
        books.submission("m-1")  # never awaited
        with pytest.raises(RuntimeError):
            await books.claim_idempotency_key("portal", "k-1", "aa", 1.0)

    try:
        asyncio.run(run())
    finally:
        books.close()
    import gc

    gc.collect()
    assert unretrieved == []
