"""Fake agency APIs the stand-ins answer with, one per reference kind; never used in production.

A kind's :meth:`~adapters.Adapter.standin_profile` imports its fake lazily, so production
code never loads this module.
"""

from __future__ import annotations

from typing import Any

import orjson

from adapters.testing.standin import Request

__all__ = ["fake_payment_agency", "fake_portal_api", "portal_entry_keys"]


def portal_entry_keys(body: bytes) -> list[str] | None:
    """The idempotency keys (``MaDongBo``) of a progress batch, recorded one by one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, list):
        keys = [str(e.get("MaDongBo")) for e in doc if isinstance(e, dict) and e.get("MaDongBo")]
        return keys or None
    return None


def fake_portal_api(request: Request) -> tuple[int, Any]:
    """The stand-in's imitation of the portal sync API (records kept in memory)."""
    records: dict[str, Any] = request.memory.setdefault("records", {})
    try:
        doc = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return 400, {"error_code": "-1", "message": "Dữ liệu không hợp lệ"}
    path = request.path.rstrip("/")
    if path.endswith("/hoso/tien-do") and isinstance(doc, list):
        results = []
        for entry in doc:
            key = entry.get("MaDongBo") if isinstance(entry, dict) else None
            ok = isinstance(entry, dict) and entry.get("MaHoSo")
            results.append(
                {"MaDongBo": key, "error_code": "0" if ok else "-1", "message": "Thành công"}
            )
        return 200, {"error_code": "0", "message": "Thành công", "ket_qua": results}
    if not isinstance(doc, dict) or not doc.get("MaHoSo"):
        return 200, {"error_code": "-1", "message": "Thiếu mã hồ sơ"}
    number = str(doc["MaHoSo"])
    if path.endswith("/hoso/them-moi"):
        if number in records:
            return 200, {"error_code": "-2", "message": f"Hồ sơ {number} đã tồn tại"}
        records[number] = doc
        return 200, {"error_code": "0", "message": "Thành công", "data": {"MaHoSo": number}}
    if path.endswith("/hoso/cap-nhat"):
        if number not in records:  # symmetric to "already exists": the caller inserts
            return 404, {"error_code": "-3", "message": f"Hồ sơ {number} không tồn tại"}
        records[number].update(doc)
        return 200, {"error_code": "0", "message": "Thành công", "data": {"MaHoSo": number}}
    return 404, {"error_code": "-404", "message": "Không tìm thấy API"}


def fake_payment_agency(request: Request) -> tuple[int, Any]:
    """An agency payment endpoint: keeps one result per reference, ``02`` for a repeat of it.

    A new result for a reference (failed, then success) is recorded (``00``); the same result
    again is ``02`` "already recorded". Every answer names the result held (``result``).
    """
    try:
        doc = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return 400, {"errorCode": "01", "message": "Dữ liệu không hợp lệ"}
    if not isinstance(doc, dict) or not doc.get("referenceId") or not doc.get("checksum"):
        return 200, {"errorCode": "01", "message": "Thiếu mã tham chiếu hoặc chuỗi kiểm tra"}
    held: dict[str, Any] = request.memory.setdefault("payments", {})
    reference = str(doc["referenceId"])
    code = "02" if reference in held and held[reference] == doc.get("result") else "00"
    held[reference] = doc.get("result")
    return 200, {
        "errorCode": code,
        "message": "Đã ghi nhận kết quả thanh toán" if code == "00" else "Đã ghi nhận trước đó",
        "referenceId": reference,
        "result": held[reference],
        "receiptId": f"PT-{request.target}-{request.seq}",
    }
