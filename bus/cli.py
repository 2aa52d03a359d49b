"""The ``dvcbus`` command: run the bus, check and explain routes, send messages, run the demo."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
import orjson
from rich.console import Console

from bus.settings import Settings, SettingsError

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


class Ctx:
    def __init__(self, config: Path | None) -> None:
        self.config = config

    def settings(self, **overrides: object) -> Settings:
        try:
            return Settings.load(self.config, **overrides)
        except SettingsError as exc:
            raise click.ClickException(f"settings: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


# --- run ---------------------------------------------------------------------------------


@main.command()
@click.argument("component", type=click.Choice(["router", "dispatcher", "all"]))
@click.option("--targets", help="Dispatcher only: comma-separated targets to serve (default all).")
@click.option(
    "--routes", "routes_file", type=click.Path(path_type=Path), help="routes.yaml to use."
)
@click.pass_obj
def run(obj: Ctx, component: str, targets: str | None, routes_file: Path | None) -> None:
    """Run the router, the dispatcher, or both in one process, until SIGTERM or Ctrl-C."""
    from bus import app, log

    settings = obj.settings(routes_file=routes_file)
    log.configure(settings.log_level, settings.log_format, process=component)
    loaded = _load_or_exit(settings)
    components: list[app.Component] = []
    if component in ("router", "all"):
        components.append(app.build_router(loaded))
    if component in ("dispatcher", "all"):
        only = [t.strip() for t in targets.split(",")] if targets else None
        components.append(app.build_dispatcher(loaded, only))
    from bus.amqp import FatalSetupError

    try:
        asyncio.run(app.run_until_signalled(components))
    except FatalSetupError as exc:
        err_console.print(f"dvcbus {component}: cannot start: {exc}", markup=False)
        raise SystemExit(2) from None


def _load_or_exit(settings: Settings) -> object:
    from bus import app
    from bus.routes import RoutesError

    try:
        return app.load(settings)
    except RoutesError as exc:
        for problem in exc.problems:
            err_console.print(str(problem), markup=False)
        raise SystemExit(2) from None


# --- routes ------------------------------------------------------------------------------


@main.group()
def routes() -> None:
    """Check and explain routes.yaml before it is applied."""


@routes.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.pass_obj
def routes_check(obj: Ctx, file: Path | None) -> None:
    """Check FILE (default: the configured routes.yaml); exit 1 and list every problem if broken."""
    from bus import adapter_registry
    from bus.admin_units import AdminUnits
    from bus.routes import check_routes
    from bus.schemas import SchemaRegistry

    settings = obj.settings()
    path = file or settings.routes_file
    schemas = SchemaRegistry.load(settings.schemas_dir)
    problems = check_routes(
        path,
        known_types={t for t, _ in schemas.message_types},
        known_adapters=adapter_registry.kind_names(),
        units=AdminUnits.load(),
    )
    for problem in problems:
        style = "red" if problem.severity == "error" else "yellow"
        console.print(f"[{style}]{problem}[/]", markup=True, highlight=False, soft_wrap=True)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if errors:
        console.print(f"{path}: {errors} error(s), {warnings} warning(s)")
        raise SystemExit(1)
    console.print(f"{path}: OK ({warnings} warning(s))")


@routes.command("explain")
@click.argument("message", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--routes", "routes_file", type=click.Path(path_type=Path), help="routes.yaml to use."
)
@click.pass_obj
def routes_explain(obj: Ctx, message: Path, routes_file: Path | None) -> None:
    """Show which route MESSAGE (a JSON file) would take, and why."""
    from bus import app
    from bus.envelope import parse
    from bus.rejections import Rejection

    settings = obj.settings(routes_file=routes_file)
    loaded = _load_or_exit(settings)
    body = message.read_bytes()
    try:
        doc = parse(body, settings.max_message_bytes)
        type_, version = loaded.schemas.validate(doc)
    except Rejection as rej:
        console.print(f"{message}: dead letter, reason [bold]{rej.reason.value}[/]: {rej.detail}")
        raise SystemExit(1) from None
    assert isinstance(loaded, app.Loaded)
    attrs = loaded.schemas.route_attributes(doc)
    explanation = loaded.table.explain(type_, doc["source"], attrs)
    click.echo(f"{message}: {type_} v{version}, id {doc['id']}")
    click.echo(str(explanation))


# --- send --------------------------------------------------------------------------------


@main.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.pass_obj
def send(obj: Ctx, files: tuple[Path, ...]) -> None:
    """Publish message files to the bus's ingress, with confirms; print each message id.

    A file holds one JSON message, or a JSON array of messages.
    """
    from bus.sending import send_bodies
    from bus.topology import Names

    settings = obj.settings()
    bodies: list[bytes] = []
    for path in files:
        raw = path.read_bytes()
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, list):
            bodies.extend(orjson.dumps(item) for item in doc)
        else:
            bodies.append(raw)  # sent as is: the router judges malformed input, not the sender
    results = asyncio.run(send_bodies(settings.amqp_url, Names(settings.namespace), bodies))
    failed = 0
    for result in results:
        if result.ok:
            console.print(f"sent {result.message_id}", markup=False)
        else:
            failed += 1
            err_console.print(f"NOT sent {result.message_id}: {result.explain()}", markup=False)
    if failed:
        raise SystemExit(1)


# --- stand-ins and demo ------------------------------------------------------------------


@main.command()
@click.option(
    "--routes", "routes_file", type=click.Path(path_type=Path), help="routes.yaml to use."
)
@click.pass_obj
def standin(obj: Ctx, routes_file: Path | None) -> None:
    """Run stand-in agency servers for every loopback HTTP target of routes.yaml."""
    from bus.demo.agencies import serve_forever

    settings = obj.settings(routes_file=routes_file)
    asyncio.run(serve_forever(settings.routes_file))


@main.command()
@click.option("--messages", default=5000, show_default=True, help="How many messages to publish.")
@click.option("--seed", default=20251125, show_default=True, help="Traffic generator seed.")
@click.option(
    "--rate", type=float, help="Publish at this many messages/s (default: as fast as confirmed)."
)
@click.option("--keep", is_flag=True, help="Keep the demo's queues afterwards for inspection.")
@click.pass_obj
def demo(obj: Ctx, messages: int, seed: int, rate: float | None, keep: bool) -> None:
    """Start stand-in agencies, the router and the dispatcher; route realistic traffic; report."""
    from bus.demo.run import run_demo

    settings = obj.settings()
    code = run_demo(settings, messages=messages, seed=seed, rate=rate, keep=keep, console=console)
    sys.exit(code)


if __name__ == "__main__":
    main()
