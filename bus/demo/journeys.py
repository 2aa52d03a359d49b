"""Whole dossier journeys for the demo: one dossier from submission to result, every message.

The random traffic has one message per dossier; a journey follows one dossier through
everything the bus carries for it, so ``dvcbus trace`` has a story to tell:

    dossier.submitted (portal → the province) · status 2 received · status 4 processing ·
    payment failed, paid again, a late pending after the success (payment platform → portal
    and the province; the late pending is superseded) · status 9 done ·
    status 10 result returned (province → portal)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson

from adapters.kinds.payment_signature import sign_as_platform
from bus.contract.ids import uuid7
from bus.demo.traffic import (
    DEMO_SECRET,
    PAYMENT_PLATFORM,
    PROVINCE_AGENCY,
    Generated,
    TrafficGenerator,
)

# (status code, sequence, note, minutes after submission)
BEFORE_PAYMENT = ((2, 1, "Đã tiếp nhận hồ sơ", 5), (4, 2, "Đang thẩm định hồ sơ", 15))
AFTER_PAYMENT = ((9, 4, "Đã giải quyết xong", 60), (10, 5, "Đã trả kết quả cho công dân", 70))
PAID_AFTER = 40


def payment(
    gen: TrafficGenerator, reference: str, dossier_no: str, agency: str, result: str, when: str
) -> dict[str, Any]:
    """One confirmation of the journey's payment, signed by the platform."""
    doc = gen.payment(source=PAYMENT_PLATFORM, result=result)
    fields = {k: v for k, v in doc["payload"].items() if k not in ("signed", "checksum")}
    fields.update(
        reference=reference, dossier_no=dossier_no, agency=agency, paid_at=when, amount=150_000
    )
    doc["payload"] = sign_as_platform(fields, DEMO_SECRET)
    doc["correlation_id"] = dossier_no
    doc["occurred_at"] = when
    return doc


def journey(gen: TrafficGenerator, province: str = "01") -> list[Generated]:
    """The messages of one dossier's life, in the order the systems send them."""
    submitted = gen.dossier(province=province)
    payload = submitted["payload"]
    dossier_no = payload["dossier_no"]
    agency = PROVINCE_AGENCY[province]
    start = gen.now
    reference = f"TT{start:%Y%m%d}{gen.seq:07d}J"
    messages = [("journey: dossier.submitted", submitted)]

    def at(minutes: int) -> str:
        return (start + timedelta(minutes=minutes)).isoformat()

    def status(code: int, sequence: int, note: str, minutes: int) -> dict[str, Any]:
        doc = gen.status(source=agency)
        doc["payload"].update(
            dossier_no=dossier_no,
            agency=agency,
            procedure_code=payload["procedure_code"],
            status=code,
            sequence=sequence,
            status_at=at(minutes),
            note=note,
        )
        doc["payload"].pop("previous_status", None)
        doc["correlation_id"] = dossier_no
        doc["occurred_at"] = at(minutes)
        return doc

    for code, sequence, note, minutes in BEFORE_PAYMENT:
        messages.append((f"journey: status {code}", status(code, sequence, note, minutes)))
    # The card is declined first, paid again, and a late "pending" for the same payment
    # arrives after the success: the agency keeps success (the pending is superseded).
    for kind, result, minutes in (
        ("journey: payment failed", "failed", PAID_AFTER - 5),
        ("journey: payment paid again (success)", "success", PAID_AFTER),
        ("journey: late pending after success (superseded)", "pending", PAID_AFTER + 1),
    ):
        messages.append((kind, payment(gen, reference, dossier_no, agency, result, at(minutes))))
    for code, sequence, note, minutes in AFTER_PAYMENT:
        messages.append((f"journey: status {code}", status(code, sequence, note, minutes)))
    for _, doc in messages:
        doc["id"] = uuid7()
    return [Generated(kind, orjson.dumps(doc), doc["id"]) for kind, doc in messages]
