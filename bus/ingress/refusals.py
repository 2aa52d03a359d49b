"""Why the gateway refuses a request: a closed set of reasons, each with its HTTP status.

The reason is what a sender reads in the problem body (``reason``), what the refused hop
carries to the logs and the audit trail, and the ``reason`` label of the gateway's metrics.
Bodies follow RFC 9457 (``application/problem+json``) and never quote the request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from aiohttp import web

PROBLEM_JSON = "application/problem+json"


class Refusal(StrEnum):
    UNAUTHENTICATED = "unauthenticated"  # 401: no bearer token, or one nobody has
    CERTIFICATE_NOT_REGISTERED = "certificate_not_registered"  # 403: not the sender's cert
    RATE_LIMITED = "rate_limited"  # 429: above the sender's rate
    BAD_REQUEST = "bad_request"  # 400: an Idempotency-Key of the wrong shape
    SLOW_BODY = "slow_body"  # 408: the body did not arrive within the body timeout
    TOO_LARGE = "too_large"  # 413: body above the cap, not read
    MALFORMED = "malformed"  # 422: not UTF-8 JSON, not an object, a repeated key; not XML
    HOSTILE_XML = "hostile_xml"  # 422: XML with a DTD or entities (never expanded)
    INVALID = "invalid"  # 422: fails the envelope or payload schema
    UNKNOWN_TYPE = "unknown_type"  # 422: no schema for this type and version
    SOURCE_NOT_ALLOWED = "source_not_allowed"  # 403: the sender may not claim this source
    TYPE_NOT_ALLOWED = "type_not_allowed"  # 403: the sender may not send this type
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"  # 422: same key, another body
    IN_FLIGHT = "in_flight"  # 409: same key, its first request is still being handled
    ID_CONFLICT = "id_conflict"  # 409: this message id was accepted with another body/sender
    BROKER_UNAVAILABLE = "broker_unavailable"  # 503: not confirmed (down, nack, return, full)


STATUS = {
    Refusal.UNAUTHENTICATED: 401,
    Refusal.CERTIFICATE_NOT_REGISTERED: 403,
    Refusal.RATE_LIMITED: 429,
    Refusal.BAD_REQUEST: 400,
    Refusal.SLOW_BODY: 408,
    Refusal.TOO_LARGE: 413,
    Refusal.MALFORMED: 422,
    Refusal.HOSTILE_XML: 422,
    Refusal.INVALID: 422,
    Refusal.UNKNOWN_TYPE: 422,
    Refusal.SOURCE_NOT_ALLOWED: 403,
    Refusal.TYPE_NOT_ALLOWED: 403,
    Refusal.IDEMPOTENCY_CONFLICT: 422,
    Refusal.IN_FLIGHT: 409,
    Refusal.ID_CONFLICT: 409,
    Refusal.BROKER_UNAVAILABLE: 503,
}

TITLES = {
    Refusal.UNAUTHENTICATED: "No valid bearer token",
    Refusal.CERTIFICATE_NOT_REGISTERED: "No client certificate registered for this sender",
    Refusal.RATE_LIMITED: "Too many requests from this sender",
    Refusal.BAD_REQUEST: "Bad request",
    Refusal.SLOW_BODY: "The request body came too slowly",
    Refusal.TOO_LARGE: "The request body is too large",
    Refusal.MALFORMED: "The body is not a JSON object",
    Refusal.HOSTILE_XML: "The XML declares a DTD or entities",
    Refusal.INVALID: "The message does not match its schema",
    Refusal.UNKNOWN_TYPE: "No schema for this message type and version",
    Refusal.SOURCE_NOT_ALLOWED: "This sender may not claim this source",
    Refusal.TYPE_NOT_ALLOWED: "This sender may not send this message type",
    Refusal.IDEMPOTENCY_CONFLICT: "This Idempotency-Key was used for another body",
    Refusal.IN_FLIGHT: "A request with this Idempotency-Key is still being handled",
    Refusal.ID_CONFLICT: "This message id was already accepted for another message",
    Refusal.BROKER_UNAVAILABLE: "The bus cannot take the message now; retry later",
}


@dataclass
class Refused(Exception):
    """A request the gateway refuses, with what the sender is told."""

    refusal: Refusal
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)  # invalid: path, rule, expected
    retry_after: float | None = None  # 429, 503: seconds

    @property
    def status(self) -> int:
        return STATUS[self.refusal]

    def response(self) -> web.Response:
        body: dict[str, Any] = {
            "type": f"urn:dvcbus:problem:{self.refusal.value}",
            "title": TITLES[self.refusal],
            "status": self.status,
            "reason": self.refusal.value,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        headers = {}
        if self.refusal is Refusal.UNAUTHENTICATED:
            headers["WWW-Authenticate"] = 'Bearer realm="dvc-bus"'
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return web.Response(
            status=self.status, body=orjson.dumps(body), content_type=PROBLEM_JSON, headers=headers
        )
