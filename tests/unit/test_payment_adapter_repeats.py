"""The payment kind: "already recorded" is a delivery only for the result that was sent.

Idempotency is per (reference, outcome): an agency keying payments by reference alone would
answer a ``success`` arriving after the ``failed`` it holds with "already recorded", and the
success would be lost if that counted as delivered. The agency's answer is imitated here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from adapters.base import Delivered, Outcome, PermanentFailure, TargetSpec
from adapters.http import Answer
from adapters.kinds.payment import PaymentConfirmationAdapter
from adapters.message import Message

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
SPEC = TargetSpec(
    "hanoi-payments", "000.00.00.H26", "payment-confirmation", "http://127.0.0.1:9/x", 1.0, 2.0,
    1, credentials={"secret": "agency-copy-of-a-secret"},
)  # fmt: skip


class AnsweringAdapter(PaymentConfirmationAdapter):
    """The kind with its HTTP exchange replaced by a canned agency answer."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(SPEC)
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    async def exchange(
        self, method: str, url: str, data: bytes, headers: dict[str, str]
    ) -> Answer | Outcome:
        self.sent.append(orjson.loads(data))
        body = orjson.dumps(self.answer)
        return Answer(
            200, CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"})), body
        )


def _message(name: str = "success-vcb.json") -> Message:
    body = (EXAMPLES / "payment.confirmed.v2" / "valid" / name).read_bytes()
    return Message.from_doc(orjson.loads(body), body)


def _deliver(answer: dict[str, Any], message: Message | None = None) -> tuple[Outcome, dict]:
    adapter = AnsweringAdapter(answer)
    outcome = asyncio.run(adapter.deliver(message or _message()))
    return outcome, adapter.sent[0]


def test_a_repeat_of_the_same_result_counts_as_delivered() -> None:
    outcome, _ = _deliver({"errorCode": "02", "referenceId": "R", "result": 1})
    assert isinstance(outcome, Delivered)


def test_already_recorded_for_another_result_is_not_a_delivery() -> None:
    outcome, _ = _deliver({"errorCode": "02", "referenceId": "R", "result": 4})  # holds failed
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason == (
        "the agency answered 02 (already recorded) but holds result 4 for this reference: "
        "result 1 was not recorded"
    )


def test_already_recorded_without_saying_which_result_is_not_trusted() -> None:
    outcome, _ = _deliver({"errorCode": "02", "referenceId": "R"})
    assert isinstance(outcome, PermanentFailure)
    assert "without saying which result it holds" in outcome.reason


def test_a_first_recording_needs_no_result_in_the_answer() -> None:
    outcome, _ = _deliver({"errorCode": "00", "referenceId": "R", "receiptId": "PT-1"})
    assert outcome == Delivered(reference="PT-1")


@pytest.mark.parametrize("name", ["success-vcb.json", "failed-momo.json"])
def test_a_v2_payment_is_delivered_with_its_signed_strings_without_a_second_check(
    name: str,
) -> None:
    """The router verified it with the partner's secrets; the target's secret differs here."""
    message = _message(name)
    outcome, sent = _deliver({"errorCode": "00", "referenceId": "R"}, message)
    assert isinstance(outcome, Delivered)
    assert sent["signedFields"] == message.payload["signed"]
    assert sent["checksum"] == message.payload["checksum"]
