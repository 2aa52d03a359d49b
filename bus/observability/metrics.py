"""Prometheus metrics of one bus process: a hop sink that counts, and gauges sampled at scrape.

Every metric is listed with its meaning in ``docs/metrics.md`` (a test keeps the two equal).
Label values are bounded whatever the input: ``type`` is a known message type or
``unknown``, ``target`` a target of routes.yaml or ``unknown``, ``reason`` a dead-letter
reason, a short slug the dispatcher reports (first :data:`MAX_EXTRA_REASONS` distinct ones)
or ``other``. Never a dossier number, message id or person.

Components report through two calls:

* :meth:`Metrics.set_circuit_state` — ``closed`` / ``open`` / ``half_open`` per target (the
  dispatcher's circuit listeners call it);
* :meth:`Metrics.register_age_source` — a callable returning ``{target: seconds}``, the age
  of the oldest undelivered message per target, for a component that knows it exactly (it
  replaces the estimate of :mod:`bus.observability.backlog`).

Shared-port (multiprocess) mode cannot remove a series: each process's values live in its
own file, which prometheus-client keeps until the process is marked dead. A series that
would be removed in the normal mode is set to ``0`` there instead (a routes digest no longer
in use, a target no longer served, an age that cannot be told); see :meth:`Metrics.drop`.

Per-hop cost is a dict lookup and one to three ``inc()`` on label children bound once per
(type, target, reason) combination; nothing is formatted on the hot path.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from bus.contract.rejections import Reason
from bus.observability.backlog import OldestWaitingEstimate
from bus.observability.hops import Event, Hop

__all__ = [
    "CIRCUIT_STATES",
    "DURATION_BUCKETS",
    "Metrics",
    "MetricsSink",
    "multiprocess_dir",
]

# Agencies answer from ~50 ms to 30 s (some take over 15 s); 60 s catches the adapter deadline.
DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0)
# From a request's first byte to the gateway's answer: a broker confirm is a few ms.
GATEWAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
CIRCUIT_STATES = {"closed": 0, "open": 1, "half_open": 2}
UNKNOWN = "unknown"
OTHER = "other"
MAX_EXTRA_REASONS = 32
VALIDATION_REASONS = frozenset(
    {Reason.MALFORMED, Reason.TOO_LARGE, Reason.INVALID, Reason.UNKNOWN_TYPE}
)
_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_HTTP_STATUS = re.compile(r"^HTTP ([1-5][0-9][0-9])\b")
_KEPT_STATUSES = frozenset(
    {"400", "401", "403", "404", "408", "409", "410", "413", "422", "425", "429"}
    | {"500", "501", "502", "503", "504"}
)

disable_created_metrics()  # one series per counter, not two


def multiprocess_dir() -> str | None:
    """The prometheus-client multiprocess directory when several processes share a port."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class LabelBounds:
    """Turns what a hop says into label values from a bounded set."""

    def __init__(self, types: Iterable[str], targets: Iterable[str]) -> None:
        self.types = {t: t for t in types}
        self.targets = {t: t for t in targets}
        self.reasons: dict[str, str] = {r.value: r.value for r in Reason}
        self._extra: set[str] = set()

    def add(self, types: Iterable[str], targets: Iterable[str]) -> bool:
        """Also accept these types and targets (a routes reload); True when something is new.

        Nothing is ever taken out: a retired target's last hops (calls in flight when it was
        removed) keep their label, and the set stays bounded by what routes.yaml ever named.
        """
        new_types = {t: t for t in types if t not in self.types}
        new_targets = {t: t for t in targets if t not in self.targets}
        # Replaced, not mutated: a hop being counted on another thread sees one or the other.
        if new_types:
            self.types = {**self.types, **new_types}
        if new_targets:
            self.targets = {**self.targets, **new_targets}
        return bool(new_types or new_targets)

    def type_of(self, value: str | None) -> str:
        return self.types.get(value, UNKNOWN) if value else UNKNOWN

    def target_of(self, value: str | None) -> str:
        return self.targets.get(value, UNKNOWN) if value else ""

    def reason_of(self, value: str | None) -> str:
        if not value:
            return ""
        found = self.reasons.get(value)
        if found is None:
            found = self._classify(value)
            if len(self.reasons) < 4096:  # memo of raw strings, bounded like the labels
                self.reasons[value] = found
        return found

    def _classify(self, value: str) -> str:
        text = value.strip()
        status = _HTTP_STATUS.match(text)
        if status:
            code = status.group(1)
            return f"http_{code}" if code in _KEPT_STATUSES else f"http_{code[0]}xx"
        lowered = text.lower()
        if lowered.startswith(("timeout", "no outcome within")) or "timed out" in lowered:
            return "timeout"
        if lowered.startswith("connection"):
            return "connection_failed"
        if _SLUG.match(text):
            if text in self._extra:
                return text
            if len(self._extra) < MAX_EXTRA_REASONS:
                self._extra.add(text)
                return text
        return OTHER


