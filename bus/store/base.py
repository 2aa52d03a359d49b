"""The store: what RabbitMQ cannot answer, behind one interface (SQLite, or PostgreSQL by URL).

It keeps which (message, target) pairs reached a final outcome (idempotency), the newest
status delivered per dossier and target (ordering), dead letters with everything needed to
replay them and every action taken on them, and each dispatcher's view of its targets.

Writes on the delivery path are batched: :meth:`Store.record` returns once the batch that
holds it is committed, so a caller can ack a message knowing its record survives a crash,
while many deliveries share one commit. Reads are single-row lookups by primary key.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog

log = structlog.get_logger("bus.store")


class FinalOutcome(StrEnum):
    """How a message ended at a target (the ``deliveries.outcome`` column)."""

    DELIVERED = "delivered"  # the agency accepted it
    SUPERSEDED = "superseded"  # a newer status of the dossier was delivered first
    DEAD_LETTERED = "dead_lettered"  # parked for an operator


class DeadLetterState(StrEnum):
    """Where a dead letter stands (the ``dead_letters.state`` column)."""

    PARKED = "parked"  # waiting for an operator
    REPLAYED = "replayed"  # sent back to a target or the ingress
    PURGED = "purged"  # given up on; its body is deleted


DELIVERED, SUPERSEDED = FinalOutcome.DELIVERED, FinalOutcome.SUPERSEDED
DEAD_LETTERED = FinalOutcome.DEAD_LETTERED
PARKED, REPLAYED, PURGED = DeadLetterState.PARKED, DeadLetterState.REPLAYED, DeadLetterState.PURGED


@dataclass(frozen=True, slots=True)
class StatusPosition:
    """Where a dossier's status stands at a target: compared by (status_at, sequence), the
    status contract's key (Unix seconds of the agency's ``status_at``)."""

    status_at: float
    sequence: int
    status: int | None = None
    message_id: str = ""

    def key(self) -> tuple[float, int]:
        return (self.status_at, self.sequence)

    def __str__(self) -> str:
        at = datetime.fromtimestamp(self.status_at, UTC).isoformat().replace("+00:00", "Z")
        return f"status {self.status} at {at} sequence {self.sequence} (message {self.message_id})"


# A payment's results in the order they may follow each other at a target: pending may become
# failed or success, failed may become success (paid again), success is final.
PAYMENT_RANKS = {"pending": 0, "failed": 1, "success": 2}


@dataclass(frozen=True, slots=True)
class PaymentState:
    """Where a payment stands at a target: its reference and the result delivered there."""

    reference: str
    result: str
    message_id: str = ""
    # A pending confirmation's body, kept until a final result arrives (reconciliation).
    body: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def rank(self) -> int:
        return PAYMENT_RANKS[self.result]

    def key(self) -> tuple[int]:
        return (self.rank,)

    def __str__(self) -> str:
        return f"payment {self.reference} {self.result} (message {self.message_id})"


@dataclass(frozen=True, slots=True)
class PendingPayment:
    """A payment whose furthest result anywhere is still ``pending``: waiting since ``since``."""

    reference: str
    since: float  # when its pending result was first delivered
    message_id: str
    targets: tuple[str, ...]  # where it is pending
    body: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A final outcome for one message at one target, to be recorded."""

    message_id: str
    target: str
    outcome: FinalOutcome
    at: float
    attempts: int = 1
    reference: str | None = None
    dossier_no: str | None = None
    position: StatusPosition | None = None  # advance the dossier's status when delivered
    payment: PaymentState | None = None  # advance the payment's result when delivered
    receiving_agency: str | None = None  # a dossier delivered: record who received it


@dataclass(slots=True)
class DeadLetter:
    """A parked message with everything needed to understand and replay it."""

    message_id: str | None
    message_type: str | None
    target: str | None
    reason: str
    detail: str
    stage: str
    attempts: int
    history: list[dict[str, Any]]
    headers: dict[str, Any]
    body: bytes
    dead_at: float
    dossier_no: str | None = None
    id: int | None = None
    state: str = PARKED  # a DeadLetterState value, as read back from the store
    recorded_at: float = 0.0
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DeadFilter:
    """Which dead letters an operator means."""

    ids: tuple[int, ...] = ()
    target: str | None = None
    message_type: str | None = None
    reason: str | None = None
    since: float | None = None
    state: DeadLetterState | None = PARKED
    limit: int | None = None


class KeyState(StrEnum):
    """Where a sender's Idempotency-Key stands (``gateway_idempotency_keys.state``)."""

    IN_FLIGHT = "in_flight"  # a request with this key is being handled now
    ANSWERED = "answered"  # the broker confirmed its message: the answer is 202 with the id


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A sender's Idempotency-Key as the gateway recorded it."""

    sender: str
    key: str
    request_sha256: str  # of the request body: the same key with another body is a conflict
    state: KeyState
    message_id: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Submission:
    """A message the gateway got the broker to hold, and who sent it (for GET's owner check)."""

    message_id: str
    sender: str
    message_type: str
    body_sha256: str
    accepted_at: float


