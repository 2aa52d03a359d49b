"""Wiring: settings + schemas + units + routes → router and dispatcher, run until a signal.

Everything is loaded and checked before the first connection, so a broken routes.yaml or
schema stops a process at start with the problem, never in the middle of traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from bus import store as store_module
from bus.broker.permissions import bus_user_name
from bus.broker.stamp import StampKey
from bus.broker.stamp_key import load_stamp_key
from bus.broker.topology import Names, Topology, plan
from bus.contract.admin_units import AdminUnits
from bus.contract.schemas import SchemaRegistry
from bus.delivery import adapter_registry
from bus.delivery.adapter_registry import AdapterNotFound
from bus.delivery.circuit import CircuitBreaker
from bus.delivery.deadline import adapter_deadline
from bus.delivery.dispatcher import Dispatcher, RetryPlan, TargetLane
from bus.delivery.ratelimit import TokenBucket
from bus.delivery.retry import tiers
from bus.errors import ConfigError
from bus.ingress.senders import SendersConfig, load_senders
from bus.observability.audit import AuditSink
from bus.observability.hops import Hops
from bus.observability.logsink import LogSink
from bus.recovery.dead_letter_recorder import DeadLetterRecorder
from bus.routes import RoutesConfig, RoutingTable, Target, load_routes
from bus.routes.agencies import AgencyRegistry
from bus.routes.checks import KindOptions
from bus.routes.lifecycle import Lifecycle
from bus.routing.identity import Identities
from bus.routing.pipeline import RouterPipeline
from bus.routing.router import Router
from bus.settings import PROJECT_ROOT, Settings
from bus.store import Store

log = structlog.get_logger("bus.app")


@dataclass(frozen=True)
class Loaded:
    """Everything a bus process reads from disk at start."""

    settings: Settings
    schemas: SchemaRegistry
    units: AdminUnits
    routes: RoutesConfig
    table: RoutingTable
    names: Names
    topology: Topology
    checked_adapter_options: bool = False  # a reload checks the new file the same way
    senders: SendersConfig | None = None  # senders.yaml, when there is one
    lifecycle: Lifecycle | None = None  # statuses.yaml: which dossier status may follow which


def load(settings: Settings, *, check_adapter_options: bool = False) -> Loaded:
    """Load and check schemas, unit table and routes; raises on the first broken one.

    ``check_adapter_options``: also read every target's ``options`` with its kind's model,
    as ``dvcbus routes check`` does, so a process that builds adapters refuses a misspelt
    option or a missing WSDL at start (exit 2) and on reload (keeps its routes). The router
    builds no adapter and leaves it off: it would import every kind for nothing.
    """
    schemas = SchemaRegistry.load(settings.schemas_dir)
    units = AdminUnits.load()
    routes = load_routes(
        settings.routes_file,
        known_types={t for t, _ in schemas.message_types},
        known_adapters=adapter_registry.kind_names(),
        units=units,
        options_of=kind_options if check_adapter_options else None,
    )
    names = Names(settings.namespace)
    topology = topology_for(routes, settings)
    agencies = AgencyRegistry.load(settings.agencies_path, set(units.current_provinces()))
    table = RoutingTable(routes, units, agencies=agencies)
    senders = load_registry(settings, {t for t, _ in schemas.message_types})
    lifecycle = Lifecycle.load(settings.statuses_path)
    return Loaded(
        settings,
        schemas,
        units,
        routes,
        table,
        names,
        topology,
        check_adapter_options,
        senders,
        lifecycle,
    )


def load_registry(settings: Settings, known_types: set[str]) -> SendersConfig | None:
    """senders.yaml (raises :class:`SendersError` when broken), or None when there is none:
    a bus without one routes nothing under ``ingress_identity = "require"``."""
    path = settings.senders_path
    if not path.exists():
        return None
    return load_senders(path, known_types=known_types)


def identities(loaded: Loaded) -> Identities | None:
    """What the router checks every ingress message's identity with; None when
    ``ingress_identity = "off"``."""
    s = loaded.settings
    if s.ingress_identity == "off":
        return None
    if loaded.senders is None:
        log.error(
            "router.no_senders",
            file=str(s.senders_path),
            detail='ingress_identity = "require" and no senders.yaml: every message is '
            "refused unauthorised",
        )
    operator = bus_user_name(loaded.names, "cli")
    return Identities(loaded.senders, s.gateway_user, operator)


def kind_options(kind: str) -> KindOptions | None:
    """The options an installed adapter kind accepts, read from its class (nothing is built).

    None for a kind that is not installed (the loader reports it as unknown) or cannot be
    imported (`dvcbus adapters list` says why): its options cannot be checked.
    """
    try:
        adapter_class = adapter_registry.load(kind)
    except (AdapterNotFound, ImportError, AttributeError):
        return None
    return KindOptions.of(adapter_class)


def topology_for(routes: RoutesConfig, settings: Settings) -> Topology:
    """The broker topology routes.yaml asks for: a queue per target, a delay tier per wait."""
    return plan(
        Names(settings.namespace),
        {name: target.delivery_limit for name, target in routes.targets.items()},
        settings.ingress_delivery_limit,
        tiers(t.retry.schedule for t in routes.targets.values()),
    )


def build_hops(loaded: Loaded) -> Hops:
    """The observers every bus process reports its hops to."""
    return Hops([LogSink()])


def stamp_key(settings: Settings) -> StampKey:
    """The key of the router's stamp, shared by every bus process (settings.stamp_key)."""
    return load_stamp_key(settings.stamp_key, PROJECT_ROOT)


