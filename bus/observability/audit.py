"""The audit trail: every hop of every message, in the store, as a tamper-evident hash chain.

Each record carries the SHA-256 of the message body and the hash of the record before it;
its own hash covers both and all its fields. Altering a record breaks its hash, deleting
one breaks the next record's link, deleting the newest ones no longer matches the chain's
head. A retention purge removes the oldest records but leaves an anchor (the last removed
hash), so what remains still verifies.

Writes are batched off the event loop: the sink appends to a list, a background task
commits it every ``interval`` seconds. With a hop journal (``bus.observability.journal``)
each record is also on local disk before the ack its hop's work allows is sent, and a
process killed in between leaves its uncommitted records there; every sink appends those
of dead processes to the chain when it starts and every few seconds after.

What is kept is masked with the log masker (:data:`bus.observability.masking.LOG_MASKER`:
the safety net plus the credential values this process resolved): a hop's ``reason`` and
``detail`` always, and for a message the router refused its id, type and dossier number
too (they are whatever the sender wrote). The body is only hashed. A status update's
status code (``dossier.status_changed``: 1 … 10, not personal) is kept so a journey can
show "status 2, 4, 9, 10".

When the store cannot be written, records wait in memory, bounded by ``max_pending``; past
that, new records are dropped — loudly: an error line when dropping starts and one when it
ends (how many, from when to when), and the counts the metrics read (``pending``,
``write_failures``, ``dropped``). See docs/decisions.md for why it is not backpressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from bus.contract.rejections import shown_identity
from bus.observability.hops import Hop
from bus.observability.masking import LOG_MASKER

log = structlog.get_logger("bus.audit")
GENESIS = "0" * 64
FIELDS = (
    "seq", "at", "process", "stage", "event", "message_id", "message_type", "dossier_no",
    "target", "reason", "detail", "attempt", "duration", "body_sha256", "status",
)  # fmt: skip
# Hashed only when set, so records written before the field existed still verify.
_OPTIONAL = ("status",)
MAX_PENDING = 200_000  # records (~100 MB) kept while the store cannot be written
CHUNK = 5_000  # records per write after a backlog, so no batch grows without bound
PAGE = 5_000  # records per read when the chain is walked
RETRY_MAX = 5.0  # seconds between write attempts while the store keeps failing
RECOVER_EVERY = 5.0  # seconds between looks for the journals of processes that are gone


@dataclass(slots=True)
class AuditRecord:
    """One hop as the audit trail keeps it (personal data masked, the body only hashed)."""

    at: float
    process: str
    stage: str
    event: str
    message_id: str | None
    message_type: str | None
    dossier_no: str | None
    target: str | None
    reason: str | None
    detail: str | None
    attempt: int
    duration: float | None
    body_sha256: str | None
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""
    status: int | None = None  # a dossier.status_changed's status code (not personal)

    def fields(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every value, and this runs twice per record.
        return {name: getattr(self, name) for name in FIELDS}


def record_hash(record: AuditRecord, prev_hash: str) -> str:
    """The chain hash of a record: SHA-256 over the previous hash and the record's fields."""
    fields = record.fields()
    # Floats are rounded so both stores (REAL, DOUBLE PRECISION) give back the same digits.
    fields["at"] = round(fields["at"], 6)
    if fields["duration"] is not None:
        fields["duration"] = round(fields["duration"], 6)
    for name in _OPTIONAL:
        if fields[name] is None:
            del fields[name]
    payload = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + b"|" + payload).hexdigest()


def chain(records: list[AuditRecord], head_seq: int, head_hash: str) -> tuple[int, str]:
    """Number and link ``records`` after the head; return the new head."""
    seq, prev = head_seq, head_hash
    for record in records:
        seq += 1
        record.seq = seq
        record.at = round(record.at, 6)
        if record.duration is not None:
            record.duration = round(record.duration, 6)
        record.prev_hash = prev
        record.hash = prev = record_hash(record, prev)
    return seq, prev


@dataclass(frozen=True, slots=True)
class Break:
    """Where verification failed."""

    seq: int
    why: str


def verify(
    records: Any, start_seq: int, start_hash: str, head: tuple[int, str] | None
) -> Break | None:
    """Walk the chain from an anchor; the first broken record, or None when it holds."""
    expected_seq, prev = start_seq, start_hash
    for record in records:
        expected_seq += 1
        if record.seq != expected_seq:
            return Break(expected_seq, f"record {expected_seq} is missing (next is {record.seq})")
        if record.prev_hash != prev:
            return Break(record.seq, "its link to the previous record does not match")
        if record_hash(record, prev) != record.hash:
            return Break(record.seq, "its content does not match its hash (altered)")
        prev = record.hash
    if head is not None and (head[0] != expected_seq or head[1] != prev):
        return Break(
            expected_seq + 1, f"the chain ends at {expected_seq} but its head says {head[0]}"
        )
    return None


