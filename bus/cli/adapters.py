"""``dvcbus adapters``: installed kinds, a skeleton for a new one, the conformance kit."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from bus.cli.common import Ctx, console, err_console, load_or_exit, routes_option


@click.group()
def adapters() -> None:
    """Adapter kinds: list them, start a new one, test a target's before go-live."""


@adapters.command("list")
def list_() -> None:
    """Show the built-in and installed adapter kinds with their versions."""
    from bus.delivery import adapter_registry

    table = Table(title="Adapter kinds (entry-point group dvcbus.adapters)")
    for column in ("kind", "origin", "package", "version", "class"):
        table.add_column(column)
    for kind in adapter_registry.available():
        origin = "built-in" if kind.distribution == "dvc-bus" else "plug-in"
        table.add_row(kind.name, origin, kind.distribution, kind.version, kind.target)
    console.print(table)


@adapters.command()
@click.argument("name")
@click.option(
    "--directory",
    "-d",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create the package directory.",
)
def new(name: str, directory: Path) -> None:
    """Write a working skeleton package for adapter kind NAME (class, config, one test)."""
    from bus.kit.skeleton import SkeletonError, write_skeleton

    try:
        created = write_skeleton(name, directory)
    except SkeletonError as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"created [bold]{created}[/]")
    console.print(
        "next:\n"
        f"  pip install -e {created}            # registers kind {name!r}\n"
        f"  pytest {created}/tests               # its own test\n"
        f"  dvcbus adapters list                 # shows it\n"
        f"  # name it in routes.yaml (adapter: {name}), then:\n"
        f"  dvcbus adapters test <target>        # the conformance kit",
        markup=False,
    )


@adapters.command()
@click.argument("target")
@routes_option
@click.option(
    "--timeout",
    "timeout_check",
    type=float,
    default=1.0,
    show_default=True,
    help="Read timeout used for the checks (the target's own, if shorter).",
)
@click.option(
    "--against",
    metavar="URL",
    default=None,
    help="Run only the safe, read-only checks against this URL (the agency's staging "
    "endpoint) instead of a stand-in: TLS, authentication, timeouts, refusal of an invalid "
    "example. No valid message is sent.",
)
@click.pass_obj
def test(
    obj: Ctx, target: str, routes_file: Path | None, timeout_check: float, against: str | None
) -> None:
    """Run TARGET's adapter against a stand-in of its endpoint: the conformance kit."""
    from bus.kit.conformance import Report, run_conformance
    from bus.kit.staging import run_against

    settings = obj.settings(routes_file=routes_file)
    loaded = load_or_exit(settings)
    report: Report
    try:
        if against is not None:
            report = run_against(loaded.routes, target, against, schemas=loaded.schemas)
        else:
            report = run_conformance(
                loaded.routes, target, schemas=loaded.schemas, timeout_check=timeout_check
            )
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    where = f" against {against}" if against is not None else ""
    table = Table(title=f"Conformance of target {report.target} (adapter {report.kind}){where}")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        result = "[green]PASS[/]" if check.passed else "[red]FAIL[/]"
        table.add_row(check.name, result, check.detail)
    console.print(table)
    for name, why in getattr(report, "skipped", []):
        console.print(f"skipped: {name}: {why}", markup=False)
    failed = report.failed()
    if failed:
        err_console.print(f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}")
        raise SystemExit(1)
    console.print(f"all {len(report.checks)} checks passed")


COMMANDS = [adapters]
