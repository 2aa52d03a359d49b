"""What every ``dvcbus`` command shares: settings from --config/env, consoles, loading."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from bus.settings import Settings, SettingsError

if TYPE_CHECKING:
    from bus.app import Loaded
    from bus.store import Store

# Piped output (CI logs, files) is read on wide screens: 120 columns rather than rich's 80,
# unless COLUMNS says otherwise.
_PIPED = None if "COLUMNS" in os.environ else 120
console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else _PIPED)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else _PIPED)

routes_option = click.option(
    "--routes",
    "routes_file",
    # a path typed on the command line is from the shell's directory, not the project root
    type=click.Path(path_type=Path, resolve_path=True),
    help="routes.yaml to use.",
)


class Ctx:
    """The command line's context object: where settings come from."""

    def __init__(self, config: Path | None) -> None:
        self.config = config

    def settings(self, **overrides: object) -> Settings:
        try:
            return Settings.load(self.config, **overrides)
        except SettingsError as exc:
            raise click.ClickException(f"settings: {exc}") from None


def load_with_store(ctx: Ctx) -> tuple[Loaded, Store]:
    """Settings, routes and the store, for the commands that read or change the store."""
    from bus import app

    loaded = load_or_exit(ctx.settings())
    return loaded, app.open_store(loaded)


def load_or_exit(settings: Settings) -> Loaded:
    """Load schemas, units and routes; a broken routes.yaml prints its problems and exits 2."""
    from bus import app
    from bus.routes import RoutesError

    try:
        return app.load(settings)
    except RoutesError as exc:
        for problem in exc.problems:
            err_console.print(str(problem), markup=False, soft_wrap=True)
        raise SystemExit(2) from None