def verify_store(
    store: Any, *, page_size: int = PAGE, expect: tuple[int, str] | None = None
) -> tuple[Break | None, tuple[int, str], tuple[int, str]]:
    """Verify a store's chain, read page by page: (first break or None, anchor, head).

    Memory stays at one page whatever the chain's length. The chain is walked up to the
    head read at the start (records committed meanwhile are the next run's); records past
    that head, which no write of the bus leaves, are a break too. ``expect`` is a
    ``(seq, hash)`` exported earlier (``dvcbus audit head``): the record ``seq`` must still
    carry that hash — a chain rewritten from before it no longer does.
    """
    anchor = store.audit_anchor()
    head_seq, head_hash, last_seq = store.audit_extent()
    head = (head_seq, head_hash)
    records: Iterable[AuditRecord] = store.iter_audit(
        after_seq=anchor[0], through_seq=head_seq, page_size=page_size
    )
    found: dict[str, Any] = {}
    if expect is not None:
        records = _watch_for(records, expect[0], found)
    broken = verify(records, *anchor, head)
    if broken is None and last_seq > head_seq:
        broken = Break(
            head_seq + 1, f"records after the chain's head {head_seq} (appended outside it)"
        )
    if broken is None and expect is not None:
        broken = _check_expected(expect, anchor, head, found.get("hash"))
    return broken, anchor, head


def _watch_for(
    records: Iterable[AuditRecord], seq: int, found: dict[str, Any]
) -> Iterator[AuditRecord]:
    for record in records:
        if record.seq == seq:
            found["hash"] = record.hash
        yield record


def _check_expected(
    expect: tuple[int, str], anchor: tuple[int, str], head: tuple[int, str], seen: str | None
) -> Break | None:
    seq, digest = expect
    if seq == anchor[0] and seq > 0:
        seen = anchor[1]  # purged since: the anchor keeps the hash of the last purged record
    elif seq < anchor[0]:
        return Break(seq, f"record {seq} was purged (anchor at {anchor[0]}); cannot compare")
    elif seq > head[0]:
        return Break(seq, f"record {seq} is past the chain's head {head[0]} (records removed?)")
    if seen != digest:
        return Break(seq, "its hash is not the one exported earlier (the chain was rewritten)")
    return None


