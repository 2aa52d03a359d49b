"""Why a message is dead-lettered: a closed set of reasons an operator can filter on."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class Reason(StrEnum):
    """Dead-letter reasons. The value is what operators see in headers, logs and metrics."""

    MALFORMED = "malformed"  # not UTF-8 JSON, or not a JSON object
    TOO_LARGE = "too_large"  # body larger than the configured cap; not parsed
    INVALID = "invalid"  # fails the envelope or payload schema
    UNKNOWN_TYPE = "unknown_type"  # no schema for this (type, version)
    UNAUTHORISED = "unauthorised"  # source not allowed to send this type
    UNROUTABLE = "unroutable"  # no route matched
    AMBIGUOUS_UNIT = "ambiguous_unit"  # pre-reform unit code split across several new units
    CHECKSUM_MISMATCH = "checksum_mismatch"  # payment's checksum or signed fields do not hold
    UNVERIFIABLE = "unverifiable"  # payment the router cannot verify (v1, unknown partner)
    INVALID_TRANSITION = "invalid_transition"  # status cannot follow the last one delivered
    REJECTED = "rejected"  # the agency refused it permanently (4xx, SOAP Client fault ...)
    RETRIES_EXHAUSTED = "retries_exhausted"  # transient failures until max attempts or age
    NO_DELIVERY_QUEUE = "no_delivery_queue"  # broker had no queue for the target
    POISON = "poison"  # broker delivery limit reached (crashed consumers repeatedly)


class Rejection(Exception):
    """A message that cannot go on: carries the reason and a precise, personal-data-free detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


Identity = tuple[str | None, str | None, str | None]
# Stages whose hop with a reason is a refusal of a message nobody validated (the gateway's
# refusals carry what a sender wrote, like the router's dead letters).
_REFUSING_STAGES = frozenset({"router", "gateway"})


def shown_identity(
    stage: str,
    reason: str | None,
    message_id: str | None,
    message_type: str | None,
    dossier_no: str | None,
    mask: Callable[[str], str],
) -> Identity:
    """A hop's message id, type and dossier number as a log line, audit record or operator
    view shows them.

    A router hop that carries a reason is a refusal (``dead_lettered``, or the ``replayed``
    hop of a dead letter the router refuses again; a gateway's ``refused`` hop too): the
    message was never validated, so its id, type and dossier number are whatever the sender
    wrote (already cut to identifier length by the router), and each is passed through
    ``mask`` like free text. Any other hop's identity (routed, delivered, a replay the router
    forwards) was validated and is shown as it is.
    """
    if stage not in _REFUSING_STAGES or not reason:
        return message_id, message_type, dossier_no
    return (
        mask(message_id) if message_id else message_id,
        mask(message_type) if message_type else message_type,
        mask(dossier_no) if dossier_no else dossier_no,
    )
