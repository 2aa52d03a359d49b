"""The audit trail: every hop of every message, in the store, as a tamper-evident hash chain.

Each record carries the SHA-256 of the message body and the hash of the record before it;
its own hash covers both and all its fields. Altering a record breaks its hash, deleting
one breaks the next record's link, deleting the newest ones no longer matches the chain's
head. A retention purge removes the oldest records but leaves an anchor (the last removed
hash), so what remains still verifies.

Writes are batched off the event loop: the sink appends to a list, a background task
commits it every ``interval`` seconds. A process killed in between loses at most that
much of its own trail; the messages it was handling are redelivered and leave new hops.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from bus.hops import Hop

log = structlog.get_logger("bus.audit")
GENESIS = "0" * 64
FIELDS = (
    "seq", "at", "process", "stage", "event", "message_id", "message_type", "dossier_no",
    "target", "reason", "detail", "attempt", "duration", "body_sha256",
)  # fmt: skip


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


class AuditSink:
    """A hop sink that batches audit records and commits them in the background.

    ``writer`` is anything with ``append_audit(records)``: the store itself (a thread of
    this process writes) or ``bus.audit_writer.AuditWriterProcess`` (a child process does).
    """

    def __init__(self, writer: Any, *, interval: float = 0.1, mask: Any = None) -> None:
        self.writer = writer
        self.interval = interval
        self.mask = mask or (lambda text: text)
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self._batch: list[AuditRecord] = []
        self._task: asyncio.Task[None] | None = None

    def record(self, hop: Hop) -> None:
        self._batch.append(
            AuditRecord(
                at=hop.at,
                process=self.process,
                stage=hop.stage,
                event=hop.event.value,
                message_id=hop.message_id,
                message_type=hop.message_type,
                dossier_no=hop.dossier_no,
                target=hop.target or (",".join(hop.targets) or None),
                reason=hop.reason,
                detail=self.mask(hop.detail) if hop.detail else None,
                attempt=hop.attempt,
                duration=hop.duration,
                body_sha256=hashlib.sha256(hop.body).hexdigest() if hop.body else None,
            )
        )

    async def run(self) -> None:
        """Commit batches until stopped; then commit what is left."""
        start = getattr(self.writer, "start", None)
        if start is not None:
            await asyncio.to_thread(start)
        try:
            while True:
                await asyncio.sleep(self.interval)
                await self.flush()
        finally:
            await self.flush()

    async def flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            await asyncio.to_thread(self.writer.append_audit, batch)
        except Exception as exc:
            log.error("audit.write_failed", error=str(exc), records=len(batch))
            self._batch[:0] = batch  # keep them for the next try

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush()
        close = getattr(self.writer, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
