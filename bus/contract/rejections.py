"""Why a message is dead-lettered: a closed set of reasons an operator can filter on."""

from __future__ import annotations

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
