"""Reference adapter ``payment-confirmation``: payment results to an agency, checksum carried.

The payment platform confirms a dossier's fee payment with a checksum: the lowercase hex
SHA-256 of the message's fields joined with ``|``, followed by the partner's secret
(``reference|transaction_id|amount|paid_at|<secret>`` by default). Before delivering, the
adapter recomputes it with the target's secret (``credentials.secret``) and compares in
constant time: a confirmation that was altered on the way, or signed with another
partner's secret, is never delivered (a permanent failure saying so, without either
value). It is then POSTed to the agency's payment-result endpoint in the platform's field
names, the checksummed values verbatim and the checksum with them, so the agency can verify
it too. A v2 confirmation (``payload.signed``) was verified by the router with the partner's
secrets (rotation included) before it was routed, so it is not verified again here; its
signed strings go to the agency verbatim (``signedFields``). The agency answers
``{errorCode, message}``: ``00`` recorded, ``02`` already recorded (a repeat, delivered only
when the answer's ``result`` is the result sent: idempotency is per reference AND outcome),
``99`` busy (try later), other codes refused. When the answer carries its own ``checksum``
(SHA-256 of ``errorCode|referenceId|<secret>``) it is verified the same way;
``verify_reply: required`` refuses answers without one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import orjson
from pydantic import Field

from adapters.base import Delivered, Outcome, PermanentFailure, TargetSpec
from adapters.codes import code_text
from adapters.http import Answer
from adapters.kinds.payment_signature import sign_as_platform
from adapters.kinds.rest import Call, RestAdapter, RestOptions, RetryAsUpdate, build_request
from adapters.message import Message
from adapters.options import require_credentials

if TYPE_CHECKING:
    from adapters.testing.standin import Profile

DEFAULT_FIELDS = ("reference", "transaction_id", "amount", "paid_at")
RESULT_CODES = {"success": "1", "pending": "3", "failed": "4"}  # the platform's query codes


def payment_checksum(values: Iterable[Any], secret: str) -> str:
    """Lowercase hex SHA-256 of ``values`` joined with ``|``, followed by ``|`` and ``secret``."""
    joined = "|".join([*(str(v) for v in values), secret])
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def checksum_matches(values: Iterable[Any], secret: str, given: str) -> bool:
    """Whether ``given`` is the checksum of ``values``; compared in constant time."""
    expected = payment_checksum(values, secret)
    return hmac.compare_digest(expected.encode("ascii"), str(given).encode("utf-8", "replace"))


class PaymentOptions(RestOptions):
    """Options of the payment-confirmation kind (defaults in ``DEFAULTS``)."""

    checksum_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_FIELDS))
    secret: str = "secret"  # the credentials key holding the partner secret
    verify_reply: Literal["optional", "required", "ignore"] = "optional"
    reply_checksum_fields: list[str] = Field(default_factory=lambda: ["errorCode", "referenceId"])
    # "Already recorded" answers, and the answer field naming the result the agency holds:
    # such an answer is a delivery only when that result is the one sent.
    repeat_codes: list[str] = Field(default_factory=lambda: ["02"])
    repeat_result_field: str = "result"


DEFAULTS: dict[str, Any] = {
    "body": {
        "messageType": {"value": "PAYMENT_RESULT"},
        "version": {"value": "1.0.6"},
        "referenceId": {"from": "payload.reference", "required": True},
        "dossierNo": "payload.dossier_no",
        "agencyCode": "payload.agency",
        "procedureCode": "payload.procedure_code",
        "partnerCode": "payload.partner_code",
        "bankCode": "payload.bank_code",
        "transactionId": {"from": "payload.transaction_id", "required": True},
        "amount": {"from": "payload.amount", "required": True},
        "currency": "payload.currency",
        "transactionTime": {"from": "payload.paid_at", "required": True},
        "transactionTimeVN": {"from": "payload.paid_at", "format": "yyyyMMddHHmmss"},
        "result": {"from": "payload.result", "map": {"success": 1, "pending": 3, "failed": 4}},
        "errorCode": "payload.error_code",
        "description": "payload.description",
        "checksum": {"from": "payload.checksum", "required": True},
        "signedFields": "payload.signed",
    },
    "response": {
        "error_code": {
            "field": "errorCode",
            "success": ["00", "02"],
            "transient": ["99"],
            "message_field": "message",
        },
        "reference": ["receiptId", "referenceId"],
    },
}


class PaymentConfirmationAdapter(RestAdapter):
    """Verifies the platform's checksum, then delivers the confirmation with it."""

    kind: ClassVar[str] = "payment-confirmation"
    options_model: ClassVar[type[RestOptions]] = PaymentOptions
    default_options: ClassVar[dict[str, Any]] = DEFAULTS

    def __init__(self, target: TargetSpec) -> None:
        super().__init__(target)
        o = self.options
        assert isinstance(o, PaymentOptions)
        self.payment_options = o
        require_credentials(target, o.secret, why="the payment checksum")
        self.secret = target.credentials[o.secret]

    async def deliver(self, message: Message) -> Outcome:
        if message.type != "payment.confirmed":
            return PermanentFailure(f"the payment-confirmation kind takes no {message.type}")
        if "signed" not in message.payload:  # v2 was verified by the router, with rotation
            refused = self.verify(message.payload)
            if refused is not None:
                return refused
        return await super().deliver(message)

    async def send(
        self, call: Call, message: Message, *, retried: bool = False
    ) -> Outcome | RetryAsUpdate:
        """One call; an "already recorded" answer counts only for the result that was sent."""
        request = build_request(call, message, self.headers_for(message))
        answer = await self.exchange(request.method, request.url, request.data, request.headers)
        if not isinstance(answer, Answer):
            return answer
        outcome = self.interpret(answer, can_retry_as_update=False)
        if isinstance(outcome, Delivered):
            return self.repeat_of_another_result(answer, message) or outcome
        return outcome

    def repeat_of_another_result(self, answer: Answer, message: Message) -> Outcome | None:
        """A refusal when the agency says "already recorded" for a result it does not hold.

        An agency that keys payments by reference alone answers a ``success`` arriving after
        the ``failed`` it recorded with "already recorded": counting that as delivered would
        lose the payment. Only an answer naming the same result (``repeat_result_field``,
        the platform's code or word) is a repeat; one naming none cannot be trusted either.
        """
        o = self.payment_options
        try:
            doc = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            return None
        code = code_text(doc.get("errorCode")) if isinstance(doc, dict) else None
        if code is None or code not in o.repeat_codes:
            return None
        assert isinstance(doc, dict)
        result = message.payload.get("result")
        sent = RESULT_CODES.get(str(result), str(result))
        held = code_text(doc.get(o.repeat_result_field))
        if held is None:
            return PermanentFailure(
                f"the agency answered {code} (already recorded) without saying which result it "
                f"holds ({o.repeat_result_field}): not counted as delivering result {sent}"
            )
        if held not in (sent, result):
            return PermanentFailure(
                f"the agency answered {code} (already recorded) but holds result {held[:8]} "
                f"for this reference: result {sent} was not recorded"
            )
        return None

    def verify(self, payload: dict[str, Any]) -> PermanentFailure | None:
        """None when the platform's checksum is right; otherwise why it is refused."""
        fields = self.payment_options.checksum_fields
        missing = [f for f in fields if payload.get(f) is None]
        if missing or not payload.get("checksum"):
            absent = ", ".join(missing) or "checksum"
            return PermanentFailure(f"payment confirmation lacks {absent}: cannot verify it")
        if not checksum_matches((payload[f] for f in fields), self.secret, payload["checksum"]):
            return PermanentFailure(
                "checksum does not match (altered on the way, or signed with another "
                "partner's secret): not delivered"
            )
        return None

    def interpret(
        self, answer: Answer, *, can_retry_as_update: bool = True
    ) -> Outcome | RetryAsUpdate:
        outcome = super().interpret(answer, can_retry_as_update=can_retry_as_update)
        mode = self.payment_options.verify_reply
        if not isinstance(outcome, Delivered) or mode == "ignore":
            return outcome
        try:
            doc = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            doc = None
        given = doc.get("checksum") if isinstance(doc, dict) else None
        if given is None:
            if mode == "required":
                return PermanentFailure("the agency's answer carries no checksum (required)")
            return outcome
        assert isinstance(doc, dict)
        values = [doc.get(f, "") for f in self.payment_options.reply_checksum_fields]
        if not checksum_matches(values, self.secret, given):
            return PermanentFailure(
                "the agency's answer checksum does not match: its acknowledgement cannot "
                "be trusted (partner secrets differ?)"
            )
        return outcome

    @classmethod
    def conformance_example(cls, target: TargetSpec, doc: dict[str, Any]) -> dict[str, Any]:
        """Sign an example confirmation with the target's secret, as the platform would."""
        options = target.options or {}
        fields = options.get("checksum_fields") or list(DEFAULT_FIELDS)
        secret = target.credentials.get(options.get("secret", "secret"), "")
        if "signed" in doc["payload"]:  # v2: the platform's own strings
            return {**doc, "payload": sign_as_platform(doc["payload"], secret)}
        payload = dict(doc["payload"])
        payload["checksum"] = payment_checksum((payload.get(f) for f in fields), secret)
        return {**doc, "payload": payload}

    @classmethod
    def standin_profile(cls, target: TargetSpec) -> Profile:
        """An agency payment endpoint that records the confirmation and acknowledges it."""
        from adapters.testing.fakes import fake_payment_agency

        profile = super().standin_profile(target)
        profile.respond = fake_payment_agency
        return profile
