"""The message envelope: the first step of the router's path (size check, decode, parse)."""

from __future__ import annotations

from typing import Any

import orjson

from adapters.message import Message, dossier_no_of, short_str
from bus.contract.rejections import Reason, Rejection

DEFAULT_MAX_BYTES = 1024 * 1024
STATUS_TYPE = "dossier.status_changed"

# The message adapters receive is the SDK's (bus -> adapters, never the reverse); it is
# re-exported here so the bus keeps one place to import the envelope from.
__all__ = [
    "DEFAULT_MAX_BYTES",
    "STATUS_TYPE",
    "Message",
    "dossier_no_of",
    "parse",
    "short_str",
    "status_of",
]


def status_of(doc: Any) -> int | None:
    """The status code a status update carries (1 … 10), else None."""
    payload = doc.get("payload") if isinstance(doc, dict) else None
    status = payload.get("status") if isinstance(payload, dict) else None
    return status if type(status) is int else None


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
