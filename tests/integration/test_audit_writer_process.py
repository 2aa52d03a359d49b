"""The audit trail written by a child process: same chain, nothing lost when the child dies."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from bus.observability.audit_writer import AuditWriterError, AuditWriterProcess
from bus.store import open_store
from tests.integration.store_fixtures import postgres_schema_url, sqlite_url
from tests.integration.test_audit import check, hop


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path: Path):
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with postgres_schema_url() as url:
            yield url


def test_batches_written_by_the_child_form_one_verifiable_chain(store_url: str) -> None:
    store = open_store(store_url)
    writer = AuditWriterProcess(store_url)
    writer.append_audit([hop(i) for i in range(100)])
    store.append_audit([hop(i) for i in range(100, 110)])  # another process's writes interleave
    writer.append_audit([hop(i) for i in range(110, 150)])
    writer.close()
    assert store.audit_head()[0] == 150
    assert [r.message_id for r in store.audit_records()] == [f"m{i}" for i in range(150)]
    assert store.audit_records()[0].detail == "Trạng thái 0"
    assert check(store) is None
    store.close()


def test_a_dead_child_is_replaced_at_the_next_batch(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    writer = AuditWriterProcess(url, restart_interval=0.0)
    writer.append_audit([hop(0)])
    first = writer.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    time.sleep(0.2)
    writer.append_audit([hop(1)])
    assert writer.pid not in (None, first)
    writer.close()
    store = open_store(url)
    assert [r.message_id for r in store.audit_records()] == ["m0", "m1"]
    assert check(store) is None
    store.close()


def test_a_child_killed_during_a_batch_fails_that_batch_which_is_sent_again(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path)
    writer = AuditWriterProcess(url, restart_interval=60.0)
    writer.append_audit([hop(0)])
    pid = writer.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # it will read the next batch only after it is dead
    failures: list[BaseException] = []

    def append() -> None:
        try:
            writer.append_audit([hop(1)])
        except AuditWriterError as exc:
            failures.append(exc)

    sending = threading.Thread(target=append)
    sending.start()
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    sending.join(10)
    assert len(failures) == 1 and "gone" in str(failures[0])
    with pytest.raises(AuditWriterError, match="restarting"):
        writer.append_audit([hop(1)])  # no restart storm: at most one start per interval
    writer.restart_interval = 0.0
    writer.append_audit([hop(1)])  # what the sink does with a failed batch: send it again
    writer.close()
    store = open_store(url)
    assert [r.message_id for r in store.audit_records()] == ["m0", "m1"]
    assert check(store) is None
    store.close()


def test_the_child_ignores_sigterm_and_exits_when_its_parent_closes_the_pipe(
    tmp_path: Path,
) -> None:
    writer = AuditWriterProcess(sqlite_url(tmp_path))
    writer.start()
    pid = writer.pid
    assert pid is not None
    time.sleep(0.5)  # past start-up, when the signal handlers are in place
    os.kill(pid, signal.SIGTERM)
    writer.append_audit([hop(0)])  # still there, still writing
    assert writer.pid == pid
    proc = writer._proc
    writer.close()
    assert proc is not None and proc.returncode == 0


def test_a_child_that_cannot_open_the_store_is_an_error_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    writer = AuditWriterProcess("sqlite:///" + str(tmp_path / "a-file" / "bus.db"))
    with pytest.raises(AuditWriterError, match="gone"):
        writer.append_audit([hop(0)])  # the child could not open its store and exited
    writer.close()


def test_a_failed_commit_in_the_child_is_told_to_the_parent(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    writer = AuditWriterProcess(url)
    writer.append_audit([hop(0)])
    store = open_store(url)
    with store.transaction(part="audit") as cur:
        cur.execute("DROP TABLE audit_log")
    with pytest.raises(AuditWriterError, match="audit write failed: OperationalError"):
        writer.append_audit([hop(1)])
    assert writer.pid is not None  # the child lives on for the next batch
    writer.close()
    store.close()
