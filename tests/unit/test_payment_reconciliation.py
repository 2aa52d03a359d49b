"""Reconciliation turns the platform's status answer into a confirmation the router verifies.

The store, the status query and the publisher are stand-ins here; the real round trip (a
pending payment reconciled through router and dispatcher) is tests/integration/test_payments.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.kinds.payment_signature import checksum_matches, sign_as_platform
from bus.recovery.payment_reconciliation import (
    QueryFailed,
    Reconciler,
    final_confirmation,
    status_request,
)
from bus.routes.model import Reconciliation
from bus.routing.payment_checksum import PaymentChecksum
from bus.store import PendingPayment

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "payment.confirmed.v2"
PENDING = orjson.loads((EXAMPLES / "valid" / "pending-napas-minimal.json").read_bytes())
SECRET = "demo-secret"


def _final(result: str, error_code: str) -> dict[str, Any]:
    payload = {k: v for k, v in PENDING["payload"].items() if k not in ("signed", "checksum")}
    payload.update(result=result, error_code=error_code, paid_at="2026-11-26T08:15:02+07:00")
    return sign_as_platform(payload, SECRET)


def test_the_status_query_is_signed_with_the_partner_secret() -> None:
    request = status_request("NAPAS", "DVCQG-20261126-000077", SECRET)
    text = f"NAPAS|DVCQG-20261126-000077|{SECRET}".encode()
    assert request["checksum"] == hashlib.sha256(text).hexdigest()


def test_a_final_answer_becomes_a_v2_confirmation_with_the_platforms_strings() -> None:
    final = _final("success", "00")
    answer = {"status": 1, "signed": final["signed"], "checksum": final["checksum"]}
    doc = final_confirmation(PENDING, answer)
    assert doc is not None
    assert (doc["type"], doc["version"], doc["source"]) == (
        "payment.confirmed",
        2,
        PENDING["source"],
    )
    assert doc["id"] != PENDING["id"]
    p = doc["payload"]
    assert (p["result"], p["error_code"], p["paid_at"]) == (
        "success",
        "00",
        "2026-11-26T08:15:02+07:00",
    )
    kept = ("reference", "agency", "dossier_no")
    assert [p[k] for k in kept] == [PENDING["payload"][k] for k in kept]
    assert checksum_matches(p["signed"], [SECRET], p["checksum"])
    PaymentChecksum({"NAPAS": (SECRET,)}).check(doc, 2)  # what the router will do


def test_a_pending_answer_publishes_nothing_and_nonsense_is_a_failed_query() -> None:
    assert final_confirmation(PENDING, {"status": 3}) is None
    with pytest.raises(QueryFailed):
        final_confirmation(PENDING, {"status": 7})
    with pytest.raises(QueryFailed):
        final_confirmation(PENDING, {"status": 4})  # final, but no signed fields


class _Store:
    def __init__(self, pending: list[PendingPayment]) -> None:
        self.pending = pending
        self.asked_before: list[float | None] = []

    def pending_payments(self, before: float | None = None) -> list[PendingPayment]:
        self.asked_before.append(before)
        return self.pending


def test_one_pass_queries_what_is_due_and_publishes_only_final_results() -> None:
    body = orjson.dumps(PENDING)
    due = [
        PendingPayment("DVCQG-20261126-000077", 100.0, PENDING["id"], ("portal",), body),
        PendingPayment("STILL", 100.0, "m2", ("portal",), body),
        PendingPayment("LOST", 100.0, "m3", ("portal",), None),
    ]
    final = _final("failed", "24")
    answers = {
        "DVCQG-20261126-000077": {
            "status": 4,
            "signed": final["signed"],
            "checksum": final["checksum"],
        }
    }
    published: list[bytes] = []
    store = _Store(due)
    reconciler = Reconciler(
        store,  # type: ignore[arg-type]
        PaymentChecksum({"NAPAS": ("old", SECRET)}),
        Reconciliation(status_query="http://127.0.0.1:9/status", after="15m"),
        lambda bodies: [published.extend(bodies) is None for _ in bodies],
        lambda url, request: answers.get(request["referenceId"], {"status": 3}),
    )
    verdicts = reconciler.run_once(now=10_000.0)
    assert store.asked_before == [10_000.0 - 900]
    outcomes = {v.reference: v.outcome for v in verdicts}
    assert outcomes == {
        "DVCQG-20261126-000077": "published failed",
        "STILL": "still pending",
        "LOST": "query failed: its pending confirmation was not kept",
    }
    (sent,) = published
    assert orjson.loads(sent)["payload"]["result"] == "failed"
