"""The circuit breaker: opens on repeated transient failures, probes once, closes on success."""

from bus.delivery.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[CircuitBreaker, Clock, list[tuple[str, str]]]:
    clock, changes = Clock(), []
    breaker = CircuitBreaker(3, 30.0, lambda old, new: changes.append((old, new)), clock)
    return breaker, clock, changes


def test_opens_after_consecutive_failures_only() -> None:
    breaker, _, changes = make()
    breaker.failure()
    breaker.failure()
    breaker.success()  # the count starts again
    breaker.failure()
    breaker.failure()
    assert breaker.state == CLOSED
    breaker.failure()
    assert breaker.state == OPEN and changes == [(CLOSED, OPEN)]
    assert not breaker.allow()


def test_after_the_cooldown_one_probe_is_allowed_and_its_success_closes() -> None:
    breaker, clock, changes = make()
    for _ in range(3):
        breaker.failure()
    clock.now = 29.0
    assert not breaker.allow()
    clock.now = 30.5
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.success()
    assert breaker.state == CLOSED
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_a_failed_probe_opens_it_again_for_a_full_cooldown() -> None:
    breaker, clock, _ = make()
    for _ in range(3):
        breaker.failure()
    clock.now = 31.0
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == OPEN
    assert breaker.seconds_until_probe == 30.0
