"""Retry policy: the schedule, its last wait repeating, and giving up by attempts or age."""

from bus.broker.wire import Header
from bus.delivery.retry import (
    AttemptRecord,
    GiveUp,
    RetryIn,
    next_step,
    tiers,
)

ATTEMPT, FIRST_ATTEMPT_AT, HISTORY = Header.ATTEMPT, Header.FIRST_ATTEMPT_AT, Header.HISTORY
SCHEDULE = (10.0, 60.0, 600.0, 3600.0)


def step(attempt: int, first: float = 0.0, now: float = 0.0, **kw) -> object:
    record = AttemptRecord(attempt, first, [])
    return next_step(record, schedule=SCHEDULE, max_attempts=kw.get("max_attempts", 100),
                     max_age=kw.get("max_age", 72 * 3600), now=now)  # fmt: skip


def test_waits_follow_the_schedule_then_repeat_its_last() -> None:
    assert [step(n) for n in (1, 2, 3, 4, 5, 9)] == [
        RetryIn(10.0),
        RetryIn(60.0),
        RetryIn(600.0),
        RetryIn(3600.0),
        RetryIn(3600.0),
        RetryIn(3600.0),
    ]


def test_gives_up_at_max_attempts() -> None:
    result = step(5, max_attempts=5)
    assert isinstance(result, GiveUp) and "5 attempts made" in result.why


def test_gives_up_when_the_next_try_would_be_too_old() -> None:
    result = step(30, first=0.0, now=71.5 * 3600)
    assert isinstance(result, GiveUp) and "max_age 3d" in result.why


def test_the_attempt_record_survives_headers() -> None:
    record = AttemptRecord(1, 1000.5, []).failed(1001.0, "HTTP 503", "hanoi")
    headers = record.headers({"x-death": [{}], "x-dvcbus-target": "hanoi"})
    assert "x-death" not in headers and headers["x-dvcbus-target"] == "hanoi"
    assert isinstance(headers[FIRST_ATTEMPT_AT], int)  # AMQP headers carry no floats
    back = AttemptRecord.from_headers(headers, now=5000.0)
    assert (back.attempt, back.first_attempt_at) == (2, 1000.5)
    assert back.history == [{"attempt": 1, "at": 1001.0, "target": "hanoi", "reason": "HTTP 503"}]
    assert headers[ATTEMPT] == 2 and "HTTP 503" in headers[HISTORY]


def test_broken_headers_start_a_fresh_record() -> None:
    back = AttemptRecord.from_headers({ATTEMPT: "x", FIRST_ATTEMPT_AT: None, HISTORY: "{"}, now=7.0)
    assert (back.attempt, back.first_attempt_at, back.history) == (1, 7.0, [])


def test_history_keeps_the_first_and_the_latest_failures() -> None:
    record = AttemptRecord(1, 0.0, [])
    for n in range(80):
        record = record.failed(float(n), f"fail {n}", "t")
    assert len(record.history) == 50
    assert record.history[0]["reason"] == "fail 0" and record.history[-1]["reason"] == "fail 79"


def test_delay_tiers_are_shared_by_all_targets() -> None:
    assert tiers([(10.0, 60.0), (60.0, 3600.0), (10.0,)]) == [10.0, 60.0, 3600.0]
