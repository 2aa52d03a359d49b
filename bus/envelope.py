"""The message envelope: the first step of the router's path (size check, decode, parse)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from bus.rejections import Reason, Rejection

DEFAULT_MAX_BYTES = 1024 * 1024


@dataclass(slots=True)
class Message:
    """A parsed, validated canonical message as adapters see it.

    ``doc`` is the whole envelope as parsed JSON; ``body`` the exact bytes on the wire.
    """

    id: str
    type: str
    version: int
    source: str
    occurred_at: str
    correlation_id: str | None
    traceparent: str | None
    payload: dict[str, Any]
    doc: dict[str, Any]
    body: bytes

    @classmethod
    def from_doc(cls, doc: dict[str, Any], body: bytes) -> Message:
        """Wrap an envelope that has already passed schema validation."""
        return cls(
            id=doc["id"],
            type=doc["type"],
            version=doc["version"],
            source=doc["source"],
            occurred_at=doc["occurred_at"],
            correlation_id=doc.get("correlation_id"),
            traceparent=doc.get("traceparent"),
            payload=doc["payload"],
            doc=doc,
            body=body,
        )


def parse(body: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Decode a message body into a JSON object, refusing oversized or non-JSON input.

    The size is checked before anything else so a hostile 100 MB body costs nothing.
    """
    if len(body) > max_bytes:
        raise Rejection(Reason.TOO_LARGE, f"body is {len(body)} bytes, cap is {max_bytes}")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejection(Reason.MALFORMED, _decode_problem(body, exc)) from None
    if not isinstance(doc, dict):
        raise Rejection(
            Reason.MALFORMED, f"top level is a JSON {type(doc).__name__}, not an object"
        )
    return doc


def _decode_problem(body: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as uexc:
        return f"not UTF-8: invalid byte at offset {uexc.start}"
    return f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
