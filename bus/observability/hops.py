"""Hops: what happened to a message at each step, told to every observer.

The router and the dispatcher say what they did once, as a :class:`Hop`; metrics, logs and
the audit trail are observers (:class:`HopSink`) that each turn hops into their own output.
No pipeline step knows who listens: each process adds its sinks to its :class:`Hops`
(``bus.app.build_hops`` gives the log sink; ``dvcbus run`` adds metrics and audit,
``dvcbus dead replay`` adds audit).

Sinks are called synchronously on the event loop for every hop, so they must be cheap:
count, format a line, or append to a batch that is written elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import structlog

log = structlog.get_logger("bus.hops")


class Event(StrEnum):
    """The steps of a message's journey."""

    ROUTED = "routed"  # router: validated, authorised, copies confirmed toward targets
    DEAD_LETTERED = "dead_lettered"  # router or dispatcher: parked with a reason
    DELIVERED = "delivered"  # dispatcher: the agency accepted it
    RETRIED = "retried"  # dispatcher: transient failure, scheduled again
    DUPLICATE_SUPPRESSED = "duplicate_suppressed"  # already delivered to this target
    SUPERSEDED = "superseded"  # an older status than one already delivered
    DEFERRED = "deferred"  # circuit open: not attempted, left waiting in its queue
    REPLAYED = "replayed"  # operator sent a dead letter back
    ACCEPTED = "accepted"  # gateway: the broker confirmed a sender's message (answered 202)
    REFUSED = "refused"  # gateway: a request refused (reason: a gateway refusal, 4xx or 503)
    ANSWERED_AGAIN = "answered_again"  # gateway: same Idempotency-Key and body, first answer


class Stage(StrEnum):
    """Who acted on a message: a hop's stage, and the ``x-dvcbus-stage`` of a dead letter."""

    ROUTER = "router"
    DISPATCHER = "dispatcher"
    OPERATOR = "operator"  # dvcbus dead replay
    BROKER = "broker"  # dead letters only: the broker parked it (delivery limit, no queue)
    GATEWAY = "gateway"  # the HTTP gateway (bus/ingress/): requests accepted or refused


@dataclass(slots=True)
class Hop:
    """One step of one message. ``body`` is the message as on the wire (for hashing)."""

    event: Event
    stage: Stage
    message_id: str | None
    message_type: str | None
    dossier_no: str | None = None
    target: str | None = None
    targets: tuple[str, ...] = ()
    reason: str | None = None  # dead-letter / retry reason, e.g. "invalid", "HTTP 503"
    detail: str | None = None  # free text; may quote an agency's answer (mask before output)
    attempt: int = 1
    duration: float | None = None  # seconds spent in this step
    reference: str | None = None  # the agency's own id for a delivery
    status: int | None = None  # a dossier.status_changed's status code (1 … 10; not personal)
    body: bytes = b""
    body_sha256: bytes | None = None  # the body's digest, when the emitter already has it
    at: float = field(default_factory=time.time)


class HopSink(Protocol):
    """An observer of hops (metrics, logs, audit).

    A sink that must have the hops so far on disk before the work they describe is acked
    (the audit trail's journal) also has ``sync()``; :meth:`Hops.sync` calls it.
    """

    def record(self, hop: Hop) -> None: ...


class Hops:
    """The observers of one process. A failing observer is logged, never allowed to stop a hop."""

    __slots__ = ("_syncs", "sinks")

    def __init__(self, sinks: list[HopSink] | None = None) -> None:
        self.sinks: list[HopSink] = []
        self._syncs: list[Callable[[], None]] = []
        for sink in sinks or []:
            self.add(sink)

    def add(self, sink: HopSink) -> None:
        self.sinks.append(sink)
        sync = getattr(sink, "sync", None)
        if sync is not None:
            self._syncs.append(sync)

    def sync(self) -> None:
        """Make the hops emitted so far durable: called right before an ack (or the store
        commit of a delivery) that their work allows. An error propagates: the ack must
        not be sent without its hops."""
        for sync in self._syncs:
            sync()

    def emit(self, hop: Hop) -> None:
        for sink in self.sinks:
            try:
                sink.record(hop)
            except Exception:
                log.exception(
                    "hops.sink_failed", sink=type(sink).__name__, hop_event=hop.event.value
                )
