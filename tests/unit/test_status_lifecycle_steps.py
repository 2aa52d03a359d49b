"""A status update at one target, against the last status delivered there (one store read):
late → history or superseded; an impossible transition → invalid_transition or flagged."""

from __future__ import annotations

import pytest

from adapters.message import INVALID_TRANSITION, STATUS_HISTORY
from bus.contract.rejections import Reason
from bus.delivery import steps
from bus.delivery.retry import AttemptRecord
from bus.delivery.steps import DeadLetter, Flag, Supersede
from bus.routes.lifecycle import Lifecycle
from bus.settings import PROJECT_ROOT
from bus.store import StatusPosition

LIFE = Lifecycle.load(PROJECT_ROOT / "statuses.yaml")
RECORD = AttemptRecord(1, 1000.0, [])


def at(when: float, status: int, sequence: int = 0) -> StatusPosition:
    return StatusPosition(when, sequence, status, f"m-{status}-{when}")


def screen(new: StatusPosition, current: StatusPosition | None, *, history: bool = False,
           forward: bool = False) -> object:  # fmt: skip
    return steps.screen_status(new, current, LIFE, history, forward, RECORD)


def test_result_returned_then_processing_is_dead_lettered_naming_both_statuses() -> None:
    decision = screen(at(200.0, 4), at(100.0, 10))
    assert isinstance(decision, DeadLetter)
    assert decision.reason is Reason.INVALID_TRANSITION
    assert "10 (result returned) → 4 (processing)" in decision.detail
    assert "status 10 is final" in decision.detail.replace("(result returned) ", "")


def test_newly_submitted_then_processing_done_is_dead_lettered() -> None:
    decision = screen(at(200.0, 9), at(100.0, 1))
    assert isinstance(decision, DeadLetter) and "1 (newly submitted) → 9" in decision.detail


@pytest.mark.parametrize(("before", "after"), [(1, 2), (2, 4), (4, 9), (9, 10), (5, 7), (4, 4)])
def test_a_transition_of_the_lifecycle_or_a_repeat_is_called_for(before: int, after: int) -> None:
    assert screen(at(200.0, after), at(100.0, before)) is None


def test_the_first_status_of_a_dossier_the_bus_never_saw_is_forwarded() -> None:
    assert screen(at(200.0, 9), None) is None


def test_a_route_or_target_may_forward_an_invalid_transition_flagged() -> None:
    decision = screen(at(200.0, 4), at(100.0, 10), forward=True)
    assert isinstance(decision, Flag) and decision.flags == (INVALID_TRANSITION,)
    assert "10 (result returned) → 4 (processing)" in decision.note


def test_a_late_received_after_processing_is_history_where_the_target_keeps_it() -> None:
    processing, received = at(200.0, 4, 2), at(100.0, 2, 1)
    decision = screen(received, processing, history=True)
    assert isinstance(decision, Flag) and decision.flags == (STATUS_HISTORY,)
    assert screen(received, processing) == Supersede(processing)  # current state only


def test_a_late_status_is_not_judged_as_a_transition() -> None:
    """Received after result returned, late: history, never an invalid transition."""
    decision = screen(at(100.0, 2, 1), at(300.0, 10, 5), history=True)
    assert isinstance(decision, Flag) and decision.flags == (STATUS_HISTORY,)


def test_without_a_lifecycle_only_order_is_checked() -> None:
    assert steps.screen_status(at(200.0, 4), at(100.0, 10), None, False, False, RECORD) is None
