"""A circuit breaker per target: stop calling an agency that keeps failing, probe it later.

closed → (``failures`` consecutive transient failures) → open → (after ``cooldown``) →
half_open: one probe call → success closes it, failure opens it again. While it is open
the dispatcher does not consume the target's queue at all, so waiting messages are not
burned through retries; the ones already in hand are deferred back to a delay tier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class CircuitState(StrEnum):
    """A breaker's state. The value is what logs, metrics and the store show."""

    CLOSED = "closed"  # calls flow
    OPEN = "open"  # no calls until the cool-down is over
    HALF_OPEN = "half_open"  # one probe call decides


CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class CircuitBreaker:
    """Counts consecutive transient failures; ``on_change(old, new)`` hears every transition."""

    def __init__(
        self,
        failures: int,
        cooldown: float,
        on_change: Callable[[CircuitState, CircuitState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self.on_change = on_change
        self.clock = clock
        self.state: CircuitState = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self.probing = False

    def allow(self) -> bool:
        """May a call be made now? In half-open, only one probe at a time."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self.clock() - self.opened_at < self.cooldown:
                return False
            self._move(HALF_OPEN)
        if self.probing:
            return False
        self.probing = True
        return True

    def success(self) -> None:
        self.consecutive = 0
        self.probing = False
        if self.state != CLOSED:
            self._move(CLOSED)

    def failure(self) -> None:
        """A transient failure (the agency is down, slow or overloaded)."""
        self.consecutive += 1
        self.probing = False
        if self.state == HALF_OPEN or (self.state == CLOSED and self.consecutive >= self.threshold):
            self.opened_at = self.clock()
            self._move(OPEN)

    def release(self) -> None:
        """A permitted call ended without telling anything about the agency's health."""
        self.probing = False

    @property
    def seconds_until_probe(self) -> float:
        return max(0.0, self.cooldown - (self.clock() - self.opened_at))

    def _move(self, new: CircuitState) -> None:
        old, self.state = self.state, new
        if self.on_change is not None and old != new:
            self.on_change(old, new)
