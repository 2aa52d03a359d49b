"""The payment platform's own callback on the gateway, on the whole bus: a real gateway,
router and dispatcher, RabbitMQ, a SQLite store, the example routes and stand-in agencies
(the portal, and Hà Nội's payment endpoint ``hanoi-payments``). The platform posts its
native confirmation; the router verifies the checksum over the strings it signed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from adapters.kinds.payment_signature import SIGNED_FIELDS, platform_checksum
from bus.store import DeadFilter
from tests.integration.conftest import BusUnderTest, bus_under_test
from tests.integration.harness import catch_all_senders, collect_dead, wait_until
from tests.integration.store_fixtures import sqlite_url
from tests.integration.test_gateway import (
    Answer,
    GatewayUnderTest,
    _hash,
    ingress_unbound,
    start_gateway,
)

pytestmark = pytest.mark.integration

SECRET = "demo-secret"  # partner VCB01's secret, as bus_env gives the router
PLATFORM_TOKEN = "payment-platform-token"
HANOI_TOKEN = "hanoi-callback-token"
SENDERS = f"""\
  payment:
    agencies: [000.00.00.G22]
    sources: [000.00.00.G22/payment]
    types: [payment.confirmed]
    auth: {{ bearer: [{_hash(PLATFORM_TOKEN)}] }}
  hanoi:
    agencies: [000.00.00.H26]
    sources: [000.00.00.H26]
    types: [dossier.status_changed]
    auth: {{ bearer: [{_hash(HANOI_TOKEN)}] }}
"""  # after the test bus's catch-all sender (catch_all_senders)
SIGNED_NAMES = (  # the platform's fields, in the order it signs them
    "messageType",
    "errorCode",
    "partnerCode",
    "referenceId",
    "amount",
    "currency",
    "transactionId",
    "bankCode",
    "transactionTime",
    "description",
)
CODES = {"success": ("00", 1), "pending": ("09", 3), "failed": ("24", 4)}


def native(result: str, reference: str, time_: str = "20261125092017", **changes: Any) -> dict:
    """A confirmation as the payment platform sends it, signed with VCB01's secret."""
    error_code, status = CODES[result]
    doc: dict[str, Any] = {
        "messageType": "PAYMENT_RESULT",
        "errorCode": error_code,
        "partnerCode": "VCB01",
        "referenceId": reference,
        "amount": "8000",
        "currency": "VND",
        "transactionId": f"FT{reference[-8:]}",
        "bankCode": "VCB",
        "transactionTime": time_,
        "description": "NGUYEN THI MINH ANH nop le phi ho so 000.04.01.H26-261125-0031",
        "dossierNo": "000.04.01.H26-261125-0031",
        "agencyCode": "000.04.01.H26",
        "procedureCode": "2.000635",
        "result": status,
        "payerName": "Nguyễn Thị Minh Anh",
        **changes,
    }
    strings = [str(doc.get(name, "")) for name in SIGNED_NAMES]
    doc["checksum"] = platform_checksum(dict(zip(SIGNED_FIELDS, strings, strict=True)), SECRET)
    return doc


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    """The whole bus with a gateway, the platform's sender registered."""
    tmp = tmp_path_factory.mktemp("payment-callback")
    with bus_under_test(tmp, sqlite_url(tmp)) as bus:
        senders = catch_all_senders(bus.names) + SENDERS
        (tmp / "senders.yaml").write_text(senders, encoding="utf-8")
        bus.start_router()
        bus.start_dispatcher()
        gw = start_gateway(bus)
        ready = wait_until(lambda: gw.request("GET", "/readyz", token=None).status == 200, 30)
        assert ready, gw.process.log_text()
        yield gw


def callback(gw: GatewayUnderTest, doc: Any, token: str | None = PLATFORM_TOKEN) -> Answer:
    body = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
    return gw.request("POST", "/v1/payments/callback", body, token)


def received(bus: BusUnderTest, target: str, message_id: str) -> list[dict[str, Any]]:
    return [
        orjson.loads(r.body)
        for r in bus.standins.received(target)
        if r.idempotency_key == message_id
    ]


def test_a_confirmation_is_verified_by_the_router_and_reaches_the_portal_and_the_agency(
    platform: GatewayUnderTest,
) -> None:
    bus = platform.bus
    doc = native("success", "DVCQG-CB-000001")
    answer = callback(platform, doc)
    assert answer.status == 200, answer.body
    assert answer.body["errorCode"] == "00"
    assert answer.body["referenceId"] == "DVCQG-CB-000001"
    message_id = answer.body["id"]

    both = {(message_id, t, "delivered") for t in ("portal", "hanoi-payments")}
    assert wait_until(lambda: both <= set(bus.store.outcomes([message_id])), 20), (
        bus.store.outcomes([message_id]),
        bus.store.dead_letters(DeadFilter(state=None)),
    )
    (call,) = received(bus, "hanoi-payments", message_id)
    # The strings the platform signed reach the agency verbatim, with its checksum.
    signed = call["signedFields"]
    assert signed["transaction_time"] == "20261125092017"
    assert signed["amount"] == "8000"
    assert [signed[k] for k in SIGNED_FIELDS] == [str(doc[n]) for n in SIGNED_NAMES]
    assert call["checksum"] == doc["checksum"]
    assert (call["amount"], call["result"]) == (8000, 1)
    assert received(bus, "portal", message_id)


