"""The audit trail on real SQLite and PostgreSQL: a hash chain that shows tampering."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from adapters.testing.standin import Behaviour
from bus.observability.audit import AuditRecord, AuditSink, chain, verify_store
from bus.observability.hops import Event, Hop
from bus.observability.masking import LOG_MASKER
from bus.observability.metrics import Metrics
from bus.observability.trace import VN
from bus.store import open_store
from tests.integration.harness import ROOT, send, wait_until
from tests.integration.store_fixtures import postgres_schema_url, sqlite_url
from tests.integration.test_recoverability import example, fast_retries


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path: Path):
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with postgres_schema_url() as url:
            yield url


def hop(n: int, at: float | None = None, dossier: str = "D1") -> AuditRecord:
    return AuditRecord(
        at=at if at is not None else time.time(),
        process="test:1",
        stage="dispatcher",
        event="delivered",
        message_id=f"m{n}",
        message_type="dossier.status_changed",
        dossier_no=dossier,
        target="portal",
        reason=None,
        detail=f"Trạng thái {n}",
        attempt=1,
        duration=0.0123456789,
        body_sha256="ab" * 32,
    )


def check(store) -> object:
    """What `dvcbus audit verify` does: the chain walked page by page (small pages here)."""
    return verify_store(store, page_size=7)[0]


def tamper(store, sql: str) -> None:
    with store.transaction(part="audit") as cur:
        cur.execute(sql)


def test_an_untouched_chain_verifies(store_url) -> None:
    store = open_store(store_url)
    store.append_audit([hop(i) for i in range(50)])
    store.append_audit([hop(i) for i in range(50, 60)])
    assert store.audit_head()[0] == 60
    assert check(store) is None
    store.close()


@pytest.mark.parametrize(
    ("sql", "seq", "words"),
    [
        ("UPDATE audit_log SET detail = 'sửa' WHERE seq = 7", 7, "altered"),
        ("UPDATE audit_log SET at = at + 1 WHERE seq = 3", 3, "altered"),
        ("DELETE FROM audit_log WHERE seq = 12", 12, "missing"),
        ("DELETE FROM audit_log WHERE seq = 20", 20, "head"),
    ],
)
def test_altering_or_deleting_a_record_is_found_at_that_record(store_url, sql, seq, words) -> None:
    store = open_store(store_url)
    store.append_audit([hop(i) for i in range(20)])
    tamper(store, sql)
    broken = check(store)
    assert broken is not None and broken.seq == seq and words in broken.why
    store.close()


def test_a_retention_purge_keeps_the_rest_verifiable(store_url) -> None:
    store = open_store(store_url)
    old = time.time() - 3 * 365 * 86400
    store.append_audit([hop(i, at=old + i) for i in range(30)])
    store.append_audit([hop(i) for i in range(30, 40)])
    assert store.purge_audit(time.time() - 2 * 365 * 86400, "ops") == 30
    assert [r.seq for r in store.audit_records()][:1] == [31]
    assert check(store) is None
    store.close()


def test_concurrent_writers_extend_one_chain(store_url) -> None:
    stores = [open_store(store_url) for _ in range(3)]

    def write(store) -> None:
        for batch in range(10):
            store.append_audit([hop(batch * 10 + i) for i in range(10)])

    threads = [threading.Thread(target=write, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert stores[0].audit_head()[0] == 300
    assert check(stores[0]) is None
    for s in stores:
        s.close()


# --- reading the chain in pages -----------------------------------------------------------


def test_verify_reads_the_chain_in_pages_not_all_at_once(store_url) -> None:
    store = open_store(store_url)
    store.append_audit([hop(i) for i in range(95)])
    reads: list[tuple[int | None, int]] = []
    real = store.audit_records

    def counting(**kwargs):
        rows = real(**kwargs)
        reads.append((kwargs.get("limit"), len(rows)))
        return rows

    store.audit_records = counting  # type: ignore[method-assign]
    broken, _, head = verify_store(store, page_size=10)
    assert broken is None and head[0] == 95
    assert len(reads) == 10 and all(limit == 10 and n <= 10 for limit, n in reads)
    tamper(store, "UPDATE audit_log SET detail = 'sửa' WHERE seq = 77")  # in the 8th page
    broken, _, _ = verify_store(store, page_size=10)
    assert broken is not None and broken.seq == 77 and "altered" in broken.why
    store.close()


def test_records_appended_past_the_head_are_a_break(store_url) -> None:
    store = open_store(store_url)
    store.append_audit([hop(i) for i in range(5)])
    forged = hop(99)
    chain([forged], *store.audit_head())
    with store.transaction(part="audit") as cur:  # written without moving the head
        cur.execute(
            store.sql(f"INSERT INTO audit_log ({store._AUDIT}) VALUES ({', '.join('?' * 17)})"),
            (*forged.fields().values(), forged.prev_hash, forged.hash),
        )
    broken = check(store)
    assert broken is not None and broken.seq == 6 and "after the chain's head" in broken.why
    store.close()


def test_an_exported_head_shows_a_chain_rewritten_with_fresh_hashes(store_url) -> None:
    store = open_store(store_url)
    store.append_audit([hop(i) for i in range(10)])
    exported = store.audit_head()  # `dvcbus audit head`, kept somewhere else
    store.append_audit([hop(i) for i in range(10, 15)])
    assert verify_store(store, expect=exported)[0] is None
    # Someone with write access rewrites record 4 and re-chains everything after it: the
    # chain is keyless, so it verifies on its own; only the copy kept elsewhere tells.
    records = store.audit_records()
    records[3].detail = "rewritten"
    chain(records[3:], records[2].seq, records[2].hash)
    with store.transaction(part="audit") as cur:
        for r in records[3:]:
            cur.execute(
                store.sql("UPDATE audit_log SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?"),
                (r.detail, r.prev_hash, r.hash, r.seq),
            )
        cur.execute(store.sql("UPDATE audit_head SET hash = ? WHERE id = 1"), (records[-1].hash,))
    assert check(store) is None
    broken, _, _ = verify_store(store, expect=exported)
    assert broken is not None and broken.seq == 10 and "rewritten" in broken.why
    store.close()


# --- what a record keeps ------------------------------------------------------------------

STATUS_BODY = (ROOT / "schemas/examples/dossier.status_changed.v1/valid/received.json").read_bytes()
PERSONAL = ("001190012345", "0987654321", "minhanh.nguyen@example.com")
SECRET = "s3cr3t-agency-key-42"


@pytest.fixture
def resolved_secret() -> Iterator[str]:
    """A credential this process resolved (what protect_logs gives the masker)."""
    before = LOG_MASKER.secrets
    LOG_MASKER.add_secrets([SECRET])
    yield SECRET
    LOG_MASKER.secrets = before
    LOG_MASKER._texts.clear()


def test_a_status_update_keeps_its_status_code_and_it_is_covered_by_the_hash(store_url) -> None:
    store = open_store(store_url)
    sink = AuditSink(store)
    message_id = orjson.loads(STATUS_BODY)["id"]
    sink.record(Hop(Event.ROUTED, "router", message_id, "dossier.status_changed", "D9",
                    targets=("portal",), body=STATUS_BODY, status=2))  # fmt: skip
    sink.record(Hop(Event.DELIVERED, "dispatcher", "m-2", "dossier.submitted", "D9",
                    target="hanoi", body=b'{"payload": {"status": 2}}'))  # fmt: skip
    asyncio.run(sink.flush())
    routed, other = store.audit_records(dossier_no="D9")
    assert routed.status == 2 and other.status is None  # only a status update has one
    assert check(store) is None
    tamper(store, "UPDATE audit_log SET status = 10 WHERE seq = 1")
    assert check(store).seq == 1
    store.close()


def test_reasons_details_and_refused_messages_are_stored_masked(store_url, resolved_secret) -> None:
    store = open_store(store_url)
    sink = AuditSink(store)  # the default masker is the log masker, with resolved secrets
    said = f"agency said: CCCD {PERSONAL[0]}, SĐT {PERSONAL[1]}, {PERSONAL[2]}, key {SECRET}"
    sink.record(Hop(Event.RETRIED, "dispatcher", "m-1", "dossier.submitted", "D7",
                    target="hanoi", reason=said, detail=said))  # fmt: skip
    sink.record(Hop(Event.DEAD_LETTERED, "router", PERSONAL[0], "x", PERSONAL[1],
                    reason="invalid", detail=said))  # fmt: skip
    asyncio.run(sink.flush())
    stored = str([r.fields() for r in store.audit_records()])
    for value in (*PERSONAL, SECRET):
        assert value not in stored
    assert "001*******345" in stored and "09******21" in stored and "m***@example.com" in stored
    store.close()


def dvcbus_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bus.cli", *args],
        env={**os.environ, **env, "COLUMNS": "250"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_trace_output_masks_personal_data_in_an_error_reason(tmp_path, resolved_secret) -> None:
    url = sqlite_url(tmp_path)
    store = open_store(url)
    sink = AuditSink(store)
    said = f"HTTP 422: CCCD {PERSONAL[0]} / {PERSONAL[1]} / {PERSONAL[2]} / {SECRET}"
    start = datetime(2026, 11, 23, 8, 0, tzinfo=VN).timestamp()
    sink.record(Hop(Event.ROUTED, "router", "m-1", "dossier.status_changed", "D-TRACE",
                    targets=("portal",), body=STATUS_BODY, at=start, status=2))  # fmt: skip
    sink.record(Hop(Event.DEAD_LETTERED, "dispatcher", "m-1", "dossier.status_changed",
                    "D-TRACE", target="portal", reason="rejected", detail=said, body=STATUS_BODY,
                    at=start + 3 * 86400 + 60, status=2))  # fmt: skip
    asyncio.run(sink.flush())
    store.close()
    shown = dvcbus_cli({"DVCBUS_STORE_URL": url}, "trace", "D-TRACE")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    for value in (*PERSONAL, SECRET):
        assert value not in out
    assert "001*******345" in out and "HTTP 422" in out
    # full dates in Vietnam time, offset shown: the journey spans days
    assert "2026-11-23 08:00:00.000 +07:00" in out and "2026-11-26 08:01:00.000 +07:00" in out
    assert re.search(r"│\s*status\s*│\s*2\s*│", out), out  # the status code of the update


def test_trace_of_a_real_run_masks_what_the_agency_quoted_back(make_bus) -> None:
    bus = make_bus(fast_retries)
    bus.start_router()
    bus.start_dispatcher()
    token = bus.env()["DVCBUS_PORTAL_TOKEN"]
    answer = {"error_code": "503", "message": f"{token} CCCD {PERSONAL[0]} {PERSONAL[2]}"}
    bus.standins.program("portal", Behaviour(status=503, body=answer, times=2))
    update = example("dossier.status_changed.v1/valid/received.json")
    send(bus.names, [orjson.dumps(update)])
    dossier_no = update["payload"]["dossier_no"]

    def events() -> list[str]:
        return [r.event for r in bus.store.audit_records(dossier_no=dossier_no)]

    assert wait_until(lambda: "delivered" in events(), 30), events()
    stored = bus.store.audit_records(dossier_no=dossier_no)
    retried = [r for r in stored if r.event == "retried"]
    assert retried and all("HTTP 503" in (r.reason or "") for r in retried)
    assert {r.status for r in stored} == {2}
    shown = dvcbus_cli(bus.env(), "trace", dossier_no)
    assert shown.returncode == 0, shown.stderr
    for value in (token, PERSONAL[0], PERSONAL[2]):
        assert value not in shown.stdout
        assert value not in str([r.fields() for r in stored])
    assert "+07:00" in shown.stdout and "retried (HTTP 503" in shown.stdout


# --- when the store cannot be written -----------------------------------------------------


class Flaky:
    """A real store that refuses audit writes while ``down``."""

    def __init__(self, store) -> None:
        self.store = store
        self.down = False

    def append_audit(self, records) -> None:
        if self.down:
            raise OSError("audit store unreachable")
        self.store.append_audit(records)


def test_a_failing_audit_store_is_counted_bounded_and_caught_up(store_url) -> None:
    store = open_store(store_url)
    writer = Flaky(store)
    sink = AuditSink(writer, max_pending=50, chunk=20)
    metrics = Metrics(types=["dossier.submitted"], targets=["hanoi"])
    metrics.watch_audit(sink)
    writer.down = True
    for i in range(60):
        sink.record(Hop(Event.DELIVERED, "dispatcher", f"m{i}", "dossier.submitted",
                        target="hanoi"))  # fmt: skip
    assert asyncio.run(sink.flush()) is False
    assert asyncio.run(sink.flush()) is False
    metrics.refresh()
    assert sample(metrics, "dvcbus_audit_pending_records") == 50
    assert sample(metrics, "dvcbus_audit_write_failures_total") == 2
    assert sample(metrics, "dvcbus_audit_records_dropped_total") == 10  # loud, counted
    writer.down = False
    assert asyncio.run(sink.flush()) is True
    metrics.refresh()
    assert sample(metrics, "dvcbus_audit_pending_records") == 0
    assert [r.message_id for r in store.audit_records()] == [f"m{i}" for i in range(50)]
    assert check(store) is None
    store.close()


def sample(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0
