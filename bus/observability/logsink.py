"""Hops as structured log events: one line per step of a message's journey.

Every line carries the same fields, so an operator can follow one message (``message_id``)
or one dossier (``dossier_no``) across processes with a single filter:

    event        "<stage>.<event>": router.routed, dispatcher.delivered, dispatcher.retried …
    outcome      the event alone: routed, delivered, retried, dead_lettered, …
    message_id, type, dossier_no, target (or targets for a fan-out), attempt, duration_ms
    reason, detail, reference   when the hop has them (detail is masked free text)

The router's one hop per message stands for receipt, validation and routing together
(``router.routed`` or ``router.dead_lettered``, its ``duration_ms`` covering all three): a
line per sub-step would triple the log volume of the busiest process for no new fact.

Levels: the normal path (routed, delivered …) is INFO, so the default level shows one line
per hop; a dead letter is WARNING, so ``log_level = "WARNING"`` keeps only the exceptions.
Personal data is masked by the processor in the log chain (:mod:`bus.observability.masking`);
``detail`` and ``reason`` may quote an agency's answer, so they are masked here as well.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

from bus.contract.rejections import shown_identity
from bus.observability.hops import Event, Hop
from bus.observability.masking import LOG_MASKER

WARNING_EVENTS = frozenset({Event.DEAD_LETTERED})


class LogSink:
    """Writes each hop as one log event named ``<stage>.<event>``.

    With JSON logs it writes through :class:`bus.log.JsonLines` (the hot path); otherwise,
    or when given a logger, through structlog.
    """

    def __init__(self, logger: Any = None) -> None:
        from bus.observability import log as log_config

        self.log = logger if logger is not None else structlog.get_logger("bus.hops")
        self.lines = log_config.hop_lines if logger is None else None
        self._names: dict[tuple[str, Event], str] = {}

    def record(self, hop: Hop) -> None:
        event = hop.event
        if self.lines is not None:
            self._fast(hop)
            return
        emit = self.log.warning if event in WARNING_EVENTS else self.log.info
        key = (hop.stage, event)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"{hop.stage}.{event.value}"
        fields: dict[str, Any] = {
            "outcome": event.value,
            "message_id": hop.message_id,
            "type": hop.message_type,
            "dossier_no": hop.dossier_no,
            "attempt": hop.attempt,
        }
        if hop.target:
            fields["target"] = hop.target
        if hop.targets:
            fields["targets"] = hop.targets
        if hop.duration is not None:
            fields["duration_ms"] = round(hop.duration * 1000, 2)
        if hop.reason:
            fields["reason"] = LOG_MASKER.text(hop.reason)
        if hop.detail:
            fields["detail"] = LOG_MASKER.text(hop.detail)
        if hop.reference:
            fields["reference"] = hop.reference
        emit(name, **fields)

    def _fast(self, hop: Hop) -> None:
        event = hop.event
        key = (hop.stage, event)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"{hop.stage}.{event.value}"
        mask = LOG_MASKER.text
        message_id, message_type, dossier_no = shown_identity(
            hop.stage, hop.reason, hop.message_id, hop.message_type, hop.dossier_no, mask
        )
        fields: dict[str, Any] = {
            "outcome": event.value,
            "message_id": message_id,
            "type": message_type,
            "dossier_no": dossier_no,
            "attempt": hop.attempt,
        }
        if hop.target:
            fields["target"] = hop.target
        if hop.targets:
            fields["targets"] = hop.targets
        if hop.duration is not None:
            fields["duration_ms"] = round(hop.duration * 1000, 2)
        if hop.reason:
            fields["reason"] = mask(hop.reason)
        if hop.detail:
            fields["detail"] = mask(hop.detail)
        if hop.reference:
            fields["reference"] = mask(hop.reference)
        fields["event"] = name
        assert self.lines is not None
        self.lines.write(logging.WARNING if event in WARNING_EVENTS else logging.INFO, fields)