@dataclass(frozen=True, slots=True)
class AuditGap:
    """Work the store recorded whose hop is not in the audit trail (``audit verify``)."""

    missing: str  # the hop that is missing: delivered, dead_lettered or routed
    message_id: str | None
    target: str | None
    at: float  # when the work was recorded (a dead letter: when it was parked)
    stage: str | None = None
    reason: str | None = None
    message_type: str | None = None
    dossier_no: str | None = None
    dead_letter_id: int | None = None


@dataclass(frozen=True, slots=True)
class TargetState:
    """One dispatcher process's view of one target, saved every few seconds."""

    target: str
    process: str
    state: str  # closed | open | half_open | disabled
    in_flight: int
    last_error: str | None
    last_error_at: float | None
    oldest_in_flight_at: float | None
    updated_at: float


# The gateway's per-request store calls that ``Store.gateway_batch`` runs together.
GATEWAY_BATCHABLE = frozenset(
    {
        "claim_idempotency_key",
        "take_over_idempotency_key",
        "answer_idempotency_key",
        "release_idempotency_key",
        "record_submission",
        "submission",
    }
)


class Store(ABC):
    """The store interface; see the module docstring."""

    dialect = ""

    def __init__(self, *, batch_size: int = 500, batch_delay: float = 0.005) -> None:
        self._batch_size = batch_size
        self._batch_delay = batch_delay
        self._pending: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        # Called on the event loop right before a batch of outcomes is committed: the
        # dispatcher writes the hops of those deliveries to its journal there, so a kill
        # between the commit and the ack cannot leave a delivery without its hop.
        self.before_commit: Callable[[], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    @abstractmethod
    def migrate(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied."""

    @abstractmethod
    def close(self) -> None: ...

    async def aclose(self) -> None:
        """Flush what is pending, then close."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self._flush_now()
        self.close()

    # --- delivery path -------------------------------------------------------------------

    @abstractmethod
    def delivered_already(self, message_id: str, target: str) -> bool:
        """True when this message was delivered to this target before."""

    @abstractmethod
    def status_position(self, dossier_no: str, target: str) -> StatusPosition | None:
        """The newest status delivered for this dossier to this target."""

    @abstractmethod
    def dossier_agency(self, dossier_no: str) -> str | None:
        """The receiving agency of a dossier the bus delivered (None: never delivered)."""

    @abstractmethod
    def payment_state(self, reference: str, target: str) -> PaymentState | None:
        """The furthest result delivered for this payment reference to this target."""

    @abstractmethod
    def pending_payments(self, before: float | None = None) -> list[PendingPayment]:
        """Payments pending everywhere they were delivered (since ``before``, when given),
        oldest first: what reconciliation re-queries."""

    async def record(self, outcome: Outcome) -> None:
        """Record a final outcome; returns once it is committed (batched with others)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((outcome, fut))
        if self._flusher is None or self._flusher.done():
            self._wake = asyncio.Event()
            self._flusher = asyncio.ensure_future(self._flush_loop())
        if len(self._pending) >= self._batch_size and self._wake is not None:
            self._wake.set()
        await fut

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._batch_delay)
            self._wake.clear()
            if not self._pending:
                continue
            await self._flush_now()

    async def _flush_now(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            if self.before_commit is not None:
                self.before_commit()
            await asyncio.to_thread(self.write_outcomes, [o for o, _ in batch])
        except Exception as exc:
            log.error("store.write_failed", error=str(exc), rows=len(batch))
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    @abstractmethod
    def write_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Write a batch of outcomes (and status advances) in one transaction."""

    @abstractmethod
    def outcomes(self, message_ids: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
        """(message_id, target, outcome) rows, for accounting and tests."""

    @abstractmethod
    def recently_settled(self, target: str, limit: int) -> list[str]:
        """Ids of the messages ``target`` settled last (final outcomes, then dead letters that
        were in its queue), newest first within each: how far its queue has got."""

    # --- dead letters --------------------------------------------------------------------

    @abstractmethod
    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> list[int]:
        """Store dead letters (and their dead_lettered outcomes); return their ids."""

    @abstractmethod
    def dead_letters(self, flt: DeadFilter, *, with_body: bool = False) -> list[DeadLetter]:
        """Dead letters matching a filter, oldest first."""

    @abstractmethod
    def dead_letter(self, dead_id: int) -> DeadLetter | None:
        """One dead letter with its body and the actions taken on it."""

    @abstractmethod
    def mark(
        self,
        dead_id: int,
        state: DeadLetterState,
        action: str,
        actor: str,
        detail: str,
        *,
        was: DeadLetterState = PARKED,
    ) -> bool:
        """Move a dead letter from state ``was`` to ``state`` and record the action.

        False (and nothing recorded) when it was not in state ``was``: two operators
        replaying the same dead letter cannot both succeed.
        """

    # --- audit trail ---------------------------------------------------------------------

    @abstractmethod
    def append_audit(self, records: Sequence[Any]) -> None:
        """Chain and append audit records atomically after the current head."""

    @abstractmethod
    def audit_head(self) -> tuple[int, str]:
        """(seq, hash) of the newest audit record (0 and the genesis hash when empty)."""

    @abstractmethod
    def audit_extent(self) -> tuple[int, str, int]:
        """(head seq, head hash, highest seq in the log), read together (one snapshot)."""

    @abstractmethod
    def audit_anchor(self) -> tuple[int, str]:
        """Where verification starts: after the last purge, or the beginning."""

    @abstractmethod
    def audit_records(
        self,
        *,
        dossier_no: str | None = None,
        message_ids: Sequence[str] = (),
        after_seq: int = 0,
        limit: int | None = None,
        through_seq: int | None = None,
    ) -> list[Any]:
        """Audit records in chain order, by dossier, by messages, or all after a sequence
        (up to ``through_seq`` when given)."""

    def iter_audit(
        self, *, after_seq: int = 0, through_seq: int | None = None, page_size: int = 5000
    ) -> Iterator[Any]:
        """Every audit record after ``after_seq`` (through ``through_seq``), in chain order,
        read a page at a time (keyset on ``seq``): memory stays at one page."""
        while True:
            page = self.audit_records(after_seq=after_seq, through_seq=through_seq, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            after_seq = page[-1].seq

    @abstractmethod
    def audit_keys(self, process: str, first_at: float, last_at: float) -> set[tuple[Any, ...]]:
        """(at, event, message_id, target, attempt) of ``process``'s records in the trail
        from ``first_at`` to ``last_at``: which records of a dead process's journal it has."""

    @abstractmethod
    def audit_cutoff(self) -> float:
        """The time from which the trail is whole: the oldest record kept once a purge ran,
        else 0. Work recorded before it may have had its hops purged."""

    @abstractmethod
    def audit_gaps(self, *, since: float, until: float) -> Iterator[AuditGap]:
        """Work recorded between ``since`` and ``until`` without its hop, streamed: every
        delivery without its ``delivered`` hop, every dead letter the router or dispatcher
        parked without its ``dead_lettered`` hop, every message a dispatcher hop names
        without a ``routed`` hop (or an operator's replay)."""

    @abstractmethod
    def purge_audit(self, before: float, actor: str) -> int:
        """Delete records older than ``before`` from the start of the chain; leave an anchor."""

    # --- gateway (bus/ingress) -----------------------------------------------------------

    @abstractmethod
    def claim_idempotency_key(
        self, sender: str, key: str, request_sha256: str, at: float
    ) -> IdempotencyKey | None:
        """Record ``key`` as in flight for ``sender``; None when claimed now, else the record
        already there (whoever wrote it first wins, across gateway processes)."""

    @abstractmethod
    def take_over_idempotency_key(
        self, sender: str, key: str, request_sha256: str, was_updated_at: float, at: float
    ) -> bool:
        """Claim an in-flight key nobody finished (its gateway died); False if it changed."""

    @abstractmethod
    def answer_idempotency_key(self, sender: str, key: str, message_id: str, at: float) -> None:
        """The key's request was accepted: its answer is ``message_id`` from now on."""

    @abstractmethod
    def release_idempotency_key(self, sender: str, key: str) -> None:
        """Forget an in-flight key whose request was refused: a retry is handled afresh."""

    @abstractmethod
    def record_submission(self, submission: Submission) -> None:
        """Remember who sent a message id (the first sender of an id keeps it)."""

    @abstractmethod
    def submission(self, message_id: str) -> Submission | None:
        """Who sent ``message_id`` through the gateway, or None."""

    def gateway_batch(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """Several of the gateway methods above, named with their arguments, in order; their
        results in the same order. A store that can runs them in one transaction (one commit
        for the requests of a moment); an error fails the whole batch."""
        for name, _ in calls:
            if name not in GATEWAY_BATCHABLE:
                raise ValueError(f"{name} cannot be batched")
        return [getattr(self, name)(*args) for name, args in calls]

    @abstractmethod
    def purge_gateway(self, before: float) -> int:
        """Delete idempotency keys and submissions older than ``before``; return how many."""

    @abstractmethod
    def dead_letters_of(self, message_id: str) -> list[tuple[str | None, str, str, str, float]]:
        """(target, stage, reason, detail, dead_at) of one message's dead letters, oldest first
        (a router refusal has no target)."""

    @abstractmethod
    def deliveries_of(self, message_id: str) -> list[tuple[str, str, float, int]]:
        """(target, outcome, at, attempts) of one message's final outcomes."""

    # --- targets -------------------------------------------------------------------------

    @abstractmethod
    def save_target_states(self, states: Sequence[TargetState]) -> None: ...

    @abstractmethod
    def target_states(self) -> list[TargetState]: ...


def now() -> float:
    return time.time()
