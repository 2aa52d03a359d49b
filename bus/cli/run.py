"""``dvcbus run``: the router and the dispatcher as long-running processes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bus.cli.common import Ctx, err_console, load_or_exit, routes_option

if TYPE_CHECKING:
    from bus.app import Loaded


@click.command()
@click.argument("component", type=click.Choice(["router", "dispatcher", "all", "gateway"]))
@click.option("--targets", help="Dispatcher only: comma-separated targets to serve (default all).")
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    help="Port of /metrics, /livez and /readyz (0 = none); default from the settings. "
    "The gateway serves them beside /v1/messages, on this port (default gateway_port).",
)
@routes_option
@click.pass_obj
def run(
    obj: Ctx, component: str, targets: str | None, http_port: int | None, routes_file: Path | None
) -> None:
    """Run the router, the dispatcher, both in one process, or the HTTP gateway, until
    SIGTERM or Ctrl-C.

    The dispatcher also moves dead letters from the broker into the store; every process
    writes its hops to the audit trail. The gateway (senders.yaml, docs/ingress.md) takes
    messages over HTTP from authenticated senders.
    """
    from bus import app
    from bus.observability import log
    from bus.observability import process as observability
    from bus.routes.reload import RoutesReloader

    if component == "gateway":
        _run_gateway(obj, http_port, routes_file)
        return
    settings = obj.settings(routes_file=routes_file)
    log.configure(settings.log_level, settings.log_format, process=component)
    builds_adapters = component in ("dispatcher", "all")
    loaded = load_or_exit(settings, check_adapter_options=builds_adapters)
    _refuse_unsafe_broker(loaded)
    hops = app.build_hops(loaded)
    watch = observability.build(loaded, component, http_port)
    hops.add(watch.sink)
    store = app.open_store(loaded)
    audit = app.build_audit(loaded, store)
    hops.add(audit)
    watch.watch_audit(audit)
    components: list[app.Component] = []
    # A reload: new targets become metric labels first, then router and dispatcher take the
    # routes, then the process says which routes it runs (routes info, /readyz, log masking).
    appliers: list = [watch.learn_routes]
    if component in ("router", "all"):
        router = app.build_router(loaded, hops, store)
        components.append(router)
        watch.watch_router(router)
        appliers.append(lambda new: router.apply(new.table, new.topology, app.identities(new)))
    if component in ("dispatcher", "all"):
        only = [t.strip() for t in targets.split(",")] if targets else None
        dispatcher = app.build_dispatcher(loaded, hops, store, only)
        components.append(dispatcher)
        watch.watch_dispatcher(dispatcher)
        watch.metrics.add_age_floor(dispatcher.waiting_ages)
        serves = set(only) if only else None
        appliers.append(
            lambda new: dispatcher.apply(
                new.routes.targets,
                new.topology,
                app.build_lane,
                serves,
                new.lifecycle,
                app.forwarding_routes(new.routes),
            )
        )
        components.append(app.build_recorder(loaded, store))
        watch.watch_component("recorder", components[-1])
    appliers.append(watch.apply_routes)
    components.append(RoutesReloader(loaded, appliers))
    components.extend(watch.components)
    components.append(audit)  # stopped last: it writes the hops of everything stopping before it
    _serve(component, components, store)


def _run_gateway(obj: Ctx, http_port: int | None, routes_file: Path | None) -> None:
    from bus.ingress import process
    from bus.observability import log

    settings = obj.settings(routes_file=routes_file, gateway_port=http_port)
    log.configure(settings.log_level, settings.log_format, process="gateway")
    loaded = load_or_exit(settings)
    components, gateway = process.build(loaded)
    _serve("gateway", components, gateway.store)


def _serve(name: str, components: list[Any], store: Any) -> None:
    """Run ``components`` until a signal, then close the store; a broker that refuses the
    process's setup (access, unsafe topology) is exit 2 with one line."""
    from bus import app
    from bus.broker.connection import FatalSetupError

    async def serve() -> None:
        try:
            await app.run_until_signalled(components)
        finally:
            await store.aclose()

    try:
        asyncio.run(serve())
    except FatalSetupError as exc:
        err_console.print(f"dvcbus {name}: cannot start: {exc}", markup=False)
        raise SystemExit(2) from None


def _refuse_unsafe_broker(loaded: Loaded) -> None:
    """Exit 2 if the broker's policies could drop messages from the bus's queues."""
    import pika
    import structlog

    from bus.broker import topology_check

    url = loaded.settings.management_url
    if not url:
        return
    from bus.broker.nodes import first_url

    vhost = pika.URLParameters(first_url(loaded.settings.amqp_url)).virtual_host
    try:
        user, operator = topology_check.fetch_policies(url, vhost)
    except topology_check.PolicyCheckUnavailable as exc:
        if loaded.settings.policy_check_unavailable == "warn":
            structlog.get_logger("bus.topology").warning(
                "topology.policies_not_checked", error=str(exc)
            )
            return
        err_console.print(
            f"cannot check the broker's policies: {exc}\nrefusing to start: a policy that "
            "drops messages could be in force unseen (enable the management plugin, fix "
            'management_url, or set policy_check_unavailable = "warn")',
            markup=False,
            soft_wrap=True,
        )
        raise SystemExit(2) from None
    problems = topology_check.check(loaded.topology, user, operator)
    for problem in problems:
        err_console.print(f"unsafe broker: {problem}", markup=False, soft_wrap=True)
    if problems:
        err_console.print("refusing to start: fix or remove these policies first", markup=False)
        raise SystemExit(2)
    from bus.cli.broker import check_at_start

    check_at_start(loaded)  # who else may write the internal exchanges


COMMANDS = [run]
