"""Hops as structured log events: one line per step of a message's journey."""

from __future__ import annotations

import structlog

from bus.hops import Event, Hop

QUIET = frozenset({Event.ROUTED, Event.DELIVERED})  # the normal path: DEBUG, not INFO


class LogSink:
    """Writes each hop as one structlog event named ``<stage>.<event>``."""

    def __init__(self) -> None:
        self.log = structlog.get_logger("bus.hops")

    def record(self, hop: Hop) -> None:
        emit = self.log.debug if hop.event in QUIET else self.log.info
        fields = {
            "message_id": hop.message_id,
            "type": hop.message_type,
            "dossier_no": hop.dossier_no,
            "attempt": hop.attempt,
        }
        if hop.target:
            fields["target"] = hop.target
        if hop.targets:
            fields["targets"] = hop.targets
        if hop.reason:
            fields["reason"] = hop.reason
        if hop.detail:
            fields["detail"] = hop.detail
        if hop.duration is not None:
            fields["duration_ms"] = round(hop.duration * 1000, 2)
        emit(f"{hop.stage}.{hop.event.value}", **fields)
