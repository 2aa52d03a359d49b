"""``POST /v1/payments/callback``: the payment platform's own confirmation, as it sends it.

The platform (integration 1.0.6) confirms a payment in its own JSON: the fields it signs —
``messageType``, ``errorCode``, ``partnerCode``, ``referenceId``, ``amount``, ``currency``,
``transactionId``, ``bankCode``, ``transactionTime`` (``yyyyMMddHHmmss``, Vietnam time),
``description`` — their ``checksum``, and the unsigned ``dossierNo``, ``agencyCode``,
``procedureCode``, ``result`` (its status code: 1 success, 3 pending, 4 failed) and
``payerName``. The gateway authenticates the platform's sender (bearer token), builds the
``payment.confirmed`` v2 envelope with the signed strings kept verbatim in ``payload.signed``
(so the router verifies the checksum exactly as the platform computed it) and the canonical
fields beside them, and takes it through the gateway's shared steps
(:mod:`bus.ingress.admission`).

The gateway does NOT check the checksum: the router checks it once for every copy (with the
partners' secrets, which stay with the router), and a forged confirmation is dead-lettered
``checksum_mismatch`` there before any copy leaves. The answer is the platform's form,
``{"errorCode", "message"}`` (``00`` received: the bus holds it; ``02`` received before;
``99`` busy, retry; other codes refused), with the gateway's ``reason`` beside it.

The message id is derived from what identifies the confirmation (partner, reference,
transaction, result, checksum) and the envelope's times from the transaction time, so the
same confirmation sent again builds the same envelope: the gateway answers it again (its
implicit Idempotency-Key) and publishes nothing twice.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from adapters.kinds.payment_signature import SIGNED_FIELDS
from bus.contract.envelope import refuse_repeated_keys
from bus.contract.rejections import Rejection
from bus.ingress import idempotency
from bus.ingress.admission import Admission, Post
from bus.ingress.gateway import Gateway
from bus.ingress.refusals import Refusal, Refused
from bus.ingress.soap_status import vietnam_time
from bus.routes.model import is_glob

PATH = "/v1/payments/callback"
MESSAGE_TYPE = "payment.confirmed"
VERSION = 2
# The platform's name of each signed field (payload.signed's keys, in the platform's order).
NATIVE_OF_SIGNED = {
    "message_kind": "messageType",
    "error_code": "errorCode",
    "partner_code": "partnerCode",
    "reference": "referenceId",
    "amount": "amount",
    "currency": "currency",
    "transaction_id": "transactionId",
    "bank_code": "bankCode",
    "transaction_time": "transactionTime",
    "description": "description",
}
assert tuple(NATIVE_OF_SIGNED) == SIGNED_FIELDS
RESULTS = {"1": "success", "3": "pending", "4": "failed"}  # the platform's status codes
# Where a canonical path came from in the platform's body, for the refusal's errors.
NATIVE_OF_PATH = {
    **{f"payload.signed.{k}": v for k, v in NATIVE_OF_SIGNED.items()},
    "payload.reference": "referenceId",
    "payload.dossier_no": "dossierNo",
    "payload.agency": "agencyCode",
    "payload.procedure_code": "procedureCode",
    "payload.transaction_id": "transactionId",
    "payload.partner_code": "partnerCode",
    "payload.bank_code": "bankCode",
    "payload.amount": "amount",
    "payload.currency": "currency",
    "payload.paid_at": "transactionTime",
    "payload.result": "result",
    "payload.error_code": "errorCode",
    "payload.description": "description",
    "payload.payer.name": "payerName",
    "payload.checksum": "checksum",
    "correlation_id": "dossierNo",
}
# The platform's answer codes.
RECEIVED, RECEIVED_BEFORE, BUSY, REFUSED, NOT_ALLOWED = "00", "02", "99", "01", "07"
_BUSY = frozenset(
    {Refusal.BROKER_UNAVAILABLE, Refusal.RATE_LIMITED, Refusal.IN_FLIGHT, Refusal.SLOW_BODY}
)
_NOT_ALLOWED = frozenset(
    {Refusal.UNAUTHENTICATED, Refusal.SOURCE_NOT_ALLOWED, Refusal.TYPE_NOT_ALLOWED}
)


def _missing(name: str, expected: str) -> dict[str, str]:
    return {"path": f"$.{name}", "field": name, "rule": "required", "expected": expected}


def _text(native: dict[str, Any], name: str, errors: list[dict[str, str]]) -> str | None:
    value = native.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append({"path": f"$.{name}", "field": name, "rule": "type", "expected": "string"})
        return None
    return value


def envelope_of(native: dict[str, Any], source: str) -> tuple[bytes, str]:
    """The ``payment.confirmed`` v2 envelope (JSON bytes, and its id) of the platform's
    confirmation.

    Refuses ``invalid`` (by the platform's field names) what cannot be converted; the
    envelope's own checks (formats, patterns, success ⇔ 00) are the schemas', after.
    """
    errors: list[dict[str, str]] = []
    signed: dict[str, str] = {}
    for key, name in NATIVE_OF_SIGNED.items():
        value = native.get(name)
        if key == "amount" and type(value) is int:  # a JSON integer: its digits, as sent
            value = str(value)
        elif key == "description" and value is None:
            value = ""  # signed as empty when the platform sends none
        if value is None:
            errors.append(_missing(name, "string"))
        elif not isinstance(value, str):
            expected = "string of digits" if key == "amount" else "string"
            errors.append(
                {"path": f"$.{name}", "field": name, "rule": "type", "expected": expected}
            )
        else:
            signed[key] = value
    checksum = _text(native, "checksum", errors)
    dossier_no = _text(native, "dossierNo", errors)
    agency = _text(native, "agencyCode", errors)
    procedure = _text(native, "procedureCode", errors)
    payer = _text(native, "payerName", errors)
    for name, value in (("checksum", checksum), ("dossierNo", dossier_no), ("agencyCode", agency)):
        if value is None and name in native:
            continue  # a type error, listed
        if value is None:
            errors.append(_missing(name, "string"))
    code = native.get("result")
    result = RESULTS.get(str(code)) if type(code) in (int, str) else None
    if result is None:
        errors.append(
            {"path": "$.result", "field": "result", "rule": "enum", "expected": "1, 3 or 4"}
        )
    paid_at = vietnam_time(signed.get("transaction_time", ""))
    if "transaction_time" in signed and paid_at is None:
        errors.append(
            {
                "path": "$.transactionTime",
                "field": "transactionTime",
                "rule": "format",
                "expected": "a real time, yyyyMMddHHmmss in Vietnam time",
            }
        )
    if errors:
        raise Refused(
            Refusal.INVALID, "the platform's confirmation lacks or mistypes fields", errors
        )
    assert paid_at is not None and result is not None
    amount: Any = signed["amount"]
    if amount.isascii() and amount.isdigit() and len(amount) <= 15:
        amount = int(amount)  # else the schema refuses the text, with its path
    payload: dict[str, Any] = {
        "reference": signed["reference"],
        "dossier_no": dossier_no,
        "agency": agency,
    }
    if procedure is not None:
        payload["procedure_code"] = procedure
    payload.update(
        transaction_id=signed["transaction_id"],
        partner_code=signed["partner_code"],
        bank_code=signed["bank_code"],
        amount=amount,
        currency=signed["currency"],
        paid_at=paid_at,
        result=result,
        error_code=signed["error_code"],
    )
    if signed["description"]:
        payload["description"] = signed["description"]
    if payer is not None:
        payload["payer"] = {"name": payer}
    payload.update(signed=signed, checksum=checksum)
    id_ = message_id(signed, result, str(checksum))
    doc = {
        "id": id_,
        "type": MESSAGE_TYPE,
        "version": VERSION,
        "source": source,
        "occurred_at": paid_at,
        "correlation_id": dossier_no,
        "payload": payload,
    }
    return orjson.dumps(doc), id_


def message_id(signed: dict[str, str], result: str, checksum: str) -> str:
    """A UUIDv7-shaped id, the same for the same confirmation: the transaction's millisecond,
    then bits of the SHA-256 of what identifies it."""
    paid_at = vietnam_time(signed["transaction_time"])
    assert paid_at is not None
    ms = int(datetime.fromisoformat(paid_at).timestamp() * 1000)
    identity = "|".join(
        (
            signed["partner_code"],
            signed["reference"],
            signed["transaction_id"],
            result,
            checksum,
        )
    )
    rand = int.from_bytes(hashlib.sha256(identity.encode("utf-8")).digest()[:10], "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF
    return str(uuid.UUID(int=value))


def platform_answer(
    code: str, message: str, *, status: int = 200, reason: str | None = None, **extra: Any
) -> web.Response:
    body: dict[str, Any] = {"errorCode": code, "message": message}
    if reason is not None:
        body["reason"] = reason
    body.update(extra)
    return web.json_response(body, status=status, dumps=lambda d: orjson.dumps(d).decode())


class PaymentCallback:
    """The platform's confirmation in, the platform's answer out, on the gateway's steps."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.admission = Admission(gateway, "payment callback")

    def attach(self, app: web.Application) -> None:
        app.add_routes([web.post(PATH, self.post)])

    async def post(self, request: web.Request) -> web.StreamResponse:
        post = Post(started=time.perf_counter())
        try:
            return await self._accept(request, post)
        except Refused as refused:
            self.admission.refused(post, refused)
            return self._refusal(refused)
        finally:
            await self.admission.release(post)

    async def _accept(self, request: web.Request, post: Post) -> web.StreamResponse:
        gw = self.gateway
        sid = gw.authenticate(request, post)
        self.admission.authenticated(post, sid)
        raw = post.body = await gw.read_body(request)
        native = self._parse(raw)
        source = self._source_of(sid)
        envelope, message_id_ = envelope_of(native, source)
        key = idempotency.checked_key(request.headers.get(idempotency.HEADER))
        # Without a key of its own, the confirmation's id is one: a resend is answered again.
        post.key = key or f"payment-callback:{message_id_}"
        try:
            admitted = await self.admission.admit(post, envelope)
        except Refused as refused:
            for error in refused.errors:
                native_name = NATIVE_OF_PATH.get(error.get("path", ""))
                if native_name is not None:
                    error["field"] = native_name
            raise
        reference = native.get("referenceId")
        if admitted.again:
            return platform_answer(
                RECEIVED_BEFORE,
                "received before: the bus holds this confirmation",
                referenceId=reference,
                id=admitted.message_id,
            )
        return platform_answer(
            RECEIVED,
            "received: the bus holds this confirmation",
            referenceId=reference,
            id=admitted.message_id,
        )

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            native = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Refused(Refusal.MALFORMED, "the body is not UTF-8 JSON") from None
        if not isinstance(native, dict):
            raise Refused(Refusal.MALFORMED, "the body is not a JSON object")
        try:
            refuse_repeated_keys(raw, native)
        except Rejection as rej:
            raise Refused(Refusal.MALFORMED, rej.detail) from None
        return native

    def _source_of(self, sid: str) -> str:
        """The ``source`` the platform's sender writes: its one literal source."""
        self.admission.check_type(sid, MESSAGE_TYPE)
        sender = self.gateway.senders.senders[sid]
        literal = [s for s in sender.sources if not is_glob(s)]
        if not literal:
            raise Refused(
                Refusal.SOURCE_NOT_ALLOWED,
                f"sender {sid} has no literal source to write in the envelope "
                "(senders.yaml: give it one, e.g. 000.00.00.G22/payment)",
            )
        return literal[0]

    @staticmethod
    def _refusal(refused: Refused) -> web.Response:
        if refused.refusal in _BUSY:
            code, said = BUSY, "busy: retry later with the same confirmation"
        elif refused.refusal in _NOT_ALLOWED:
            code, said = NOT_ALLOWED, "not allowed"
        else:
            code, said = REFUSED, "refused"
        headers = {}
        if refused.retry_after is not None:
            headers["Retry-After"] = str(max(1, int(refused.retry_after + 0.999)))
        if refused.refusal is Refusal.UNAUTHENTICATED:
            headers["WWW-Authenticate"] = 'Bearer realm="dvc-bus"'
        extra: dict[str, Any] = {"detail": refused.detail}
        if refused.errors:
            extra["errors"] = refused.errors
        answer = platform_answer(
            code, said, status=refused.status, reason=refused.refusal.value, **extra
        )
        answer.headers.update(headers)
        return answer
