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
    """Two buckets per sender, at its registry rate or the default: one for the messages it
    posts, one for the status reads (GET) it makes. A sender polling its messages' status
    cannot use up what it may post, and its reads (several store queries each) are bounded."""

    def __init__(self, default_rate: float, rates: dict[str, float | None]) -> None:
        self._buckets = {sid: SenderBucket(rate or default_rate) for sid, rate in rates.items()}
        self._reads = {sid: SenderBucket(rate or default_rate) for sid, rate in rates.items()}

    def admit(self, sender: str) -> float:
        """0 when ``sender`` may post now, else seconds to wait (Retry-After)."""
        bucket = self._buckets.get(sender)
        return 0.0 if bucket is None else bucket.take()

    def admit_read(self, sender: str) -> float:
        """0 when ``sender`` may read a message's status now, else seconds to wait."""
        bucket = self._reads.get(sender)
        return 0.0 if bucket is None else bucket.take()
