"""The audit trail on real SQLite and PostgreSQL: a hash chain that shows tampering."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bus.audit import AuditRecord, verify
from bus.store import open_store
from tests.integration.store_fixtures import postgres_schema_url, sqlite_url


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
    anchor = store.audit_anchor()
    return verify(store.audit_records(after_seq=anchor[0]), *anchor, store.audit_head())


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
