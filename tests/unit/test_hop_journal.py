"""The hop journal: audit records on disk before the ack, recovered once their process is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bus.broker.acks import ChannelAcks, IngressAcks
from bus.observability.audit import AuditRecord, AuditSink
from bus.observability.hops import Event, Hop, Hops, Stage
from bus.observability.journal import HopJournal, orphans, record_key, recover

ROOT = Path(__file__).resolve().parents[2]


def a_record(n: int, process: str = "host:1") -> AuditRecord:
    return AuditRecord(
        at=1_700_000_000.0 + n / 1000,
        process=process,
        stage="dispatcher",
        event="delivered",
        message_id=f"m{n}",
        message_type="dossier.submitted",
        dossier_no=None,
        target="hanoi",
        reason=None,
        detail=None,
        attempt=1,
        duration=0.01,
        body_sha256="ab" * 32,
    )


def killed_owner(directory: Path, script: str) -> None:
    """Run ``script`` (with ``journal``, ``a_record`` in scope) in a process, then SIGKILL it."""
    code = (
        textwrap.dedent(
            f"""
        import sys, time
        from pathlib import Path
        from bus.observability.journal import HopJournal
        from tests.unit.test_hop_journal import a_record
        journal = HopJournal(Path({str(directory)!r}), segment_bytes=2000)
        """
        )
        + textwrap.dedent(script)
        + "\nprint('ready', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_records_reach_the_file_only_when_written_before_an_ack(tmp_path: Path) -> None:
    journal = HopJournal(tmp_path)
    journal.add(a_record(1))
    segment = next(tmp_path.glob("*.journal"))
    assert segment.read_bytes() == b""  # kept in memory: one write per ack batch
    journal.write()
    assert b'"m1"' in segment.read_bytes()
    journal.close(everything_committed=False)


def test_a_killed_process_s_uncommitted_records_are_recovered_with_their_fields(
    tmp_path: Path,
) -> None:
    killed_owner(
        tmp_path,
        """
        for n in range(1, 31):
            journal.add(a_record(n, "deadhost:42"))
            journal.write()
        journal.committed(10)
        journal.add(a_record(31, "deadhost:42"))  # never written: its ack was never sent
        """,
    )
    appended: list[AuditRecord] = []
    assert recover(tmp_path, appended.extend) == 20
    assert [r.message_id for r in appended] == [f"m{n}" for n in range(11, 31)]
    assert appended[0].process == "deadhost:42" and appended[0].at == a_record(11).at
    assert list(tmp_path.iterdir()) == []  # recovered journals are deleted
    assert recover(tmp_path, appended.extend) == 0  # and never recovered twice


def test_records_the_chain_already_has_are_not_appended_again(tmp_path: Path) -> None:
    killed_owner(
        tmp_path,
        """
        for n in range(1, 6):
            journal.add(a_record(n, "deadhost:42"))
        journal.write()
        """,
    )
    in_chain = {record_key(a_record(n)) for n in (1, 2)}  # its writer committed them, unmarked
    asked: list[tuple[str, float, float]] = []

    def kept(process: str, first: float, last: float) -> set:
        asked.append((process, first, last))
        return in_chain

    appended: list[AuditRecord] = []
    recover(tmp_path, appended.extend, kept)
    assert [r.message_id for r in appended] == ["m3", "m4", "m5"]
    assert asked[0][0] == "deadhost:42" and asked[0][1] <= a_record(1).at <= asked[0][2]


def test_a_live_process_s_journal_is_never_taken(tmp_path: Path) -> None:
    journal = HopJournal(tmp_path)
    journal.add(a_record(1))
    journal.write()
    assert list(orphans(tmp_path)) == []  # its lock is held (even against this process)
    journal.close(everything_committed=True)
    assert list(tmp_path.iterdir()) == []


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    killed_owner(
        tmp_path,
        """
        journal.add(a_record(1))
        journal.write()
        import os
        os.write(journal._fd, b'[2, {"at": 1.0, "proc')  # killed in the middle of a write
        """,
    )
    appended: list[AuditRecord] = []
    recover(tmp_path, appended.extend)
    assert [r.message_id for r in appended] == ["m1"]


def test_committed_segments_are_deleted_so_the_journal_stays_small(tmp_path: Path) -> None:
    journal = HopJournal(tmp_path, segment_bytes=2000)
    for n in range(1, 201):
        journal.add(a_record(n))
        journal.write()
        journal.committed(n - 5 if n > 5 else 0)
    total = sum(p.stat().st_size for p in tmp_path.glob("*.journal"))
    assert total < 3 * 2000
    journal.close(everything_committed=False)
    appended: list[AuditRecord] = []
    recover(tmp_path, appended.extend)  # its owner closed it: now an orphan
    assert [r.message_id for r in appended] == [f"m{n}" for n in range(196, 201)]


def test_a_store_failure_leaves_the_orphan_for_the_next_try(tmp_path: Path) -> None:
    killed_owner(tmp_path, "journal.add(a_record(1))\njournal.write()\n")

    def failing(records: object) -> None:
        raise OSError("store down")

    with pytest.raises(OSError):
        recover(tmp_path, failing)
    appended: list[AuditRecord] = []
    assert recover(tmp_path, appended.extend) == 1


class Channel:
    def __init__(self, log: list[str]) -> None:
        self.is_open = True
        self.log = log

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.log.append(f"ack {tag}")

    def basic_nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self.log.append(f"nack {tag}")


def test_router_and_dispatcher_acks_go_out_after_the_hops_are_written(tmp_path: Path) -> None:
    log: list[str] = []
    ingress = IngressAcks(Channel(log), before_ack=lambda: log.append("journal"))
    ingress.track(1, copies=1).settle(True)
    ingress.flush()
    soon: list = []
    lane = ChannelAcks(Channel(log), soon.append, before_ack=lambda: log.append("journal"))
    lane.ack(1)
    soon.pop()()
    assert log == ["journal", "ack 1", "journal", "ack 1"]


def test_an_ack_is_held_back_when_the_journal_cannot_be_written() -> None:
    log: list[str] = []

    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    soon: list = []
    lane = ChannelAcks(Channel(log), soon.append, before_ack=full_disk)
    lane.ack(1)
    with pytest.raises(OSError):
        soon.pop()()
    assert log == []
    lane.before_ack = None
    lane.ack(2)
    soon.pop()()
    assert log == ["ack 2"]  # the first is still settled: it goes out with the next flush


class Store:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def append_audit(self, records: list[AuditRecord]) -> None:
        self.records.extend(records)


def test_the_audit_sink_journals_each_hop_and_cleans_up_once_committed(tmp_path: Path) -> None:
    store = Store()
    sink = AuditSink(store, journal=HopJournal(tmp_path))
    hops = Hops([sink])
    hops.emit(Hop(Event.ROUTED, Stage.ROUTER, "m1", "dossier.submitted", body=b"{}"))
    hops.sync()
    segment = next(tmp_path.glob("*.journal"))
    assert b'"m1"' in segment.read_bytes()
    asyncio.run(sink.flush())
    assert [r.message_id for r in store.records] == ["m1"]
    assert b'{"committed":1}' in segment.read_bytes()
    asyncio.run(sink.stop())
    assert list(tmp_path.iterdir()) == []


def test_a_sink_recovers_a_dead_process_s_hops_into_the_chain(tmp_path: Path) -> None:
    killed_owner(tmp_path, "journal.add(a_record(7, 'deadhost:1'))\njournal.write()\n")
    store = Store()
    sink = AuditSink(store, journal=HopJournal(tmp_path))
    assert asyncio.run(sink.recover()) == 1
    assert [(r.message_id, r.process) for r in store.records] == [("m7", "deadhost:1")]
    asyncio.run(sink.stop())
    assert os.listdir(tmp_path) == []


class FlakyDisk:
    """``os.write`` as on a disk that fills up: a short write, then an error, then room."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = os.write
        self.calls = 0
        monkeypatch.setattr(os, "write", self.write)

    def write(self, fd: int, data: bytes) -> int:
        self.calls += 1
        if self.calls == 1:
            return self.real(fd, bytes(data[:10]))
        if self.calls == 2:
            raise OSError(28, "No space left on device")
        return self.real(fd, data)


def test_records_a_failed_write_left_are_written_again_and_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = HopJournal(tmp_path)
    journal.add(a_record(1))
    disk = FlakyDisk(monkeypatch)
    with pytest.raises(OSError):
        journal.write()  # the caller holds its acks back
    journal.add(a_record(2))
    journal.write()
    assert disk.calls == 3
    journal.close(everything_committed=False)
    appended: list[AuditRecord] = []
    recover(tmp_path, appended.extend)
    assert [r.message_id for r in appended] == ["m1", "m2"]
