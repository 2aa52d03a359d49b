"""Reconciliation of pending payments: ask the payment platform what became of them.

The platform confirms some payments as ``pending`` (its status 3) and may never send the
final result. A payment still pending everywhere it was delivered, ``after`` its first
delivery (routes.yaml ``payments.reconciliation``), is asked of the platform's status query,
which answers 1 success, 3 pending or 4 failed with the strings it signs and their checksum.
A final answer becomes a ``payment.confirmed`` v2 published to the ingress as the payment
platform's message: the router verifies that checksum and routes it like any other, so
nothing the bus writes itself is trusted, and the dispatcher's never-backward rule and
per-outcome idempotency apply unchanged.
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from bus.contract.ids import uuid7
from bus.routes.model import Reconciliation
from bus.routing.payment_checksum import PaymentChecksum
from bus.store import PendingPayment, Store

__all__ = ["STATUS_RESULTS", "QueryFailed", "Reconciler", "Verdict", "final_confirmation"]

STATUS_RESULTS = {"1": "success", "3": "pending", "4": "failed"}  # the platform's codes
Query = Callable[[str, dict[str, str]], dict[str, Any]]
Publish = Callable[[list[bytes]], list[bool]]


class QueryFailed(Exception):
    """The status query gave no usable answer; the payment stays pending for the next pass."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one pass did for one pending payment, for the operator."""

    reference: str
    outcome: str  # "published success", "still pending", "query failed: …"
    message_id: str | None = None  # of the published confirmation


def status_request(partner: str, reference: str, secret: str) -> dict[str, str]:
    """The platform's status query for one payment, signed as its other messages are."""
    checksum = hashlib.sha256(f"{partner}|{reference}|{secret}".encode()).hexdigest()
    return {"partnerCode": partner, "referenceId": reference, "checksum": checksum}


def query_status(url: str, request: dict[str, str], timeout: float = 10.0) -> dict[str, Any]:
    """POST the query, return the platform's JSON answer (``QueryFailed`` otherwise)."""
    http = urllib.request.Request(
        url, orjson.dumps(request), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as answer:
            doc = orjson.loads(answer.read(1 << 20))
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError) as exc:
        raise QueryFailed(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None
    if not isinstance(doc, dict):
        raise QueryFailed("the answer is not a JSON object")
    return doc


def final_confirmation(pending: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any] | None:
    """The confirmation the platform's answer makes of a pending one; None while pending.

    The canonical fields the platform does not sign (dossier, agency, payer …) come from the
    pending confirmation; every signed one from the answer, verbatim.
    """
    result = STATUS_RESULTS.get(str(answer.get("status")))
    if result is None:
        raise QueryFailed(f"unknown status {str(answer.get('status'))[:8]!r}")
    if result == "pending":
        return None
    signed, checksum = answer.get("signed"), answer.get("checksum")
    if not isinstance(signed, dict) or not isinstance(checksum, str):
        raise QueryFailed("the answer carries no signed fields and checksum")
    payload = dict(pending["payload"])
    try:
        time_ = signed["transaction_time"]
        payload.update(
            result=result,
            error_code=signed["error_code"],
            transaction_id=signed["transaction_id"],
            bank_code=signed["bank_code"],
            amount=int(signed["amount"]),
            paid_at=f"{time_[0:4]}-{time_[4:6]}-{time_[6:8]}T{time_[8:10]}:{time_[10:12]}:"
            f"{time_[12:14]}+07:00",
            signed=signed,
            checksum=checksum,
        )
    except (KeyError, TypeError, ValueError):
        raise QueryFailed("the answer's signed fields are incomplete") from None
    if signed.get("description"):
        payload["description"] = signed["description"]
    else:
        payload.pop("description", None)
    doc = {
        "id": uuid7(),
        "type": "payment.confirmed",
        "version": 2,
        "source": pending["source"],
        "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "payload": payload,
    }
    if pending.get("correlation_id"):
        doc["correlation_id"] = pending["correlation_id"]
    return doc


class Reconciler:
    """One pass over the pending payments: query each, publish what became final."""

    def __init__(
        self,
        store: Store,
        checksum: PaymentChecksum,
        config: Reconciliation,
        publish: Publish,
        query: Query = query_status,
    ) -> None:
        self.store = store
        self.checksum = checksum
        self.config = config
        self.publish = publish
        self.query = query

    def due(self, now: float | None = None, after: float | None = None) -> list[PendingPayment]:
        """Payments pending for longer than ``after`` (default: the configured age)."""
        wait = self.config.after if after is None else after
        return self.store.pending_payments(before=(now or time.time()) - wait)

    def run_once(self, now: float | None = None, after: float | None = None) -> list[Verdict]:
        verdicts: list[Verdict] = []
        ready: list[tuple[str, dict[str, Any]]] = []
        for pending in self.due(now, after):
            try:
                final = self._ask(pending)
            except QueryFailed as exc:
                verdicts.append(Verdict(pending.reference, f"query failed: {exc}"))
                continue
            if final is None:
                verdicts.append(Verdict(pending.reference, "still pending"))
            else:
                ready.append((pending.reference, final))
        if ready:
            sent = self.publish([orjson.dumps(doc) for _, doc in ready])
            for (reference, doc), ok in zip(ready, sent, strict=True):
                result = doc["payload"]["result"]
                outcome = f"published {result}" if ok else "not published (broker refused)"
                verdicts.append(Verdict(reference, outcome, doc["id"]))
        return verdicts

    def _ask(self, pending: PendingPayment) -> dict[str, Any] | None:
        """The final confirmation of ``pending`` from the platform's answer; None if pending."""
        if pending.body is None:
            raise QueryFailed("its pending confirmation was not kept")
        doc = orjson.loads(pending.body)
        partner = doc["payload"]["partner_code"]
        secrets = self.checksum.secrets.get(partner)
        if not secrets:
            raise QueryFailed(f"no secret for payment partner {partner}")
        request = status_request(partner, pending.reference, secrets[-1])  # the newest
        return final_confirmation(doc, self.query(self.config.status_query, request))