class AuditSink:
    """A hop sink that batches audit records and commits them in the background.

    ``writer`` is anything with ``append_audit(records)``: the store itself (a thread of
    this process writes) or ``audit_writer.AuditWriterProcess`` (a child process does).
    ``mask`` masks free text; by default the log masker's, with the resolved credentials.
    At most ``max_pending`` records wait for the store; see the module docstring.
    ``journal`` (a ``HopJournal``) keeps every record on disk until the store has it;
    ``kept`` (``Store.audit_keys``) tells which records of a dead process's journal the
    chain already holds.
    """

    def __init__(
        self,
        writer: Any,
        *,
        interval: float = 0.1,
        mask: Callable[[str], str] | None = None,
        max_pending: int = MAX_PENDING,
        chunk: int = CHUNK,
        journal: Any = None,
        kept: Callable[[str, float, float], set[tuple[Any, ...]]] | None = None,
    ) -> None:
        self.writer = writer
        self.journal = journal
        self.kept = kept
        self.recovered = 0  # records of dead processes' journals appended (counts up)
        self._committed = 0  # records committed so far (= journal sequence of the last one)
        self.interval = interval
        self.mask = mask or LOG_MASKER.text
        self.max_pending = max_pending
        self.chunk = chunk
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self.write_failures = 0  # batches that failed to write (counts up)
        self.dropped = 0  # records not kept because the buffer was full (counts up)
        self._batch: list[AuditRecord] = []
        self._writing = 0
        self._lock = asyncio.Lock()
        self._failing_since: float | None = None
        self._failures_logged = 0.0
        self._episode_failures = 0
        self._dropping: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Records not yet in the store (waiting, or in the write under way)."""
        return len(self._batch) + self._writing

    def record(self, hop: Hop) -> None:
        if len(self._batch) + self._writing >= self.max_pending:
            self._drop(hop)
            return
        mask = self.mask
        message_id, message_type, dossier_no = shown_identity(
            hop.stage, hop.reason, hop.message_id, hop.message_type, hop.dossier_no, mask
        )
        record = AuditRecord(
            at=hop.at,
            process=self.process,
            stage=hop.stage,
            event=hop.event.value,
            message_id=message_id,
            message_type=message_type,
            dossier_no=dossier_no,
            target=hop.target or (",".join(hop.targets) or None),
            reason=mask(hop.reason) if hop.reason else None,
            detail=mask(hop.detail) if hop.detail else None,
            attempt=hop.attempt,
            duration=hop.duration,
            body_sha256=_body_digest(hop),
            status=hop.status,
        )
        self._batch.append(record)
        if self.journal is not None:
            self.journal.add(record)

    def sync(self) -> None:
        """Write the records of the hops so far to the journal (before an ack or a commit)."""
        if self.journal is not None:
            self.journal.write()

    def _drop(self, hop: Hop) -> None:
        self.dropped += 1
        if self._dropping is None:
            self._dropping = {"count": 0, "first_at": hop.at}
            log.error(
                "audit.records_dropped",
                why="the audit store cannot be written and the pending buffer is full",
                max_pending=self.max_pending,
                hint="records of the hops from now on are only in the hop log lines",
            )
        self._dropping["count"] += 1
        self._dropping["last_at"] = hop.at

    async def run(self) -> None:
        """Commit batches until stopped; then commit what is left."""
        start = getattr(self.writer, "start", None)
        if start is not None:
            try:
                await asyncio.to_thread(start)
            except Exception as exc:  # the first write tries again
                self._failed(exc)
        next_recovery = time.monotonic()
        try:
            while True:
                if self.journal is not None and time.monotonic() >= next_recovery:
                    await self.recover()
                    next_recovery = time.monotonic() + RECOVER_EVERY
                wait = self.interval
                if self._failing_since is not None:  # back off while the store is failing
                    wait = min(RETRY_MAX, self.interval * 2 ** min(self._episode_failures, 8))
                await asyncio.sleep(wait)
                await self.flush()
        finally:
            await self.flush()

    async def recover(self) -> int:
        """Append the uncommitted records of dead processes' journals to the chain."""
        from bus.observability.journal import recover

        try:
            appended = await asyncio.to_thread(
                recover, self.journal.directory, self.writer.append_audit, self.kept, self.chunk
            )
        except Exception as exc:  # the store is failing: the journals wait for the next try
            log.error("audit.journal_recovery_failed", error=str(exc))
            return 0
        self.recovered += appended
        return appended

    async def flush(self) -> bool:
        """Write what is pending, in chunks; False when the store refused (records kept)."""
        async with self._lock:
            while self._batch:
                chunk = self._batch[: self.chunk]
                del self._batch[: len(chunk)]
                self._writing = len(chunk)
                try:
                    await asyncio.to_thread(self.writer.append_audit, chunk)
                except Exception as exc:
                    self._batch[:0] = chunk  # kept, in order, for the next try
                    self._failed(exc)
                    return False
                finally:
                    self._writing = 0
                self._committed += len(chunk)
                if self.journal is not None:
                    self.journal.committed(self._committed)
                self._written()
            return True

    def _failed(self, exc: Exception) -> None:
        self.write_failures += 1
        self._episode_failures += 1
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            self._failures_logged = now
            log.error("audit.write_failed", error=str(exc), pending=self.pending)
        elif now - self._failures_logged >= 60:
            self._failures_logged = now
            log.error(
                "audit.write_failing",
                error=str(exc),
                pending=self.pending,
                failures=self._episode_failures,
                failing_for_s=round(now - self._failing_since),
            )

    def _written(self) -> None:
        if self._failing_since is not None:
            log.warning(
                "audit.write_recovered",
                failures=self._episode_failures,
                failed_for_s=round(time.monotonic() - self._failing_since, 1),
                pending=self.pending,
            )
            self._failing_since = None
            self._episode_failures = 0
        if self._dropping is not None and len(self._batch) < self.max_pending:
            dropping, self._dropping = self._dropping, None
            log.error(
                "audit.records_drop_ended",
                dropped=dropping["count"],
                first_at=dropping["first_at"],
                last_at=dropping.get("last_at", dropping["first_at"]),
            )

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush()
        if self._batch:
            log.error(
                "audit.unwritten_at_stop",
                records=len(self._batch),
                journal=None if self.journal is None else str(self.journal.directory),
            )
        if self.journal is not None:
            self.journal.close(everything_committed=not self._batch)
        close = getattr(self.writer, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


def _body_digest(hop: Hop) -> str | None:
    """The hop body's SHA-256 (hex): the emitter's, when it hashed the body already (the
    router and dispatcher do for the stamp), so a message is hashed once per process."""
    if not hop.body:
        return None
    if hop.body_sha256 is not None:
        return hop.body_sha256.hex()
    return hashlib.sha256(hop.body).hexdigest()
