"""Whole dossier journeys for the demo: one dossier from submission to result, every message.

The random traffic has one message per dossier; a journey follows one dossier through
everything the bus carries for it, so ``dvcbus trace`` has a story to tell:

    dossier.submitted (portal → the province) · status 2 received · status 4 processing ·
    payment.confirmed (payment platform → portal and the province) · status 9 done ·
    status 10 result returned (province → portal)
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import orjson

from bus.contract.ids import uuid7
from bus.demo.traffic import PAYMENT_PLATFORM, PROVINCE_AGENCY, Generated, TrafficGenerator

# Payment checksum as the platform computes it (docs/adapters/payment-confirmation.md).
CHECKSUM_FIELDS = ("reference", "transaction_id", "amount", "paid_at")
DEMO_SECRET = "demo-secret"
# (status code, sequence, note, minutes after submission)
BEFORE_PAYMENT = ((2, 1, "Đã tiếp nhận hồ sơ", 5), (4, 2, "Đang thẩm định hồ sơ", 15))
AFTER_PAYMENT = ((9, 4, "Đã giải quyết xong", 60), (10, 5, "Đã trả kết quả cho công dân", 70))
PAID_AFTER = 40


def journey(gen: TrafficGenerator, province: str = "01") -> list[Generated]:
    """The messages of one dossier's life, in the order the systems send them."""
    submitted = gen.dossier(province=province)
    payload = submitted["payload"]
    dossier_no = payload["dossier_no"]
    agency = PROVINCE_AGENCY[province]
    start = gen.now
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
    paid = gen.payment(source=PAYMENT_PLATFORM)
    fields = paid["payload"]
    fields.update(dossier_no=dossier_no, agency=agency, paid_at=at(PAID_AFTER), amount=150_000)
    fields["checksum"] = hashlib.sha256(
        "|".join([*(str(fields[k]) for k in CHECKSUM_FIELDS), DEMO_SECRET]).encode()
    ).hexdigest()
    paid["correlation_id"] = dossier_no
    paid["occurred_at"] = at(PAID_AFTER)
    messages.append(("journey: payment.confirmed", paid))
    for code, sequence, note, minutes in AFTER_PAYMENT:
        messages.append((f"journey: status {code}", status(code, sequence, note, minutes)))
    for _, doc in messages:
        doc["id"] = uuid7()
    return [Generated(kind, orjson.dumps(doc), doc["id"]) for kind, doc in messages]
