"""``dvcbus demo`` and ``dvcbus standin``: the bus on this machine with stand-in agencies."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from bus.cli.common import Ctx, console, routes_option


@click.command()
@routes_option
@click.pass_obj
def standin(obj: Ctx, routes_file: Path | None) -> None:
    """Run stand-in agency servers for every loopback HTTP target of routes.yaml."""
    from bus.demo.agencies import serve_forever
    from bus.observability import log

    settings = obj.settings(routes_file=routes_file)
    log.configure(settings.log_level, settings.log_format, process="standin")
    asyncio.run(serve_forever(settings.routes_file))


@click.command()
@click.option("--messages", default=5000, show_default=True, help="How many messages to publish.")
@click.option("--seed", default=20251125, show_default=True, help="Traffic generator seed.")
@click.option(
    "--rate", type=float, help="Publish at this many messages/s (default: as fast as confirmed)."
)
@click.option(
    "--gateways",
    default=2,
    show_default=True,
    type=click.IntRange(1, 8),
    help="How many gateway processes the senders take in turn.",
)
@click.option("--keep", is_flag=True, help="Keep the demo's queues afterwards for inspection.")
@click.pass_obj
def demo(obj: Ctx, messages: int, seed: int, rate: float | None, gateways: int, keep: bool) -> None:
    """Start stand-in agencies, the router and the dispatcher; route realistic traffic; report."""
    from bus.demo.run import run_demo

    settings = obj.settings()
    code = run_demo(
        settings,
        messages=messages,
        seed=seed,
        rate=rate,
        keep=keep,
        console=console,
        gateways=gateways,
    )
    sys.exit(code)


COMMANDS = [standin, demo]
