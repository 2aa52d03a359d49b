"""Per-sender rate limits: a token bucket each, answered at once (429) rather than awaited."""

from __future__ import annotations

import time

from bus.delivery.ratelimit import TokenBucket


class SenderBucket(TokenBucket):
    """The delivery token bucket, asked without waiting; a burst of one second's worth."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate, burst=max(1.0, rate))

    def take(self) -> float:
        """0 when a request fits now (and is counted), else the seconds until one would."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class SenderLimits:
    """One bucket per sender, at its registry rate or the default."""

    def __init__(self, default_rate: float, rates: dict[str, float | None]) -> None:
        self._buckets = {sid: SenderBucket(rate or default_rate) for sid, rate in rates.items()}

    def admit(self, sender: str) -> float:
        """0 when ``sender`` may go on now, else seconds to wait (Retry-After)."""
        bucket = self._buckets.get(sender)
        return 0.0 if bucket is None else bucket.take()
