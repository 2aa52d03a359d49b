"""Status ordering: a dossier's status never moves backward at its destination.

A ``dossier.status_changed`` is placed by the contract's key: the agency's ``status_at``,
then the per-dossier ``sequence`` (schemas/dossier.status_changed.v1.json), never by the
envelope's ``occurred_at`` (when the message was written, which a re-sync or a retry at the
sender moves). One older than the newest already delivered for the same dossier and target
is late: a target that keeps only the current state does not get it (``superseded``); one
that keeps history gets it flagged as history (``bus.delivery.lifecycle``).
"""

from __future__ import annotations

from datetime import datetime

from bus.contract.envelope import STATUS_TYPE, Message
from bus.store import StatusPosition

__all__ = ["STATUS_TYPE", "is_older", "position"]


def position(message: Message) -> StatusPosition | None:
    """Where a status message stands; None for other types (they are not ordered)."""
    if message.type != STATUS_TYPE:
        return None
    payload = message.payload
    at = datetime.fromisoformat(payload["status_at"].replace("Z", "+00:00")).timestamp()
    return StatusPosition(at, int(payload.get("sequence", 0)), payload.get("status"), message.id)


def is_older(candidate: StatusPosition, current: StatusPosition | None) -> bool:
    return current is not None and candidate.key() < current.key()
