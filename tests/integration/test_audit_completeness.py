"""`audit verify` finds work the store recorded whose hop the trail lacks (SQLite, PostgreSQL)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus.observability.audit import AuditRecord
from bus.store import DELIVERED, DeadLetter, Outcome, open_store
from tests.integration.harness import ROOT
from tests.integration.store_fixtures import STORES, postgres_schema_url, sqlite_url

PERSONAL_ID = "001190012345"  # a citizen id number a sender put where the message id goes


@pytest.fixture(params=STORES)
def store_url(request, tmp_path: Path):
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with postgres_schema_url() as url:
            yield url


def record(
    event: str,
    stage: str,
    message_id: str | None,
    target: str | None = None,
    body: bytes = b"",
    at: float | None = None,
    reason: str | None = None,
) -> AuditRecord:
    return AuditRecord(
        at=time.time() if at is None else at,
        process="test:1",
        stage=stage,
        event=event,
        message_id=message_id,
        message_type="dossier.submitted",
        dossier_no=None,
        target=target,
        reason=reason,
        detail=None,
        attempt=1,
        duration=None,
        body_sha256=hashlib.sha256(body).hexdigest() if body else None,
    )


def dead_letter(body: bytes, stage: str, message_id: str | None, target: str | None) -> DeadLetter:
    return DeadLetter(
        message_id=message_id,
        message_type="dossier.submitted",
        target=target,
        reason="invalid" if stage == "router" else "rejected",
        detail="refused",
        stage=stage,
        attempts=1,
        history=[],
        headers={},
        body=body,
        dead_at=time.time(),
    )


REFUSED = b'{"id": "' + PERSONAL_ID.encode() + b'", "type": 7}'
REJECTED = b'{"id": "m2", "type": "dossier.submitted"}'


def work(store) -> None:
    """m1 delivered to hanoi; a message the router refused; m2 rejected by justice."""
    store.write_outcomes([Outcome("m1", "hanoi", DELIVERED, time.time())])
    store.add_dead_letters(
        [
            dead_letter(REFUSED, "router", PERSONAL_ID, None),
            dead_letter(REJECTED, "dispatcher", "m2", "justice"),
        ]
    )


def hops(leave_out: set[str] = frozenset()) -> list[AuditRecord]:
    masked = "*" * len(PERSONAL_ID)  # the router masks the id of a message it refused
    every = {
        "routed m1": record("routed", "router", "m1", "hanoi,portal"),
        "delivered m1": record("delivered", "dispatcher", "m1", "hanoi"),
        "refused": record("dead_lettered", "router", masked, None, REFUSED, reason="invalid"),
        "routed m2": record("routed", "router", "m2", "justice"),
        "rejected m2": record("dead_lettered", "dispatcher", "m2", "justice", REJECTED),
    }
    return [r for name, r in every.items() if name not in leave_out]


def gaps(store) -> set[tuple]:
    return {
        (g.missing, g.message_id, g.target, g.dead_letter_id)
        for g in store.audit_gaps(since=0, until=time.time() + 1)
    }


def test_a_trail_with_every_hop_has_no_gaps(store_url) -> None:
    store = open_store(store_url)
    work(store)
    store.append_audit(hops())
    assert gaps(store) == set()
    store.close()


def test_each_missing_hop_is_a_gap_with_its_ids(store_url) -> None:
    store = open_store(store_url)
    work(store)
    store.append_audit(hops(leave_out={"delivered m1", "refused", "routed m2"}))
    assert gaps(store) == {
        ("delivered", "m1", "hanoi", None),
        ("dead_lettered", PERSONAL_ID, None, 1),
        ("routed", "m2", None, None),
    }
    store.close()


def test_a_dispatcher_refusing_a_copy_that_bypassed_the_router_needs_no_routed_hop(
    store_url,
) -> None:
    store = open_store(store_url)
    store.append_audit(
        [record("dead_lettered", "dispatcher", "x1", "hanoi", b"{}", reason="unauthorised")]
    )
    assert gaps(store) == set()
    store.close()


def test_work_older_than_a_retention_purge_is_not_counted(store_url) -> None:
    store = open_store(store_url)
    long_ago = time.time() - 3 * 365 * 86400
    store.write_outcomes([Outcome("old", "hanoi", DELIVERED, long_ago)])
    store.append_audit([record("delivered", "dispatcher", "old", "hanoi", at=long_ago)])
    store.append_audit(hops())
    store.purge_audit(time.time() - 2 * 365 * 86400, "ops")  # the old hop is gone
    cutoff = store.audit_cutoff()
    assert cutoff > long_ago
    assert list(store.audit_gaps(since=cutoff, until=time.time() + 1)) == []
    assert ("delivered", "old", "hanoi", None) in gaps(store)  # it would be without the cutoff
    store.close()


def verify(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DVCBUS_STORE_URL": url,
        "DVCBUS_AUDIT_JOURNAL_DIR": str(tmp_path / "journal"),
        "COLUMNS": "250",
    }
    return subprocess.run(
        [sys.executable, "-m", "bus.cli", "audit", "verify", "--settle", "0", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_audit_verify_lists_gaps_masked_and_exits_non_zero(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    store = open_store(url)
    work(store)
    store.append_audit(hops(leave_out={"delivered m1", "refused"}))
    store.close()
    done = verify(tmp_path, url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "audit trail OK" in done.stdout  # the chain itself is intact
    assert "INCOMPLETE: 2 hop(s) missing (1 delivered, 1 dead_lettered)" in done.stderr
    assert "no delivered hop: message m1 at hanoi" in done.stderr
    assert "no dead_lettered hop: dead letter 1 (router, invalid)" in done.stderr
    assert PERSONAL_ID not in done.stderr + done.stdout  # masked like `dead list`
    assert verify(tmp_path, url, "--no-completeness").returncode == 0


def test_audit_verify_passes_a_complete_trail(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    store = open_store(url)
    work(store)
    store.append_audit(hops())
    store.close()
    done = verify(tmp_path, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit trail complete" in done.stdout
