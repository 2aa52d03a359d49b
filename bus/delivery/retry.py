"""Delayed retries with RabbitMQ itself: a few shared delay tiers, and the attempt record.

A transiently failed message is published to the delay tier of its next wait (a quorum
queue whose every message has the same TTL, so nothing waits behind a longer delay); when
the TTL expires the broker dead-letters it back to the delivery exchange with its original
routing key, the target. The attempt count, the first attempt's time and the history of
failures ride in headers, so they survive restarts of every process.

Policy per target (routes.yaml ``retry``): the schedule of waits; after the last one, its
last wait repeats; the message is given up (dead-lettered ``retries_exhausted`` with the
full history) when it reached ``max_attempts`` or would be older than ``max_age``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from bus.broker.wire import BROKER_DEATH_HEADERS, Header
from bus.routes.durations import format_duration

MAX_HISTORY = 50  # entries kept in the header (each names its attempt number)
# Plain str keys: read and written for every delivery (see bus.broker.wire).
_ATTEMPT = Header.ATTEMPT.value
_FIRST_ATTEMPT_AT = Header.FIRST_ATTEMPT_AT.value
_HISTORY = Header.HISTORY.value


def tier_name(namespace: str, seconds: float) -> str:
    """The exchange and queue name of a delay tier, e.g. ``bus.retry.10m``."""
    return f"{namespace}.retry.{format_duration(seconds)}"


def tiers(schedules: Iterable[Iterable[float]]) -> list[float]:
    """Every distinct wait used by any target's schedule: one queue each, shared by all."""
    return sorted({float(s) for schedule in schedules for s in schedule})


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What a message carries about its earlier attempts."""

    attempt: int  # the attempt being made now (1 for the first)
    first_attempt_at: float
    history: list[dict[str, Any]]

    @classmethod
    def from_headers(cls, headers: dict[str, Any] | None, now: float) -> AttemptRecord:
        headers = headers or {}
        try:
            attempt = int(headers.get(_ATTEMPT, 1))
        except (TypeError, ValueError):
            attempt = 1
        try:
            first = int(headers[_FIRST_ATTEMPT_AT]) / 1000
        except (KeyError, TypeError, ValueError):
            first = now
        raw = headers.get(_HISTORY)
        try:
            history = orjson.loads(raw) if raw else []
        except orjson.JSONDecodeError:
            history = []
        return cls(max(attempt, 1), first, history if isinstance(history, list) else [])

    def failed(self, at: float, reason: str, target: str) -> AttemptRecord:
        """This attempt failed: the record to carry into the next one."""
        entry = {"attempt": self.attempt, "at": round(at, 3), "target": target, "reason": reason}
        history = [*self.history, entry]
        if len(history) > MAX_HISTORY:  # keep the first failure and the latest ones
            history = [history[0], *history[-(MAX_HISTORY - 1) :]]
        return AttemptRecord(self.attempt + 1, self.first_attempt_at, history)

    def headers(self, base: dict[str, Any] | None = None) -> dict[str, Any]:
        """Headers for the next publish: ours updated, the broker's death records dropped."""
        headers = {k: v for k, v in (base or {}).items() if k not in BROKER_DEATH_HEADERS}
        headers[_ATTEMPT] = self.attempt
        headers[_FIRST_ATTEMPT_AT] = int(self.first_attempt_at * 1000)
        headers[_HISTORY] = orjson.dumps(self.history).decode()
        return headers


@dataclass(frozen=True, slots=True)
class RetryIn:
    seconds: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    why: str


def next_step(
    record: AttemptRecord,
    *,
    schedule: tuple[float, ...],
    max_attempts: int,
    max_age: float,
    now: float,
) -> RetryIn | GiveUp:
    """After attempt ``record.attempt`` failed transiently: wait how long, or give up?"""
    made = record.attempt
    if made >= max_attempts:
        return GiveUp(f"{made} attempts made (max_attempts {max_attempts})")
    wait = schedule[min(made, len(schedule)) - 1]
    age = now + wait - record.first_attempt_at
    if age > max_age:
        return GiveUp(
            f"next attempt would be {format_duration(age)} after the first (max_age "
            f"{format_duration(max_age)}); {made} attempts made"
        )
    return RetryIn(wait)
