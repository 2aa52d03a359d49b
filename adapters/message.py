"""The canonical message as an adapter receives it.

It lives in the SDK, not in the bus, so a plug-in depends on this one small module and
never on the core: the bus builds a :class:`Message` (``bus.contract.envelope`` re-exports
it) and hands it to :meth:`adapters.Adapter.deliver`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["INVALID_TRANSITION", "STATUS_HISTORY", "Message", "dossier_no_of", "short_str"]

# What the bus says about one delivery of a status update (``Message.flags``; sent to the
# agency in the ``X-Bus-Flags`` header). A late status (older by status_at, sequence than one
# already delivered) to a target that keeps history: record it as a progress record, never
# as the dossier's current state.
STATUS_HISTORY = "status-history"
# A status the lifecycle (statuses.yaml) does not allow after the last one delivered here,
# forwarded because the route or target asked for it (a system that re-syncs its history).
INVALID_TRANSITION = "invalid-transition"


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
    # The bus's word on this delivery (STATUS_HISTORY, INVALID_TRANSITION); set per target
    # by the dispatcher, empty for almost every message.
    flags: tuple[str, ...] = ()

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


def short_str(value: Any) -> str | None:
    """``value`` when it is a string short enough to be an identifier, else None."""
    return value if isinstance(value, str) and len(value) <= 64 else None
