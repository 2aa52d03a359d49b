"""Payments on the real bus: verified before any copy, never rolled back, never silently lost.

The example routes.yaml, a real router and dispatcher, RabbitMQ, and stand-in agencies: the
portal and Hà Nội's payment endpoint (``hanoi-payments``, the payment-confirmation kind).
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import orjson

from adapters.kinds.payment_signature import sign_as_platform
from bus.contract.ids import uuid7
from bus.demo.payment_platform import PaymentPlatformStandin
from bus.store import DeadFilter
from tests.integration.harness import ROOT, collect_dead, send, wait_until

EXAMPLES = ROOT / "schemas" / "examples" / "payment.confirmed.v2" / "valid"
SECRET = "demo-secret"  # the partner secret bus_env gives the bus (routes.yaml payments:)


def confirmation(result: str, reference: str, paid_at: str, **payload: Any) -> dict[str, Any]:
    """A Hà Nội payment confirmation signed by the platform, with a new id."""
    doc = orjson.loads((EXAMPLES / "success-vcb.json").read_bytes())
    fields = {k: v for k, v in doc["payload"].items() if k not in ("signed", "checksum")}
    codes = {"success": "00", "pending": "09", "failed": "24"}
    fields.update(
        result=result, error_code=codes[result], reference=reference, paid_at=paid_at, **payload
    )
    return {**doc, "id": uuid7(), "payload": sign_as_platform(fields, SECRET)}


def dvcbus(bus, *args: str) -> str:
    """The ``dvcbus`` command against this bus (its routes, store and namespace)."""
    done = subprocess.run(
        [sys.executable, "-m", "bus.cli", *args],
        env=bus.env(COLUMNS="200"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def received_ids(bus, target: str) -> set[str]:
    return {r.idempotency_key for r in bus.standins.received(target)}


def test_a_forged_success_is_dead_lettered_before_any_copy_reaches_an_agency(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    failed = confirmation("failed", "DVCQG-FORGED-1", "2026-11-25T09:17:55+07:00")
    forged = {**failed, "id": uuid7(), "payload": {**failed["payload"]}}
    forged["payload"].update(result="success", error_code="00")  # checksum left as signed
    genuine = confirmation("success", "DVCQG-GENUINE-1", "2026-11-25T09:20:17+07:00")
    assert all(r.ok for r in send(bus.names, [orjson.dumps(forged), orjson.dumps(genuine)]))

    (dead,) = collect_dead(bus.store, 1)
    assert (dead.message_id, dead.reason, dead.stage) == (
        forged["id"],
        "checksum_mismatch",
        "router",
    )
    assert dead.target is None
    assert "payload.error_code differs from payload.signed.error_code" in dead.detail
    assert forged["payload"]["checksum"] not in dead.detail
    # The genuine one, sent after it, went through: the forged one had its chance, and no copy.
    assert wait_until(
        lambda: (
            genuine["id"] in received_ids(bus, "hanoi-payments")
            and genuine["id"] in received_ids(bus, "portal")
        ),
        20,
    )
    for target in ("portal", "hanoi-payments"):
        assert forged["id"] not in received_ids(bus, target)
    assert not [row for row in bus.store.outcomes([forged["id"]]) if row[2] != "dead_lettered"]


def test_a_late_pending_after_success_is_superseded_at_every_target(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    reference = "DVCQG-LATE-1"
    failed = confirmation("failed", reference, "2026-11-25T09:17:55+07:00")
    paid = confirmation("success", reference, "2026-11-25T09:20:17+07:00")
    send(bus.names, [orjson.dumps(failed)])
    assert wait_until(lambda: failed["id"] in received_ids(bus, "hanoi-payments"), 20)
    send(bus.names, [orjson.dumps(paid)])  # paid again after a failure: goes forward
    assert wait_until(
        lambda: (
            {(paid["id"], "hanoi-payments", "delivered"), (paid["id"], "portal", "delivered")}
            <= set(bus.store.outcomes([paid["id"]]))
        ),
        20,
    )
    late = confirmation("pending", reference, "2026-11-25T09:16:00+07:00")
    send(bus.names, [orjson.dumps(late)])

    superseded = {(late["id"], t, "superseded") for t in ("portal", "hanoi-payments")}
    assert wait_until(lambda: superseded <= set(bus.store.outcomes([late["id"]])), 20), (
        bus.store.outcomes([late["id"]])
    )
    for target in ("portal", "hanoi-payments"):
        assert late["id"] not in received_ids(bus, target)
        assert bus.store.payment_state(reference, target).result == "success"
    # The agency recorded the success as new (00), not as a repeat of the failure.
    calls = [orjson.loads(r.body) for r in bus.standins.received("hanoi-payments")]
    assert [c["result"] for c in calls] == [4, 1]
    assert bus.store.dead_letters(DeadFilter(state=None)) == []


def test_the_agency_copy_of_a_payment_nobody_routes_is_parked_and_the_portal_gets_its_copy(
    bus,
) -> None:
    bus.start_router()
    bus.start_dispatcher()
    ministry = confirmation(
        "success", "DVCQG-MINISTRY-1", "2026-11-25T09:20:17+07:00", agency="000.00.00.G09"
    )
    send(bus.names, [orjson.dumps(ministry)])

    (dead,) = collect_dead(bus.store, 1)
    assert (dead.message_id, dead.reason, dead.stage) == (ministry["id"], "unroutable", "router")
    assert "agency copy of payment.confirmed agency=000.00.00.G09" in dead.detail
    assert wait_until(lambda: ministry["id"] in received_ids(bus, "portal"), 20)
    assert ministry["id"] not in received_ids(bus, "hanoi-payments")


# --- reconciliation of pending payments ------------------------------------------------------


def test_a_pending_payment_is_reconciled_through_the_router(make_bus) -> None:
    paid = confirmation("success", "DVCQG-PENDING-1", "2026-11-25T09:30:00+07:00")
    platform = PaymentPlatformStandin(SECRET, {"DVCQG-PENDING-1": paid["payload"]})

    def with_reconciliation(routes: dict[str, Any]) -> None:
        routes["payments"]["reconciliation"] = {"status_query": platform.url, "after": "1s"}

    try:
        bus = make_bus(tweak=with_reconciliation)
        bus.start_router()
        bus.start_dispatcher()
        pending = confirmation("pending", "DVCQG-PENDING-1", "2026-11-25T09:29:00+07:00")
        still = confirmation("pending", "DVCQG-PENDING-2", "2026-11-25T09:29:30+07:00")
        send(bus.names, [orjson.dumps(pending), orjson.dumps(still)])
        assert wait_until(lambda: len(bus.store.pending_payments()) == 2, 20)
        listed = bus.store.pending_payments()
        assert [p.reference for p in listed] == ["DVCQG-PENDING-1", "DVCQG-PENDING-2"]
        assert listed[0].targets == ("hanoi-payments", "portal")

        out = dvcbus(bus, "payments", "pending")
        assert "DVCQG-PENDING-1" in out and "+07:00" in out

        time.sleep(1.1)  # older than `after`
        out = dvcbus(bus, "payments", "reconcile")
        assert "DVCQG-PENDING-2: still pending" in out
        assert "DVCQG-PENDING-1: published success" in out
        assert {a["referenceId"] for a in platform.asked} == {"DVCQG-PENDING-1", "DVCQG-PENDING-2"}

        def success_delivered() -> bool:
            return all(
                bus.store.payment_state("DVCQG-PENDING-1", t).result == "success"
                for t in ("portal", "hanoi-payments")
            )

        assert wait_until(success_delivered, 20)
        assert [p.reference for p in bus.store.pending_payments()] == ["DVCQG-PENDING-2"]
        final = orjson.loads(bus.standins.received("hanoi-payments")[-1].body)
        assert (final["result"], final["checksum"]) == (1, paid["payload"]["checksum"])
        assert bus.store.dead_letters(DeadFilter(state=None)) == []
    finally:
        platform.close()


def test_a_forged_status_answer_is_refused_by_the_router_like_any_forgery(make_bus) -> None:
    forged = confirmation("failed", "DVCQG-PENDING-3", "2026-11-25T09:30:00+07:00")
    forged["payload"]["result"] = "success"  # status 1, and the signed code turned into 00,
    forged["payload"]["signed"]["error_code"] = "00"  # the platform's checksum left as it was
    platform = PaymentPlatformStandin(SECRET, {"DVCQG-PENDING-3": forged["payload"]})

    def with_reconciliation(routes: dict[str, Any]) -> None:
        routes["payments"]["reconciliation"] = {"status_query": platform.url, "after": "1s"}

    try:
        bus = make_bus(tweak=with_reconciliation)
        bus.start_router()
        bus.start_dispatcher()
        pending = confirmation("pending", "DVCQG-PENDING-3", "2026-11-25T09:29:00+07:00")
        send(bus.names, [orjson.dumps(pending)])
        assert wait_until(lambda: bus.store.pending_payments() != [], 20)
        time.sleep(1.1)
        assert "DVCQG-PENDING-3: published success" in dvcbus(bus, "payments", "reconcile")
        (dead,) = collect_dead(bus.store, 1)
        assert (dead.reason, dead.stage) == ("checksum_mismatch", "router")
        assert [p.reference for p in bus.store.pending_payments()] == ["DVCQG-PENDING-3"]
    finally:
        platform.close()
