"""What every ``dvcbus`` command shares: settings from --config/env, consoles, loading, and
how a configuration problem ends a command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.text import Text

from bus.errors import ConfigError
from bus.observability.masking import printable
from bus.settings import Settings

if TYPE_CHECKING:
    from bus.app import Loaded
    from bus.store import Store

# Piped output (CI logs, files) is read on wide screens: 120 columns rather than rich's 80,
# unless COLUMNS says otherwise.
_PIPED = None if "COLUMNS" in os.environ else 120
console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else _PIPED)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else _PIPED)


def cell(text: str) -> Text:
    """A data value for a rich table: control characters escaped, brackets not markup."""
    return Text(printable(text))


def shown_identity_of(
    stage: str, reason: str | None, ids: tuple[str | None, str | None, str | None]
) -> tuple[str | None, str | None, str | None]:
    """Message id, type and dossier number as the logs show them (a refusal's are masked)."""
    from bus.contract.rejections import shown_identity
    from bus.observability.masking import LOG_MASKER

    return shown_identity(stage, reason, *ids, LOG_MASKER.text)


routes_option = click.option(
    "--routes",
    "routes_file",
    # a path typed on the command line is from the shell's directory, not the project root
    type=click.Path(path_type=Path, resolve_path=True),
    help="routes.yaml to use.",
)


class ConfigProblem(click.ClickException):
    """A :class:`ConfigError` as the command line reports it: one line, exit code 2."""

    exit_code = 2

    def __init__(self, error: ConfigError) -> None:
        # One line whatever the message holds: the file (and line) first, as raised.
        super().__init__(" ".join(str(error).split()))


class BusGroup(click.Group):
    """The ``dvcbus`` group: a configuration problem in any command ends it the same way.

    A broken settings file, schema, routes file or adapter configuration is something the
    operator fixes, not a crash: ``Error: <file>[:line]: <what>`` on stderr and exit code 2,
    never a traceback. Commands load their configuration before connecting to the broker,
    so this happens before anything is sent.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise ConfigProblem(exc) from None


class Ctx:
    """The command line's context object: where settings come from."""

    def __init__(self, config: Path | None) -> None:
        self.config = config

    def settings(self, **overrides: object) -> Settings:
        return Settings.load(self.config, **overrides)


def load_with_store(ctx: Ctx) -> tuple[Loaded, Store]:
    """Settings, routes and the store, for the commands that read or change the store."""
    from bus import app

    loaded = load_or_exit(ctx.settings())
    return loaded, app.open_store(loaded)


def load_or_exit(settings: Settings, *, check_adapter_options: bool = False) -> Loaded:
    """Load schemas, units and routes; a broken one ends the command (see :class:`BusGroup`)."""
    from bus import app

    return app.load(settings, check_adapter_options=check_adapter_options)