def build_router(loaded: Loaded, hops: Hops, store: Store | None = None) -> Router:
    """The router; with ``store``, a status update is checked against the receiving agency
    the bus recorded for its dossier (``bus.routing.reporting``)."""
    s = loaded.settings
    lookup = store.dossier_agency if store is not None else None
    pipeline = RouterPipeline(loaded.schemas, loaded.table, s.max_message_bytes, lookup)
    pipeline.payments.report_unreadable_secrets()
    return Router(
        pipeline,
        loaded.names,
        loaded.topology,
        hops=hops,
        stamp_key=stamp_key(s),
        amqp_url=s.amqp_url,
        identities=identities(loaded),
        prefetch=s.router_prefetch,
        reconnect_delay_max=s.reconnect_delay_max,
        shutdown_grace=s.shutdown_grace,
    )


def open_store(loaded: Loaded) -> Store:
    """The store of this bus (settings.store_url), migrated to the current schema."""
    return store_module.open_store(loaded.settings.store_url)


def build_lane(name: str, target: Target) -> TargetLane:
    """A target's lane: its adapter, limits, retry plan and circuit breaker."""
    spec = target.spec()
    adapter = adapter_registry.build(spec)
    return TargetLane(
        name=name,
        adapter=adapter,
        concurrency=spec.concurrency,
        deadline=adapter_deadline(spec),
        retry=RetryPlan(target.retry.schedule, target.retry.max_attempts, target.retry.max_age),
        breaker=CircuitBreaker(target.circuit.failures, target.circuit.cooldown),
        bucket=TokenBucket(target.rate_limit) if target.rate_limit else None,
        config=target,
        keeps_history=target.statuses == "history",
        forward_invalid=target.on_invalid_transition == "forward",
    )


def forwarding_routes(routes: RoutesConfig) -> frozenset[str]:
    """Routes whose copies forward a status the lifecycle refuses (flagged) instead of
    dead-lettering it: ``on_invalid_transition: forward``."""
    return frozenset(r.name for r in routes.routes if r.on_invalid_transition == "forward")


def build_dispatcher(
    loaded: Loaded, hops: Hops, store: Store, only: Iterable[str] | None = None
) -> Dispatcher:
    """A dispatcher for every target (or the ``only`` ones) whose adapter can be built.

    A target whose adapter cannot be built (a :class:`ConfigError`: unknown kind, options or
    a WSDL the adapter refuses, missing credential) is left out with an error: its messages
    wait in its queue while the other targets are served.
    """
    wanted = set(only) if only else set(loaded.routes.targets)
    lanes: dict[str, TargetLane] = {}
    for name in sorted(wanted):
        target = loaded.routes.targets.get(name)
        if target is None:
            raise KeyError(f"no target {name!r} in {loaded.settings.routes_file}")
        try:
            lanes[name] = build_lane(name, target)
        except ConfigError as exc:
            log.error("dispatcher.target_disabled", target=name, error=str(exc))
    store.before_commit = hops.sync  # a delivery's hop is journaled before its record commits
    s = loaded.settings
    return Dispatcher(
        lanes,
        loaded.names,
        loaded.topology,
        hops=hops,
        store=store,
        stamp_key=stamp_key(s),
        amqp_url=s.amqp_url,
        reconnect_delay_max=s.reconnect_delay_max,
        shutdown_grace=s.shutdown_grace,
        lifecycle=loaded.lifecycle,
        forwarding_routes=forwarding_routes(loaded.routes),
    )


def build_audit(loaded: Loaded, store: Store) -> AuditSink:
    """The audit trail writer of this process (a hop sink that is also a component).

    It masks with the log masker, which knows the schemas' x-pii marks and the credential
    values this process resolved (``bus.observability.process.protect_logs``).

    Every record is also kept in this process's hop journal until the store has it, and the
    journals of processes that are gone are drained into the chain
    (``bus.observability.journal``). The writer child inherits the journal's lock, so a
    journal is recovered only once the batch that child may still be committing is done.
    """
    from bus.observability.audit_writer import AuditWriterProcess
    from bus.observability.journal import HopJournal
    from bus.observability.masking import LOG_MASKER

    settings = loaded.settings
    journal = HopJournal(settings.journal_dir())
    writer: Any = store
    if settings.audit_writer == "process":
        writer = AuditWriterProcess(settings.store_url, pass_fds=(journal.lock_fd,))
    return AuditSink(
        writer,
        interval=settings.audit_flush_interval,
        mask=LOG_MASKER.text,
        journal=journal,
        kept=store.audit_keys,
    )


def build_recorder(loaded: Loaded, store: Store) -> DeadLetterRecorder:
    s = loaded.settings
    return DeadLetterRecorder(
        loaded.names,
        loaded.topology,
        store,
        amqp_url=s.amqp_url,
        reconnect_delay_max=s.reconnect_delay_max,
    )


class Component(Protocol):
    async def run(self) -> None: ...
    async def stop(self) -> None: ...


async def run_until_signalled(components: list[Component]) -> None:
    """Run components until SIGTERM/SIGINT, then stop them gracefully (in-flight work ends)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.ensure_future(c.run()) for c in components]
    waiter = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({waiter, *tasks}, return_when=asyncio.FIRST_COMPLETED)
    log.info("bus.stopping", signalled=waiter in done)
    for component in components:
        await component.stop()
    for task in tasks:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    waiter.cancel()
