"""``dvcbus run``: the router and the dispatcher as long-running processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from bus.cli.common import Ctx, err_console, load_or_exit, routes_option


@click.command()
@click.argument("component", type=click.Choice(["router", "dispatcher", "all"]))
@click.option("--targets", help="Dispatcher only: comma-separated targets to serve (default all).")
@routes_option
@click.pass_obj
def run(obj: Ctx, component: str, targets: str | None, routes_file: Path | None) -> None:
    """Run the router, the dispatcher, or both in one process, until SIGTERM or Ctrl-C."""
    from bus import app, log

    settings = obj.settings(routes_file=routes_file)
    log.configure(settings.log_level, settings.log_format, process=component)
    loaded = load_or_exit(settings)
    hops = app.build_hops(loaded)
    components: list[app.Component] = []
    if component in ("router", "all"):
        components.append(app.build_router(loaded, hops))
    if component in ("dispatcher", "all"):
        only = [t.strip() for t in targets.split(",")] if targets else None
        components.append(app.build_dispatcher(loaded, hops, only))
    from bus.amqp import FatalSetupError

    try:
        asyncio.run(app.run_until_signalled(components))
    except FatalSetupError as exc:
        err_console.print(f"dvcbus {component}: cannot start: {exc}", markup=False)
        raise SystemExit(2) from None


COMMANDS = [run]
