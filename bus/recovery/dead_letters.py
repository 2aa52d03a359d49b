"""Dead letters on the wire: the headers that say why a message was parked, and reading them back.

The original body travels unchanged, so a dead letter can be replayed byte for byte; the
reason and its detail ride in headers. Messages the broker itself dead-lettered (delivery
limit reached, or a copy for a target that has no queue) carry no reason header of ours:
:func:`read` derives one from what the broker left on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pika import BasicProperties

from bus.contract.rejections import Reason

REASON = "x-dvcbus-reason"
DETAIL = "x-dvcbus-detail"
STAGE = "x-dvcbus-stage"
TARGET = "x-dvcbus-target"
DEAD_AT = "x-dvcbus-dead-at"
REPLAY_OF = "x-dvcbus-replay-of"  # on a replayed message: the id of the dead letter it was
MAX_DETAIL = 2000


def properties(
    reason: Reason,
    detail: str,
    *,
    stage: str,
    original: BasicProperties | None = None,
    target: str | None = None,
    message_id: str | None = None,
    message_type: str | None = None,
) -> BasicProperties:
    """Properties of a dead letter: the original's, plus why and where it died."""
    headers: dict[str, Any] = dict((original.headers or {}) if original else {})
    headers[REASON] = reason.value
    headers[DETAIL] = detail[:MAX_DETAIL]
    headers[STAGE] = stage
    headers[DEAD_AT] = datetime.now(UTC).isoformat(timespec="milliseconds")
    if target is not None:
        headers[TARGET] = target
    return BasicProperties(
        content_type=(original.content_type if original else None) or "application/json",
        delivery_mode=2,
        message_id=message_id or (original.message_id if original else None),
        type=message_type or (original.type if original else None),
        timestamp=original.timestamp if original else None,
        headers=headers,
    )


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    """Why a message on the dead-letter queue is there."""

    reason: str
    detail: str
    stage: str
    target: str | None
    message_id: str | None
    message_type: str | None


def read(props: BasicProperties) -> DeadLetterInfo:
    """Interpret a message taken from the dead-letter queue."""
    headers = props.headers or {}
    reason = _text(headers.get(REASON))
    detail = _text(headers.get(DETAIL))
    stage = _text(headers.get(STAGE)) or "broker"
    target = _text(headers.get(TARGET)) or None
    deaths = headers.get("x-death") or [{}]  # the broker's records, most recent first
    last_death = deaths[0] if isinstance(deaths[0], dict) else {}
    death_reason = _text(last_death.get("reason") or headers.get("x-first-death-reason"))
    if death_reason == "delivery_limit" and REASON not in headers:
        reason = Reason.POISON.value
        queue = _text(last_death.get("queue") or headers.get("x-first-death-queue"))
        detail = (
            f"delivery limit reached on {queue}: the consumer failed or crashed on it repeatedly"
        )
        stage = "broker"
    elif not reason:
        if target:
            reason = Reason.NO_DELIVERY_QUEUE.value
            detail = f"the broker had no queue bound for target {target!r}"
        else:
            reason, detail = "unknown", "dead letter without a reason header"
    return DeadLetterInfo(
        reason=reason,
        detail=detail,
        stage=stage,
        target=target,
        message_id=props.message_id,
        message_type=props.type,
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
