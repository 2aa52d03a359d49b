"""A payment's result never goes backward at a target: the dispatcher's screen, per reference.

pending → failed | success, failed → success (paid again), success is final; an equal result
is called for (the agency's "already recorded" settles it, for that same result only).
"""

from __future__ import annotations

import itertools

import orjson
import pytest

from bus.contract.envelope import Message
from bus.delivery import payment_ordering, steps
from bus.delivery.steps import Supersede
from bus.store import PaymentState

ORDER = ("pending", "failed", "success")


def _state(result: str, message_id: str = "m") -> PaymentState:
    return PaymentState("DVCQG-20261125-000431", result, message_id)


@pytest.mark.parametrize(("held", "arriving"), list(itertools.product(ORDER, ORDER)))
def test_a_result_behind_the_delivered_one_is_superseded_any_other_is_called_for(
    held: str, arriving: str
) -> None:
    decision = steps.screen_payment(_state(arriving, "late"), _state(held, "first"))
    if ORDER.index(arriving) < ORDER.index(held):
        assert decision == Supersede(_state(held, "first"))
    else:
        assert decision is None


def test_the_allowed_transitions_of_the_issue_are_called_for() -> None:
    allowed = [("pending", "success"), ("pending", "failed"), ("failed", "success")]
    for held, arriving in allowed:
        assert steps.screen_payment(_state(arriving), _state(held)) is None


def test_a_late_pending_or_failed_after_success_is_superseded_with_a_detail() -> None:
    for late in ("pending", "failed"):
        decision = steps.screen_payment(_state(late, "late"), _state("success", "paid"))
        assert isinstance(decision, Supersede)
        assert decision.detail == "payment already success here (message paid)"


def test_the_first_result_of_a_reference_at_a_target_is_called_for() -> None:
    assert steps.screen_payment(_state("pending"), None) is None


def _message(type_: str, payload: dict) -> Message:
    doc = {"id": "m1", "type": type_, "version": 2, "source": "000.00.00.G22/payment",
           "occurred_at": "2026-11-25T09:20:31+07:00", "payload": payload}  # fmt: skip
    return Message.from_doc(doc, orjson.dumps(doc))


def test_only_payments_have_a_payment_state_and_their_lock_is_their_reference() -> None:
    payment = _message("payment.confirmed", {"reference": "R-1", "result": "failed"})
    state = payment_ordering.state_of(payment)
    assert state == PaymentState("R-1", "failed", "m1")
    assert payment_ordering.lock_key(state) == "payment:R-1"
    status = _message("dossier.status_changed", {"reference": "R-1", "status": 4})
    assert payment_ordering.state_of(status) is None
