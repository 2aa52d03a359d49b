"""The dispatcher's decisions for one message at one target, without a broker or store."""

from __future__ import annotations

from adapters.base import Delivered, PermanentFailure, TransientFailure
from bus.contract.rejections import Reason
from bus.delivery import steps
from bus.delivery.retry import AttemptRecord
from bus.delivery.steps import (
    SUPPRESS,
    DeadLetter,
    Defer,
    HandBack,
    Record,
    RetryLater,
    RetryPlan,
    Supersede,
)
from bus.store import StatusPosition

PLAN = RetryPlan(schedule=(10.0, 60.0, 600.0), max_attempts=6, max_age=86400.0)
FIRST = 1_000_000.0  # when the first attempt was made
NOW = FIRST + 5.0


def _record(attempt: int = 1, first: float = FIRST) -> AttemptRecord:
    return AttemptRecord(attempt, first, [])


def _status(status_at: float, sequence: int = 0) -> StatusPosition:
    return StatusPosition(status_at, sequence, 3, f"m-{status_at}-{sequence}")


# --- after the call ----------------------------------------------------------------------


def test_a_delivered_message_is_recorded_with_the_agencys_reference() -> None:
    decision = steps.after_call(Delivered("HN-42"), _record(), PLAN, "hanoi", NOW)
    assert decision == Record("HN-42")


def test_a_delivery_without_a_reference_is_recorded_all_the_same() -> None:
    assert steps.after_call(Delivered(), _record(3), PLAN, "hanoi", NOW) == Record(None)


def test_transient_failure_with_retries_left_goes_to_the_next_tier() -> None:
    decision = steps.after_call(TransientFailure("HTTP 503"), _record(1), PLAN, "hanoi", NOW)
    assert isinstance(decision, RetryLater)
    assert decision.wait == 10.0
    assert decision.failure == "HTTP 503"
    assert decision.record.attempt == 2
    assert decision.record.first_attempt_at == FIRST


def test_each_later_attempt_waits_the_next_tier_of_the_schedule() -> None:
    second = steps.after_call(TransientFailure("HTTP 503"), _record(2), PLAN, "hanoi", NOW)
    third = steps.after_call(TransientFailure("HTTP 503"), _record(3), PLAN, "hanoi", NOW)
    assert isinstance(second, RetryLater) and isinstance(third, RetryLater)
    assert (second.wait, third.wait) == (60.0, 600.0)


def test_after_the_schedule_runs_out_its_last_tier_repeats() -> None:
    decision = steps.after_call(TransientFailure("HTTP 503"), _record(5), PLAN, "hanoi", NOW)
    assert isinstance(decision, RetryLater)
    assert decision.wait == 600.0
    assert decision.record.attempt == 6


def test_a_retried_message_carries_the_failure_in_its_history() -> None:
    earlier = AttemptRecord(
        2, FIRST, [{"attempt": 1, "at": FIRST, "target": "hanoi", "reason": "x"}]
    )
    decision = steps.after_call(TransientFailure("read timeout"), earlier, PLAN, "hanoi", NOW)
    assert isinstance(decision, RetryLater)
    assert decision.record.history[-1] == {
        "attempt": 2,
        "at": NOW,
        "target": "hanoi",
        "reason": "read timeout",
    }
    assert len(decision.record.history) == 2
    assert earlier.history == [{"attempt": 1, "at": FIRST, "target": "hanoi", "reason": "x"}]


def test_transient_failure_after_the_last_tier_is_dead_lettered_retries_exhausted() -> None:
    decision = steps.after_call(TransientFailure("HTTP 503"), _record(6), PLAN, "hanoi", NOW)
    assert isinstance(decision, DeadLetter)
    assert decision.reason is Reason.RETRIES_EXHAUSTED
    assert decision.detail == "HTTP 503; gave up: 6 attempts made (max_attempts 6)"
    assert decision.failure == "HTTP 503"
    assert not decision.agency_answered  # the failure still counts toward opening the circuit
    assert decision.record.attempt == 7
    assert decision.record.history[-1]["attempt"] == 6


def test_transient_failure_whose_next_try_would_be_too_old_is_dead_lettered() -> None:
    plan = RetryPlan(schedule=(10.0, 3600.0), max_attempts=10, max_age=1800.0)
    decision = steps.after_call(TransientFailure("HTTP 503"), _record(2), plan, "hanoi", NOW)
    assert isinstance(decision, DeadLetter)
    assert decision.reason is Reason.RETRIES_EXHAUSTED
    assert decision.detail.startswith("HTTP 503; gave up: next attempt would be ")
    assert "(max_age 30m); 2 attempts made" in decision.detail


