"""The audit trail's writer in a process of its own, so a busy router never waits for it.

Chaining and committing hop records costs tens of microseconds per record in Python and
SQLite; on a thread of the router it competed with the event loop for the GIL (router
stage −12% measured with the trail on vs off). A child process (``python -m
bus.observability.audit_writer STORE_URL``)
takes each batch over a pipe, writes it through the same store
code, and answers once it is committed: the sink's flush still returns only when its records
are in the store, and the chain stays one chain whichever process writes.

Failure semantics: if the child dies, the batch it was given is reported failed and sent
again to a new child, so a record may appear twice in the trail, never not at all; if the
parent dies, the child reads end-of-file, finishes the batch in hand and exits (holding the
parent's hop journal lock until then, so the journal is recovered after that batch). The child
ignores SIGINT and SIGTERM so that a Ctrl-C or a signal to the process group cannot kill it
before its parent's last flush.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import BinaryIO

import orjson

from bus.errors import DvcBusError
from bus.observability.audit import AuditRecord

_LENGTH = 4
OK = b"ok"


class AuditWriterError(DvcBusError):
    """The writer process could not commit a batch (or is gone); the batch is not written."""


def _send(stream: BinaryIO, payload: bytes) -> None:
    stream.write(len(payload).to_bytes(_LENGTH, "big") + payload)
    stream.flush()


def _receive(stream: BinaryIO) -> bytes | None:
    header = stream.read(_LENGTH)
    if len(header) < _LENGTH:
        return None
    size = int.from_bytes(header, "big")
    payload = stream.read(size)
    return payload if len(payload) == size else None


class AuditWriterProcess:
    """Appends audit records through a child process; same call as ``Store.append_audit``.

    ``append_audit`` blocks until the child has committed (call it from a thread, as
    ``AuditSink`` does). A dead child is replaced at the next call, at most once a second.
    """

    def __init__(
        self, store_url: str, *, restart_interval: float = 1.0, pass_fds: tuple[int, ...] = ()
    ) -> None:
        self.store_url = store_url
        self.restart_interval = restart_interval
        # Kept open in the child: the hop journal's lock, held until the child is gone too.
        self.pass_fds = pass_fds
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        with self._lock:
            self._ensure_running()

    def _ensure_running(self) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return proc
        if time.monotonic() - self._started_at < self.restart_interval:
            raise AuditWriterError("the audit writer process exited; restarting it shortly")
        self._started_at = time.monotonic()
        self._proc = proc = subprocess.Popen(
            [sys.executable, "-m", "bus.observability.audit_writer", self.store_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            pass_fds=self.pass_fds,
        )
        return proc

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        payload = orjson.dumps(list(records))
        with self._lock:
            proc = self._ensure_running()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                _send(proc.stdin, payload)
                reply = _receive(proc.stdout)
            except OSError as exc:
                reply = None
                why = f"{type(exc).__name__}: {exc}"
            else:
                why = f"exit status {proc.poll()}"
            if reply is None:
                self._discard(proc)
                raise AuditWriterError(f"the audit writer process is gone ({why})")
        if reply != OK:
            raise AuditWriterError(reply.decode(errors="replace"))

    def _discard(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._proc = None

    def close(self, timeout: float = 10.0) -> None:
        """Let the child finish and exit (it commits nothing more: every batch was answered)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve(store_url: str, incoming: BinaryIO, outgoing: BinaryIO) -> None:
    """The child's loop: a batch in, committed, ``ok`` (or the error) out; until end-of-file."""
    from bus.store import open_store

    store = open_store(store_url)
    try:
        while (payload := _receive(incoming)) is not None:
            try:
                store.append_audit([AuditRecord(**row) for row in orjson.loads(payload)])
                reply = OK
            except Exception as exc:  # told to the parent, which keeps the batch and retries
                reply = f"audit write failed: {type(exc).__name__}: {exc}".encode()
            _send(outgoing, reply)
    finally:
        store.close()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if len(sys.argv) != 2:
        print("usage: python -m bus.observability.audit_writer STORE_URL", file=sys.stderr)
        raise SystemExit(2)
    incoming, outgoing = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the reply pipe
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    serve(sys.argv[1], incoming, outgoing)


if __name__ == "__main__":
    main()