def test_the_same_confirmation_sent_again_is_answered_again_and_published_once(
    platform: GatewayUnderTest,
) -> None:
    doc = native("pending", "DVCQG-CB-000002")
    first = callback(platform, doc)
    again = callback(platform, json.dumps(doc, indent=2).encode())  # other bytes, same fields
    assert (first.status, again.status) == (200, 200), (first.body, again.body)
    assert (first.body["errorCode"], again.body["errorCode"]) == ("00", "02")
    assert first.body["id"] == again.body["id"]
    message_id = first.body["id"]
    assert wait_until(
        lambda: (
            (message_id, "portal", "delivered") in set(platform.bus.store.outcomes([message_id]))
        ),
        20,
    )

    def gateway_hops() -> list[str]:
        records = platform.bus.store.audit_records(message_ids=[message_id])
        return sorted(r.event for r in records if r.stage == "gateway")

    assert wait_until(lambda: gateway_hops() == ["accepted", "answered_again"], 20), gateway_hops()


def test_a_forged_confirmation_is_dead_lettered_checksum_mismatch_before_any_copy(
    platform: GatewayUnderTest,
) -> None:
    bus = platform.bus
    failed = native("failed", "DVCQG-CB-000003")
    forged = {**failed, "errorCode": "00", "result": 1}  # the checksum left as signed
    answer = callback(platform, forged)
    # The gateway does not hold the partners' secrets: it takes it; the router judges it.
    assert answer.status == 200 and answer.body["errorCode"] == "00", answer.body
    message_id = answer.body["id"]

    letters = [d for d in collect_dead(bus.store, 1) if d.message_id == message_id]
    assert [(d.reason, d.stage, d.target) for d in letters] == [
        ("checksum_mismatch", "router", None)
    ]
    assert forged["checksum"] not in letters[0].detail
    for target in ("portal", "hanoi-payments"):
        assert received(bus, target, message_id) == []
    assert [o for o in bus.store.outcomes([message_id]) if o[2] != "dead_lettered"] == []


# --- refused by the gateway, in the platform's form ------------------------------------------


def test_no_token_is_401_not_allowed(platform: GatewayUnderTest) -> None:
    answer = callback(platform, native("success", "DVCQG-CB-000004"), token=None)
    assert answer.status == 401
    assert (answer.body["errorCode"], answer.body["reason"]) == ("07", "unauthenticated")
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_sender_that_may_not_send_payments_is_403(platform: GatewayUnderTest) -> None:
    answer = callback(platform, native("success", "DVCQG-CB-000005"), token=HANOI_TOKEN)
    assert answer.status == 403
    assert (answer.body["errorCode"], answer.body["reason"]) == ("07", "type_not_allowed")


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"referenceId": None}, "referenceId", "required"),
        ({"amount": 8000.0}, "amount", "type"),
        ({"result": 2}, "result", "enum"),
        ({"transactionTime": "20261399250000"}, "transactionTime", "format"),
        ({"agencyCode": "HN"}, "agencyCode", "pattern"),
        ({"amount": "08000"}, "amount", "pattern"),
    ],
)
def test_a_confirmation_missing_or_mistyping_a_field_is_422_naming_it(
    platform: GatewayUnderTest, change: dict[str, Any], field: str, rule: str
) -> None:
    doc = native("success", "DVCQG-CB-000006")
    doc.update(change)
    doc = {k: v for k, v in doc.items() if v is not None}
    answer = callback(platform, doc)
    assert answer.status == 422, answer.body
    assert (answer.body["errorCode"], answer.body["reason"]) == ("01", "invalid")
    assert (field, rule) in {(e.get("field"), e["rule"]) for e in answer.body["errors"]}, (
        answer.body
    )


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1]", b'{"referenceId": "A", "referenceId": "B"}']
)
def test_a_body_that_is_not_one_json_object_is_malformed(
    platform: GatewayUnderTest, body: bytes
) -> None:
    answer = callback(platform, body)
    assert answer.status == 422
    assert (answer.body["errorCode"], answer.body["reason"]) == ("01", "malformed")


def test_a_confirmation_the_broker_does_not_hold_is_busy_99_with_retry_after(
    platform: GatewayUnderTest,
) -> None:
    with ingress_unbound(platform):
        answer = callback(platform, native("success", "DVCQG-CB-000007"))
    assert answer.status == 503, answer.body
    assert (answer.body["errorCode"], answer.body["reason"]) == ("99", "broker_unavailable")
    assert int(answer.headers["retry-after"]) >= 1
    # Sent again once the broker holds it: received (the refusal kept no answer for it).
    again = callback(platform, native("success", "DVCQG-CB-000007"))
    assert (again.status, again.body["errorCode"]) == (200, "00")