def test_the_age_limit_counts_from_the_first_attempt_carried_in_the_headers() -> None:
    plan = RetryPlan(schedule=(10.0,), max_attempts=10, max_age=60.0)
    young = steps.after_call(TransientFailure("x"), _record(2, FIRST), plan, "t", FIRST + 40.0)
    old = steps.after_call(TransientFailure("x"), _record(2, FIRST), plan, "t", FIRST + 55.0)
    assert isinstance(young, RetryLater)
    assert isinstance(old, DeadLetter)


def test_permanent_failure_is_dead_lettered_with_the_adapters_reason() -> None:
    outcome = PermanentFailure("HTTP 400: MaHoSo is required")
    decision = steps.after_call(outcome, _record(2), PLAN, "hanoi", NOW)
    assert isinstance(decision, DeadLetter)
    assert decision.reason is Reason.REJECTED
    assert decision.detail == "HTTP 400: MaHoSo is required"
    assert decision.failure == "HTTP 400: MaHoSo is required"
    assert decision.record.attempt == 3
    assert decision.record.history[-1]["reason"] == "HTTP 400: MaHoSo is required"


def test_a_permanent_failure_tells_the_circuit_the_agency_answered() -> None:
    decision = steps.after_call(PermanentFailure("HTTP 422"), _record(), PLAN, "hanoi", NOW)
    assert isinstance(decision, DeadLetter) and decision.agency_answered


def test_a_permanent_failure_is_not_retried_even_with_attempts_left() -> None:
    decision = steps.after_call(PermanentFailure("HTTP 400"), _record(1), PLAN, "hanoi", NOW)
    assert not isinstance(decision, RetryLater)


# --- the call ----------------------------------------------------------------------------


def test_a_call_cut_at_the_adapter_deadline_is_a_transient_failure_and_retried() -> None:
    outcome = steps.timed_out(39.0)
    assert outcome == TransientFailure("no outcome within 39s (adapter deadline)")
    decision = steps.after_call(outcome, _record(), PLAN, "hanoi", NOW)
    assert isinstance(decision, RetryLater) and decision.wait == 10.0


def test_an_adapter_that_raises_hands_the_message_back_naming_only_the_exception_type() -> None:
    decision = steps.adapter_raised(ValueError("citizen 001099012345 not found"))
    assert decision == HandBack("adapter crashed: ValueError")


# --- before the call ---------------------------------------------------------------------


def test_a_message_already_delivered_to_the_target_is_suppressed() -> None:
    assert steps.screen(True, None, None) is SUPPRESS


def test_suppression_wins_over_ordering_for_a_redelivered_status() -> None:
    assert steps.screen(True, _status(1.0), _status(2.0)) is SUPPRESS


def test_a_status_older_than_the_one_delivered_is_superseded() -> None:
    newer = _status(200.0)
    decision = steps.screen(False, _status(100.0), newer)
    assert decision == Supersede(newer)
    assert isinstance(decision, Supersede)
    assert decision.detail == f"newer status {newer}"


def test_the_sequence_orders_statuses_of_the_same_instant() -> None:
    assert isinstance(steps.screen(False, _status(100.0, 1), _status(100.0, 2)), Supersede)
    assert steps.screen(False, _status(100.0, 3), _status(100.0, 2)) is None


def test_a_status_newer_than_or_equal_to_the_one_delivered_is_called_for() -> None:
    assert steps.screen(False, _status(300.0), _status(200.0)) is None
    assert steps.screen(False, _status(200.0), _status(200.0)) is None


def test_the_first_status_of_a_dossier_at_a_target_is_called_for() -> None:
    assert steps.screen(False, _status(100.0), None) is None


def test_a_message_that_is_no_status_update_is_never_superseded() -> None:
    assert steps.screen(False, None, None) is None


def test_a_refused_call_waits_the_shortest_tier_any_target_uses_without_an_attempt() -> None:
    plans = [PLAN, RetryPlan((30.0, 5.0), 3, 600.0)]
    decision = steps.circuit_open(plans)
    assert decision == Defer(5.0, "circuit_open")


def test_with_no_retry_schedule_anywhere_a_refused_call_waits_ten_seconds() -> None:
    assert steps.circuit_open([]) == Defer(10.0, "circuit_open")


def test_a_body_that_is_no_canonical_message_is_dead_lettered_rejected() -> None:
    record = _record(2)
    decision = steps.unreadable(KeyError("id"), record)
    assert decision == DeadLetter(Reason.REJECTED, "not a canonical message: 'id'", record)
    assert decision.failure is None  # no call made: the target's counters are left alone
