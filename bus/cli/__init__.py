"""The ``dvcbus`` command. Each command group lives in its own module of this package."""

from __future__ import annotations

from pathlib import Path

import click

from bus.cli.common import BusGroup, Ctx


@click.group(cls=BusGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML settings file (see config/default.toml); DVCBUS_* env vars override it.",
)
@click.version_option(package_name="dvc-bus")
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """dvc-bus: validate, route and deliver portal messages over RabbitMQ."""
    ctx.obj = Ctx(config)


def _register() -> None:
    from bus.cli import (
        adapters,
        audit,
        broker,
        dead,
        demo,
        payments,
        routes,
        run,
        send,
        targets,
    )

    for module in (run, routes, send, dead, targets, audit, adapters, demo, broker, payments):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