class Metrics:
    """The metric objects of one process, and the sampling of gauges at scrape time."""

    def __init__(
        self,
        *,
        types: Iterable[str],
        targets: Iterable[str],
        registry: CollectorRegistry | None = None,
    ) -> None:
        if registry is None:
            registry = CollectorRegistry(auto_describe=True)
            ProcessCollector(registry=registry)  # process_*: CPU, memory, start time
            PlatformCollector(registry=registry)  # python_info
            GCCollector(registry=registry)  # python_gc_*
        self.registry = registry
        self.multiprocess = multiprocess_dir() is not None
        self.bounds = LabelBounds(types, targets)
        self.targets = tuple(sorted(self.bounds.targets))
        r = self.registry
        self.consumed = Counter(
            "dvcbus_messages_consumed",
            "Ingress messages the router took and decided (routed or dead-lettered).",
            ["type"],
            registry=r,
        )
        self.routed = Counter(
            "dvcbus_messages_routed",
            "Copies the router published toward a target (a fan-out counts once per target).",
            ["type", "target"],
            registry=r,
        )
        self.delivered = Counter(
            "dvcbus_messages_delivered",
            "Messages a target's system accepted.",
            ["type", "target"],
            registry=r,
        )
        self.retried = Counter(
            "dvcbus_messages_retried",
            "Deliveries that failed transiently and were scheduled again.",
            ["type", "target", "reason"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "dvcbus_messages_dead_lettered",
            "Messages parked on the dead-letter queue, by the stage that parked them and why.",
            ["stage", "type", "target", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "dvcbus_messages_duplicates_suppressed",
            "Deliveries not made because the target already had the message.",
            ["type", "target"],
            registry=r,
        )
        self.superseded = Counter(
            "dvcbus_messages_superseded",
            "Status updates not delivered because a newer one already reached the target.",
            ["type", "target"],
            registry=r,
        )
        self.deferred = Counter(
            "dvcbus_messages_deferred",
            "Deliveries not attempted because the target's circuit was open.",
            ["type", "target"],
            registry=r,
        )
        self.replayed = Counter(
            "dvcbus_messages_replayed",
            "Dead letters an operator sent back for delivery.",
            ["type", "target"],
            registry=r,
        )
        self.validation_failures = Counter(
            "dvcbus_validation_failures",
            "Ingress messages refused as malformed, too large, invalid or of an unknown type.",
            ["type", "reason"],
            registry=r,
        )
        self.delivery_duration = Histogram(
            "dvcbus_delivery_duration_seconds",
            "Time from taking a message to the target's answer (or the failure), per outcome.",
            ["target", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "dvcbus_adapter_in_flight",
            "Deliveries in progress to a target right now.",
            ["target"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.concurrency = Gauge(
            "dvcbus_adapter_concurrency",
            "Deliveries a target may have in flight per dispatcher process (routes.yaml).",
            ["target"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.circuit_state = Gauge(
            "dvcbus_circuit_state",
            "Circuit breaker of a target: 0 closed, 1 open, 2 half-open.",
            ["target"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.oldest_age = Gauge(
            "dvcbus_oldest_undelivered_age_seconds",
            "Age of the oldest message waiting for a target (0 when none is waiting).",
            ["target"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.queue_messages = Gauge(
            "dvcbus_queue_messages",
            "Messages ready in a bus queue (ingress, a target's delivery queue, dead letters).",
            ["queue", "target"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.queue_consumers = Gauge(
            "dvcbus_queue_consumers",
            "Consumers attached to a bus queue.",
            ["queue", "target"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.queue_polled = Gauge(
            "dvcbus_queue_poll_timestamp_seconds",
            "When the queue depths were last read from the broker (Unix time).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.queue_poll_failures = Counter(
            "dvcbus_queue_poll_failures",
            "Queue-depth polls that failed (broker unreachable, queue missing).",
            registry=r,
        )
        self.routes_info = Gauge(
            "dvcbus_routes_info",
            "The routes.yaml in use: always 1, labelled with the sha256 of the file.",
            ["digest"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.routes_loaded = Gauge(
            "dvcbus_routes_loaded_timestamp_seconds",
            "When the routes in use were loaded (Unix time).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.ready = Gauge(
            "dvcbus_ready",
            "1 when the component is connected, its topology declared and consuming.",
            ["component"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.audit_pending = Gauge(
            "dvcbus_audit_pending_records",
            "Audit records waiting to be written to the store (bounded; see the dropped count).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.audit_write_failures = Counter(
            "dvcbus_audit_write_failures",
            "Audit batches the store (or the audit writer process) failed to write.",
            registry=r,
        )
        self.audit_dropped = Counter(
            "dvcbus_audit_records_dropped",
            "Audit records not kept because the pending buffer was full (the store was down).",
            registry=r,
        )
        self.gateway_requests = Counter(
            "dvcbus_gateway_requests",
            "Messages posted to the gateway, by outcome (accepted, answered_again, refused) "
            "and refusal reason.",
            ["outcome", "reason"],
            registry=r,
        )
        self.gateway_duration = Histogram(
            "dvcbus_gateway_request_duration_seconds",
            "Time from a POST's arrival to the gateway's answer (202 after the broker's confirm).",
            ["outcome"],
            buckets=GATEWAY_BUCKETS,
            registry=r,
        )
        self.gateway_reads = Counter(
            "dvcbus_gateway_reads",
            "Status reads (GET /v1/messages/{id}) answered by the gateway, by outcome "
            "(answered, not_found, unauthenticated, rate_limited).",
            ["outcome"],
            registry=r,
        )
        self.gateway_confirms_pending = Gauge(
            "dvcbus_gateway_confirms_pending",
            "Messages the gateway published and whose broker confirm it still awaits.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.estimate = OldestWaitingEstimate()
        self._age_source: Callable[[], Mapping[str, float]] | None = None
        self._extra_ages: list[Callable[[float], Mapping[str, float]]] = []
        self._samplers: list[Callable[[], None]] = []
        self._routes_label: str | None = None
        self._lanes: Mapping[str, Any] | None = None
        self._lane_targets: set[str] = set()
        self._age_targets: set[str] = set()

    # --------------------------------------------------------------- component API

    def set_circuit_state(self, target: str, state: str) -> None:
        """Report a target's circuit breaker state: ``closed``, ``open`` or ``half_open``."""
        value = CIRCUIT_STATES.get(state)
        if value is None:
            raise ValueError(f"circuit state {state!r} is not one of {sorted(CIRCUIT_STATES)}")
        self.circuit_state.labels(self.bounds.target_of(target)).set(value)

    def add_age_floor(self, source: Callable[[float], Mapping[str, float]]) -> None:
        """Another view of waiting messages (``now -> {target: seconds}``); the oldest wins."""
        self._extra_ages.append(source)

    def register_age_source(self, source: Callable[[], Mapping[str, float]] | None) -> None:
        """Use ``source()`` (``{target: seconds}``) for the oldest-undelivered age per target.

        Called at each scrape; it must be quick (an indexed query, or a cached value). Until
        a source is registered the age is estimated from the hops this process sees (see
        :class:`bus.observability.backlog.OldestWaitingEstimate`).
        """
        self._age_source = source

    def set_routes(self, digest: str, loaded_at: float | None = None) -> None:
        """Record which routes.yaml is live (sha256 of the file) and when it was loaded."""
        label = digest or UNKNOWN
        previous, self._routes_label = self._routes_label, label
        if previous is not None and previous != label:
            self.drop(self.routes_info, previous)
        self.routes_info.labels(label).set(1)
        self.routes_loaded.set(loaded_at if loaded_at is not None else time.time())

    def add_known(self, types: Iterable[str], targets: Iterable[str]) -> bool:
        """Accept new message types and targets as label values (a routes reload)."""
        added = self.bounds.add(types, targets)
        if added:
            self.targets = tuple(sorted(self.bounds.targets))
        return added

    def drop(self, gauge: Gauge, *labels: str) -> None:
        """Take a gauge's series away: removed, or set to 0 in shared-port mode.

        In multiprocess mode ``remove()`` only forgets the value in this process; the file
        the scrape reads keeps it until the process dies, so the last value would stay
        visible (and keep an alert firing). ``0`` is what "nothing" means for every gauge
        this is used on: not the routes in use, nothing in flight, circuit closed, no age.
        """
        if not _has(gauge, *labels):
            return
        if self.multiprocess:
            gauge.labels(*labels).set(0)
        else:
            gauge.remove(*labels)

    def watch_audit(self, sink: Any) -> None:
        """Sample an audit sink: records pending, write failures and drops (``.pending``,
        ``.write_failures``, ``.dropped``, the last two counting up from 0)."""
        seen = {"failures": 0, "dropped": 0}

        def sample() -> None:
            self.audit_pending.set(sink.pending)
            failures, dropped = sink.write_failures, sink.dropped
            if failures > seen["failures"]:
                self.audit_write_failures.inc(failures - seen["failures"])
                seen["failures"] = failures
            if dropped > seen["dropped"]:
                self.audit_dropped.inc(dropped - seen["dropped"])
                seen["dropped"] = dropped

        self.add_sampler(sample)

    def add_sampler(self, sampler: Callable[[], None]) -> None:
        """A function that sets gauges from live state; run before every scrape."""
        self._samplers.append(sampler)

    def watch_lanes(self, lanes: Mapping[str, Any]) -> None:
        """Sample in-flight deliveries from the dispatcher's lanes (``.in_flight``).

        ``lanes`` is the dispatcher's own dict: lanes a routes reload adds, changes or
        retires are picked up at the next sample (:meth:`sync_lanes`).
        """
        self._lanes = lanes
        self.sync_lanes()

        def sample() -> None:
            self.sync_lanes()
            estimate = self.estimate
            for name, lane in list(lanes.items()):
                in_flight = lane.in_flight
                target = self.bounds.target_of(name)
                self.in_flight.labels(target).set(in_flight)
                started = getattr(lane, "started", None)  # delivery tag -> routed-at
                times = list(started.values()) if isinstance(started, dict) else []
                estimate.sample_in_flight(
                    target, in_flight, min(times, default=None), max(times, default=None)
                )

        self.add_sampler(sample)

    def sync_lanes(self) -> None:
        """Per-target series of the lanes served now; those of retired lanes are dropped."""
        lanes = self._lanes
        if lanes is None:
            return
        current: dict[str, Any] = {
            self.bounds.target_of(n): lane for n, lane in list(lanes.items())
        }
        for target, lane in current.items():
            self.concurrency.labels(target).set(lane.concurrency)
            if target not in self._lane_targets and not _has(self.circuit_state, target):
                self.circuit_state.labels(target).set(CIRCUIT_STATES["closed"])
        for target in self._lane_targets - set(current):
            for gauge in (self.in_flight, self.concurrency, self.circuit_state, self.oldest_age):
                self.drop(gauge, target)
            self.estimate.forget(target)
        self.estimate.watch(current)
        self._lane_targets = set(current)

    def refresh(self, now: float | None = None) -> None:
        """Bring the sampled gauges up to date (before a scrape, or periodically)."""
        for sampler in self._samplers:
            sampler()
        now = time.time() if now is None else now
        if self._age_source is not None:
            ages: dict[str, float | None] = dict(self._age_source())
        else:
            ages = dict(self.estimate.ages(now))
        for extra in self._extra_ages:  # e.g. messages waiting in a retry delay tier
            for target, seconds in extra(now).items():
                known = ages.get(target)
                ages[target] = seconds if known is None else max(known, seconds)
        told: set[str] = set()
        for target, seconds in ages.items():
            label = self.bounds.target_of(target)
            if seconds is not None:
                self.oldest_age.labels(label).set(max(0.0, float(seconds)))
                told.add(label)
            else:
                self.drop(self.oldest_age, label)  # unknown now: not a stale value
        for label in self._age_targets - told - {self.bounds.target_of(t) for t in ages}:
            self.drop(self.oldest_age, label)  # no longer reported at all (target retired)
        self._age_targets = told


def _has(gauge: Gauge, *labels: str) -> bool:
    # prometheus-client has no public "has this child"; _metrics is its label -> child dict
    return tuple(labels) in gauge._metrics


# Hops of a message the dispatcher took from the target's queue (for the age estimate); the
# counted-with-duration ones (delivered, retried, dead-lettered) go through _settled.
_TAKEN = frozenset({Event.DUPLICATE_SUPPRESSED, Event.SUPERSEDED, Event.DEFERRED})


class MetricsSink:
    """The hop sink: counts every hop into :class:`Metrics`, with label children cached."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.bounds = metrics.bounds
        self._routed: dict[tuple[str, tuple[str, ...]], tuple[Any, ...]] = {}
        self._children: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._handlers = {
            Event.ROUTED: self._on_routed,
            Event.DEAD_LETTERED: self._on_dead_lettered,
            Event.DELIVERED: self._on_delivered,
            Event.RETRIED: self._on_retried,
            Event.DUPLICATE_SUPPRESSED: self._simple(metrics.duplicates),
            Event.SUPERSEDED: self._simple(metrics.superseded),
            Event.DEFERRED: self._simple(metrics.deferred),
            Event.REPLAYED: self._simple(metrics.replayed),
            Event.ACCEPTED: self._on_gateway,
            Event.REFUSED: self._on_gateway,
            Event.ANSWERED_AGAIN: self._on_gateway,
        }
        missing = set(Event) - set(self._handlers)
        if missing:  # a new Event must be counted somewhere: fail at start, not in traffic
            raise RuntimeError(f"MetricsSink has no handler for {sorted(missing)}")

    def record(self, hop: Hop) -> None:
        self._handlers[hop.event](hop)

    def reset(self) -> None:
        """Forget the cached label children (after the label bounds learned new values)."""
        self._routed = {}
        self._children = {}

    # One cache lookup per hop; the key is made of bounded labels only.
    def _on_routed(self, hop: Hop) -> None:
        type_ = self.bounds.type_of(hop.message_type)
        key = (type_, hop.targets)
        children = self._routed.get(key)
        if children is None:
            if len(self._routed) > 10_000:  # only bounded labels reach here; belt and braces
                self._routed.clear()
            m = self.metrics
            routed = [m.routed.labels(type_, self.bounds.target_of(t)) for t in hop.targets]
            children = (m.consumed.labels(type_), *routed)
            self._routed[key] = children
        for child in children:
            child.inc()

    def _on_dead_lettered(self, hop: Hop) -> None:
        key = (
            Event.DEAD_LETTERED,
            hop.stage,
            self.bounds.type_of(hop.message_type),
            self.bounds.target_of(hop.target),
            self.bounds.reason_of(hop.reason),
        )
        children = self._children.get(key)
        if children is None:
            _, stage, type_, target, reason = key
            m = self.metrics
            stage = stage if stage in ("router", "dispatcher", "operator") else OTHER
            found = [m.dead_lettered.labels(stage, type_, target, reason)]
            if stage == "router":
                found.append(m.consumed.labels(type_))
                if reason in VALIDATION_REASONS:
                    found.append(m.validation_failures.labels(type_, reason))
            children = self._children[key] = tuple(found)
        for child in children:
            child.inc()
        if hop.target:
            self._settled(hop, "dead_lettered")

    def _on_delivered(self, hop: Hop) -> None:
        bounds = self.bounds
        key = (Event.DELIVERED, bounds.type_of(hop.message_type), bounds.target_of(hop.target))
        children = self._children.get(key)
        if children is None:
            _, type_, target = key
            children = self._children[key] = (self.metrics.delivered.labels(type_, target),)
        children[0].inc()
        self._settled(hop, "delivered")

    def _on_retried(self, hop: Hop) -> None:
        key = (
            Event.RETRIED,
            self.bounds.type_of(hop.message_type),
            self.bounds.target_of(hop.target),
            self.bounds.reason_of(hop.reason),
        )
        children = self._children.get(key)
        if children is None:
            _, type_, target, reason = key
            children = self._children[key] = (self.metrics.retried.labels(type_, target, reason),)
        children[0].inc()
        self._settled(hop, "retried")

    def _on_gateway(self, hop: Hop) -> None:
        # reason is a gateway refusal slug (a closed set, bus.ingress.refusals), bounded again
        key = ("gateway", hop.event, self.bounds.reason_of(hop.reason))
        children = self._children.get(key)
        if children is None:
            m, outcome = self.metrics, hop.event.value
            children = self._children[key] = (
                m.gateway_requests.labels(outcome, key[2]),
                m.gateway_duration.labels(outcome),
            )
        children[0].inc()
        if hop.duration is not None:
            children[1].observe(hop.duration)

    def _simple(self, counter: Counter) -> Callable[[Hop], None]:
        def count(hop: Hop) -> None:
            bounds = self.bounds
            key = (counter, bounds.type_of(hop.message_type), bounds.target_of(hop.target))
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (counter.labels(key[1], key[2]),)
            children[0].inc()
            if hop.event in _TAKEN and hop.target:
                self.metrics.estimate.settled(key[2], hop.message_id, hop.at)

        return count

    def _settled(self, hop: Hop, outcome: str) -> None:
        """A delivery attempt ended: its duration, and the estimate of what still waits."""
        target = self.bounds.target_of(hop.target)
        if hop.duration is not None:
            key = ("duration", target, outcome)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (
                    self.metrics.delivery_duration.labels(target, outcome),
                )
            children[0].observe(hop.duration)
        self.metrics.estimate.settled(target, hop.message_id, hop.at)
