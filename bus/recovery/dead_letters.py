"""Reading a dead letter back: why a message on the dead-letter queue is there.

The original body travels unchanged, so a dead letter can be replayed byte for byte; the
reason and its detail ride in headers (written by :func:`bus.broker.wire.dead_letter_properties`).
Messages the broker itself dead-lettered (delivery limit reached, or a copy for a target that
has no queue) carry no reason header of ours: :func:`read` derives one from what the broker
left on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pika import BasicProperties

from bus.broker.wire import Header, header_text, last_death
from bus.contract.rejections import Reason
from bus.observability.hops import Stage


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
    reason = header_text(headers.get(Header.REASON))
    detail = header_text(headers.get(Header.DETAIL))
    stage = header_text(headers.get(Header.STAGE)) or Stage.BROKER.value
    target = header_text(headers.get(Header.TARGET)) or None
    death = last_death(headers)
    if death is not None and death.reason == "delivery_limit" and Header.REASON not in headers:
        reason = Reason.POISON.value
        detail = (
            f"delivery limit reached on {death.queue}: "
            "the consumer failed or crashed on it repeatedly"
        )
        stage = Stage.BROKER.value
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
