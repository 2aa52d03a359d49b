"""The hop journal: a process's audit records on local disk before the ack their work allows.

The audit trail commits hops in batches every 100 ms, after the router or the dispatcher has
already acked the work they describe; a process killed in between would take those hops with
it. So each audit record is also appended to this process's journal, and everything that
sends an ack (``IngressAcks``, ``ChannelAcks``) or commits a delivery record (``Store.record``)
first writes out what was appended since the last time — one ``os.write`` per ack batch,
never one per message. A ``write()`` that returned survives SIGKILL (the data is in the page
cache); nothing is fsynced, so a power loss may lose the last hops, as the broker's own
fsync policy may lose its last messages (docs/decisions.md, "Durable hops").

Files, in ``audit_journal_dir``: ``NAME.lock``, flocked (exclusively) by its process for its
whole life and inherited by its audit writer child, and segments ``NAME.N.journal``, one
record per line (``[journal_seq, at, process, …]``), with ``{"committed": SEQ}`` lines once the
records through SEQ are in the store. A segment is deleted once all of it is committed, and
a new one begun past ``segment_bytes``, so the files stay small. On a clean stop everything
is removed.

A journal whose lock can be taken belongs to a process that is gone (and its writer child
with it): :func:`orphans` finds them, and the audit sink of any bus process appends their
uncommitted records to the chain (original time, process and fields), then deletes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import operator
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from bus.observability.audit import AuditRecord

log = structlog.get_logger("bus.journal")
SEGMENT_BYTES = 4 * 1024 * 1024
ABANDONED_AFTER = 60.0  # seconds: an unnamed lock file this old was left by a killed process
_LINE = orjson.OPT_APPEND_NEWLINE
# A record line is ``[journal_seq, *these values]``: values, not an object with names, are a
# third of the cost to serialise. New fields go at the end (a shorter line still reads).
FIELDS = (
    "at", "process", "stage", "event", "message_id", "message_type", "dossier_no", "target",
    "reason", "detail", "attempt", "duration", "body_sha256", "status",
)  # fmt: skip
_values = operator.attrgetter(*FIELDS)


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class HopJournal:
    """This process's journal: records appended in memory, written out before each ack."""

    def __init__(self, directory: Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Created under a name scanners ignore, locked, then renamed: no scanner can take the
        # lock of a journal that is being created and delete it under its owner.
        temporary = directory / f"{self.name}.lock.tmp"
        self.lock_fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        os.rename(temporary, self.lock_path)
        self.seq = 0  # journal sequence of the last record added
        self.written_seq = 0  # ... of the last record written to a segment (in the file)
        self.committed_seq = 0  # ... of the last record the store has
        self._buffer: list[bytes] = []
        self._segments: list[tuple[Path, int]] = []  # older segments, with their last seq
        self._number = 0
        self._fd = -1
        self._path = Path()
        self._size = 0
        self._torn = False
        self._open_segment()

    @property
    def lock_path(self) -> Path:
        return self.directory / f"{self.name}.lock"

    def _open_segment(self) -> None:
        self._number += 1
        self._path = self.directory / f"{self.name}.{self._number}.journal"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = 0
        self._torn = False

    def add(self, record: AuditRecord) -> None:
        """Keep a record to be written at the next :meth:`write` (serialised now: a thread
        writing the store may change the record's fields later)."""
        self.seq += 1
        self._buffer.append(orjson.dumps((self.seq, *_values(record)), option=_LINE))

    def write(self) -> None:
        """Write out every record added so far, in one ``os.write`` (called before an ack).

        If the write fails (a full disk), the records stay pending and the error goes to the
        caller, which then does not send its acks.
        """
        if self._buffer:
            self._write(b"".join(self._buffer))
            self._buffer.clear()
            self.written_seq = self.seq

    def _write(self, data: bytes) -> None:
        if self._torn:  # a failed write left part of a line: end it, it is skipped on reading
            data = b"\n" + data
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except OSError:
                self._torn = len(view) < len(data) or self._torn
                raise
        self._torn = False
        self._size += len(data)

    def committed(self, through: int) -> None:
        """The store has the records through ``through``: say so, and drop what is done."""
        if through <= self.committed_seq:
            return
        # Records committed before any ack needed them on disk need not go there now.
        del self._buffer[: max(0, through - (self.seq - len(self._buffer)))]
        if self.written_seq > self.committed_seq:  # the file holds records it must mark
            self._write(orjson.dumps({"committed": through}, option=_LINE))
        self.committed_seq = through
        while self._segments and self._segments[0][1] <= through:
            path, _ = self._segments.pop(0)
            path.unlink(missing_ok=True)
        if self._size >= self.segment_bytes:
            os.close(self._fd)
            if self.written_seq <= through:
                self._path.unlink(missing_ok=True)
            else:
                self._segments.append((self._path, self.written_seq))
            self._open_segment()

    def close(self, *, everything_committed: bool) -> None:
        """Release the journal; its files are deleted when the store has every record,
        otherwise left (written out) for the next process to recover."""
        try:
            if not everything_committed:
                self.write()
        finally:
            os.close(self._fd)
            if everything_committed:
                for path, _ in self._segments:
                    path.unlink(missing_ok=True)
                self._path.unlink(missing_ok=True)
                self.lock_path.unlink(missing_ok=True)
            os.close(self.lock_fd)


@dataclass
class Orphan:
    """The journal of a process that is gone, locked by us while we recover it."""

    lock_path: Path
    lock_fd: int
    segments: list[Path] = field(default_factory=list)

    def uncommitted(self) -> list[AuditRecord]:
        """Its records the store was not known to have, in the order they were added.

        A torn last line (the process was killed in the middle of a write) is skipped: the
        write had not returned, so no ack that depended on it was sent.
        """
        records: dict[int, AuditRecord] = {}
        committed = 0
        for path in self.segments:
            with path.open("rb") as lines:
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        doc = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(doc, dict):
                        committed = max(committed, int(doc.get("committed", 0)))
                    elif isinstance(doc, list) and len(doc) > 1:
                        records[int(doc[0])] = AuditRecord(
                            **dict(zip(FIELDS, doc[1:], strict=False))
                        )
        return [records[seq] for seq in sorted(records) if seq > committed]

    def discard(self) -> None:
        """Delete it (its records are in the store) and release the lock."""
        for path in self.segments:
            path.unlink(missing_ok=True)
        self.lock_path.unlink(missing_ok=True)
        os.close(self.lock_fd)

    def release(self) -> None:
        """Leave it for a later try (the store could not take its records)."""
        os.close(self.lock_fd)


def orphans(directory: Path) -> Iterator[Orphan]:
    """The journals in ``directory`` whose owner is gone, each locked until discarded or
    released (a journal another process is recovering, or its live owner holds, is skipped)."""
    if not directory.is_dir():
        return
    for lock_path in sorted(directory.glob("*.lock.tmp")):
        _remove_abandoned(lock_path)  # killed between creating and naming its lock
    for lock_path in sorted(directory.glob("*.lock")):
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            continue
        if not _lock(fd) or not _still_named(fd, lock_path):
            os.close(fd)  # alive, or recovered and deleted by someone else meanwhile
            continue
        name = lock_path.name.removesuffix(".lock")
        segments = sorted(
            directory.glob(f"{name}.*.journal"),
            key=lambda p: int(p.name.removeprefix(f"{name}.").removesuffix(".journal")),
        )
        yield Orphan(lock_path, fd, segments)


def _still_named(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _remove_abandoned(path: Path) -> None:
    """A lock file never named: left by a process killed while creating its journal (old
    enough that its creator, which locks it right after creating it, is not still at it)."""
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDWR)
        try:
            old = time.time() - os.fstat(fd).st_mtime > ABANDONED_AFTER
            if old and _lock(fd) and _still_named(fd, path):
                path.unlink()
        finally:
            os.close(fd)


Append = Callable[[Sequence[AuditRecord]], None]
Kept = Callable[[str, float, float], set[tuple[Any, ...]]]


def record_key(record: AuditRecord) -> tuple[Any, ...]:
    """What tells one record of a process from another: its time (as the chain keeps it),
    event, message, target and attempt."""
    return (round(record.at, 6), record.event, record.message_id, record.target, record.attempt)


def recover(directory: Path, append: Append, kept: Kept | None = None, chunk: int = 5000) -> int:
    """Append the uncommitted records of every orphan journal in ``directory`` to the chain,
    then delete the journal; the number of records appended.

    ``kept(process, first_at, last_at)`` gives the keys (:func:`record_key`) of that
    process's records already in the chain in that window: a batch its writer committed
    after the last mark (the writer child finishes the batch in hand when its parent is
    killed) is not appended twice. An orphan whose records cannot be appended is left for
    the next try (its records may then be partly in the chain; ``kept`` skips those).
    """
    total = 0
    for orphan in orphans(directory):
        try:
            records = orphan.uncommitted()
            if records and kept is not None:
                records = _not_kept(records, kept)
            for start in range(0, len(records), chunk):
                append(records[start : start + chunk])
        except BaseException:
            orphan.release()
            raise
        orphan.discard()
        total += len(records)
        if records:  # a journal with nothing uncommitted is just removed
            log.warning(
                "journal.recovered",
                journal=orphan.lock_path.name.removesuffix(".lock"),
                records=len(records),
                why="a process was killed before its last hops reached the audit trail",
            )
    return total


def _not_kept(records: list[AuditRecord], kept: Kept) -> list[AuditRecord]:
    by_process: dict[str, list[AuditRecord]] = {}
    for record in records:
        by_process.setdefault(record.process, []).append(record)
    known: set[tuple[Any, ...]] = set()
    for process, own in by_process.items():
        ats = [r.at for r in own]
        known |= {(process, *key) for key in kept(process, min(ats) - 1e-6, max(ats) + 1e-6)}
    return [r for r in records if (r.process, *record_key(r)) not in known]
