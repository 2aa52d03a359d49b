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
from typing import Protocol

import structlog

from bus import adapter_registry
from bus.admin_units import AdminUnits
from bus.dispatcher import Dispatcher, TargetLane
from bus.hops import Hops
from bus.observability.logsink import LogSink
from bus.pipeline import RouterPipeline
from bus.router import Router
from bus.routes import RoutesConfig, RoutingTable, load_routes
from bus.schemas import SchemaRegistry
from bus.settings import Settings
from bus.topology import Names, Topology, plan

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


def load(settings: Settings) -> Loaded:
    """Load and check schemas, unit table and routes; raises on the first broken one."""
    schemas = SchemaRegistry.load(settings.schemas_dir)
    units = AdminUnits.load()
    routes = load_routes(
        settings.routes_file,
        known_types={t for t, _ in schemas.message_types},
        known_adapters=adapter_registry.kind_names(),
        units=units,
    )
    names = Names(settings.namespace)
    topology = plan(
        names,
        {name: target.delivery_limit for name, target in routes.targets.items()},
        settings.ingress_delivery_limit,
    )
    return Loaded(settings, schemas, units, routes, RoutingTable(routes, units), names, topology)


def build_hops(loaded: Loaded) -> Hops:
    """The observers every bus process reports its hops to."""
    return Hops([LogSink()])


def build_router(loaded: Loaded, hops: Hops) -> Router:
    s = loaded.settings
    pipeline = RouterPipeline(loaded.schemas, loaded.table, s.max_message_bytes)
    return Router(
        pipeline,
        loaded.names,
        loaded.topology,
        hops=hops,
        amqp_url=s.amqp_url,
        prefetch=s.router_prefetch,
        reconnect_delay_max=s.reconnect_delay_max,
        shutdown_grace=s.shutdown_grace,
    )


def build_dispatcher(loaded: Loaded, hops: Hops, only: Iterable[str] | None = None) -> Dispatcher:
    """A dispatcher for every target (or the ``only`` ones) whose adapter can be built.

    A target whose adapter cannot be built (unknown kind, missing credential) is left out
    with an error: its messages wait in its queue while the other targets are served.
    """
    wanted = set(only) if only else set(loaded.routes.targets)
    lanes: dict[str, TargetLane] = {}
    for name in sorted(wanted):
        target = loaded.routes.targets.get(name)
        if target is None:
            raise KeyError(f"no target {name!r} in {loaded.settings.routes_file}")
        try:
            spec = target.spec()
            adapter = adapter_registry.load(spec.adapter)(spec)
        except Exception as exc:
            log.error("dispatcher.target_disabled", target=name, error=str(exc))
            continue
        lanes[name] = TargetLane(
            name=name,
            adapter=adapter,
            concurrency=spec.concurrency,
            deadline=spec.connect_timeout + spec.read_timeout + 5.0,
        )
    s = loaded.settings
    return Dispatcher(
        lanes,
        loaded.names,
        loaded.topology,
        hops=hops,
        amqp_url=s.amqp_url,
        reconnect_delay_max=s.reconnect_delay_max,
        shutdown_grace=s.shutdown_grace,
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
