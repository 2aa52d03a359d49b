"""Status ordering: a dossier's status never moves backward at its destination.

A ``dossier.status_changed`` is placed by (occurred_at, sequence); one older than the newest
already delivered for the same dossier and target is not delivered (``superseded``).
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
    occurred = datetime.fromisoformat(message.occurred_at.replace("Z", "+00:00")).timestamp()
    return StatusPosition(
        occurred, int(payload.get("sequence", 0)), payload.get("status"), message.id
    )


def is_older(candidate: StatusPosition, current: StatusPosition | None) -> bool:
    return current is not None and candidate.key() < current.key()
