"""The gateway's store calls, batched: one thread hop and one transaction per moment.

Each POST asks the store two to four things: claim its Idempotency-Key and who sent its
message id (asked together), then remember the submission and the key's answer (together).
Made one by one, every call costs a thread-pool hop and, for a write, a commit of its own:
under load that was a quarter to a third of the gateway's profile. Here the calls of all the requests waiting at a moment go
to the store together (:meth:`bus.store.Store.gateway_batch`: one transaction, one commit),
on one thread of their own; calls that arrive while a batch runs form the next. Every
request still awaits its own call's result: nothing it depends on is skipped or late.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bus.store import IdempotencyKey, Store, Submission


class BatchedStore:
    """Async versions of the store's gateway calls, committed together."""

    def __init__(self, store: Store, max_batch: int = 500) -> None:
        self.store = store
        self.max_batch = max_batch
        self._pending: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="gateway-store")
        self.batches = 0  # batches committed (calls / batches = how much was saved)
        self.calls = 0

    def _enqueue(self, name: str, *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((name, args, fut))
        if not self._running:
            self._running = True
            # a task starts on the loop's next turn: the requests handled in this turn
            # join the batch
            self._task = loop.create_task(self._drain())
        return fut

    def _call(self, name: str, *args: Any) -> asyncio.Future[Any]:
        """Queue a call now (not when awaited): what a request asks in one turn of the loop
        shares a batch. A future nobody awaits (its request was refused first) is dropped
        quietly."""
        fut = self._enqueue(name, *args)
        fut.add_done_callback(_retrieved)
        return fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                calls = [(name, args) for name, args, _ in batch]
                try:
                    results = await loop.run_in_executor(
                        self._executor, self.store.gateway_batch, calls
                    )
                except Exception as exc:
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                self.batches += 1
                self.calls += len(batch)
                for (_, _, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._running = False

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def claim_idempotency_key(
        self, sender: str, key: str, request_sha256: str, at: float
    ) -> asyncio.Future[IdempotencyKey | None]:
        return self._call("claim_idempotency_key", sender, key, request_sha256, at)

    async def take_over_idempotency_key(
        self, sender: str, key: str, request_sha256: str, was_updated_at: float, at: float
    ) -> bool:
        return bool(
            await self._call(
                "take_over_idempotency_key", sender, key, request_sha256, was_updated_at, at
            )
        )

    def answer_idempotency_key(
        self, sender: str, key: str, message_id: str, at: float
    ) -> asyncio.Future[None]:
        return self._call("answer_idempotency_key", sender, key, message_id, at)

    def release_idempotency_key(self, sender: str, key: str) -> asyncio.Future[None]:
        return self._call("release_idempotency_key", sender, key)

    async def remember(self, submission: Submission, key: str | None) -> None:
        """Who sent the message, and (with a key) the key's answer: queued together, so
        they are committed in one batch (unless it is full)."""
        recorded = self._call("record_submission", submission)
        if key is None:
            await recorded
            return
        answered = self._call(
            "answer_idempotency_key",
            submission.sender,
            key,
            submission.message_id,
            submission.accepted_at,
        )
        await asyncio.gather(recorded, answered)

    def submission(self, message_id: str) -> asyncio.Future[Submission | None]:
        """Who sent ``message_id`` (None: nobody yet). Queued at once, like every call here:
        :meth:`bus.ingress.admission.Admission.admit` asks it just before the key's claim,
        and both go to the store in one batch."""
        return self._call("submission", message_id)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a store failure as seen: the request that queued the call reports it if it still
    awaits the answer, and asyncio need not log it as never retrieved."""
    if not future.cancelled():
        future.exception()
