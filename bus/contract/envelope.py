"""The message envelope: the first step of the router's path (size check, decode, parse)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from bus.contract.rejections import Reason, Rejection

DEFAULT_MAX_BYTES = 1024 * 1024
STATUS_TYPE = "dossier.status_changed"


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
    dossier_no: str | None = None  # what the message is about (see :func:`dossier_no_of`)

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
            dossier_no=dossier_no_of(doc),
        )


def dossier_no_of(doc: dict[str, Any]) -> str | None:
    """The dossier a message is about: the envelope's correlation id, else the payload's.

    Status updates must carry ``payload.dossier_no`` but may omit ``correlation_id``; every
    per-dossier rule (ordering, trace, audit) keys on this one answer.
    """
    value = doc.get("correlation_id")
    if value is None:
        payload = doc.get("payload")
        value = payload.get("dossier_no") if isinstance(payload, dict) else None
    return short_str(value)


def status_of(doc: Any) -> int | None:
    """The status code a status update carries (1 … 10), else None."""
    payload = doc.get("payload") if isinstance(doc, dict) else None
    status = payload.get("status") if isinstance(payload, dict) else None
    return status if type(status) is int else None


def short_str(value: Any) -> str | None:
    """``value`` when it is a string short enough to be an identifier, else None."""
    return value if isinstance(value, str) and len(value) <= 64 else None


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
