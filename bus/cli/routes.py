"""``dvcbus routes``: check and explain routes.yaml before it is applied."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from bus.cli.common import Ctx, console, load_or_exit, routes_option
from bus.observability.masking import printable


@click.group()
def routes() -> None:
    """Check and explain routes.yaml before it is applied."""


@routes.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.pass_obj
def routes_check(obj: Ctx, file: Path | None) -> None:
    """Check FILE (default: the configured routes.yaml) and the senders.yaml beside it, if any;
    exit 1 and list every problem if broken."""
    from bus import app
    from bus.contract.admin_units import AdminUnits
    from bus.contract.schemas import SchemaRegistry
    from bus.delivery import adapter_registry
    from bus.ingress.senders import check_beside_routes
    from bus.routes import check_routes
    from bus.routes.lifecycle import check_lifecycle

    settings = obj.settings()
    path = file or settings.routes_file
    schemas = SchemaRegistry.load(settings.schemas_dir)
    known_types = {t for t, _ in schemas.message_types}
    problems = check_routes(
        path,
        known_types=known_types,
        known_adapters=adapter_registry.kind_names(),
        units=AdminUnits.load(),
        options_of=app.kind_options,
    )
    problems += check_beside_routes(path, known_types)  # senders.yaml, when there is one
    problems += _agency_problems(path, obj.settings(routes_file=path).agencies_path)
    problems += check_lifecycle(obj.settings(routes_file=path).statuses_path)
    for problem in problems:
        style = "red" if problem.severity == "error" else "yellow"
        console.print(f"[{style}]{escape(str(problem))}[/]", highlight=False, soft_wrap=True)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if errors:
        console.print(f"{path}: {errors} error(s), {warnings} warning(s)")
        raise SystemExit(1)
    console.print(f"{path}: OK ({warnings} warning(s))")


def _agency_problems(routes_path: Path, registry: Path) -> list[Any]:
    """The problems of the agency registry a bus started with ``routes_path`` would read."""
    from bus.contract.admin_units import AdminUnits
    from bus.routes import RoutesError, load_routes
    from bus.routes.agencies import check_agencies

    try:
        config = load_routes(routes_path)
    except RoutesError:
        config = None  # its own problems are listed already
    targets = set(config.targets) if config is not None else None
    used = config is not None and any(r.match.agency_province for r in config.routes)
    provinces = set(AdminUnits.load().current_provinces())
    return check_agencies(registry, provinces, targets, used)


@routes.command("explain")
@click.argument("message", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--as",
    "as_sender",
    metavar="SENDER",
    help="Sent by this senders.yaml sender (its broker user, or the gateway if it has none): "
    "also show who the router would take it to be from, and whether it may claim it.",
)
@routes_option
@click.pass_obj
def routes_explain(
    obj: Ctx, message: Path, routes_file: Path | None, as_sender: str | None
) -> None:
    """Show which route MESSAGE (a JSON file) would take, and why."""
    from bus import app
    from bus.contract.envelope import STATUS_TYPE, parse
    from bus.contract.rejections import Rejection
    from bus.routes.status_explain import status_lines
    from bus.routing.identity import Identified, authorise, identify_text
    from bus.routing.payment_rules import PAYMENT_TYPE, PaymentRules
    from bus.routing.pipeline import unit_date
    from bus.routing.reporting import ReportingRule

    settings = obj.settings(routes_file=routes_file)
    loaded = load_or_exit(settings)
    body = message.read_bytes()
    try:
        doc = parse(body, settings.max_message_bytes)
        type_, version = loaded.schemas.validate(doc)
    except Rejection as rej:
        console.print(
            f"{escape(str(message))}: dead letter, reason [bold]{rej.reason.value}[/]: "
            f"{escape(printable(rej.detail))}",
            soft_wrap=True,
        )
        raise SystemExit(1) from None
    assert isinstance(loaded, app.Loaded)
    if as_sender is not None:
        from bus.cli.as_sender import identify_as

        if app.identities(loaded) is None:
            click.echo('identity: not checked (ingress_identity = "off": the source decides)')
        else:
            verdict = identify_as(loaded, as_sender)
            click.echo(f"identity: {identify_text(verdict)}")
            try:
                authorise(verdict, type_, doc["source"])
                if type_ == STATUS_TYPE:  # a system reports on its own agency's dossiers
                    reporting = ReportingRule(loaded.table.agencies)
                    assert isinstance(verdict, Identified) and verdict.speaks is not None
                    reporting.check(verdict.sender_id, verdict.speaks, doc["payload"])
                    agency, how = reporting.receiving_agency(
                        doc["payload"]["dossier_no"], doc["payload"]["agency"]
                    )
                    click.echo(
                        f"reporting: {verdict.sender_id} speaks for the dossier's receiving "
                        f"agency {agency} (from {how}; explain reads no store: a dossier "
                        "number without an agency prefix is checked against the agency the "
                        "bus recorded when it delivered it)"
                    )
            except Rejection as rej:
                console.print(
                    f"{escape(str(message))}: dead letter, reason [bold]{rej.reason.value}[/]: "
                    f"{escape(printable(rej.detail))}",
                    soft_wrap=True,
                )
                raise SystemExit(1) from None
    attrs = loaded.schemas.route_attributes(doc)
    explanation = loaded.table.explain(type_, doc["source"], attrs, unit_date(doc, attrs))
    if type_ == PAYMENT_TYPE:
        payments = PaymentRules(loaded.table.config.payments)
        explanation = payments.explain(explanation, doc, version)
    if type_ == STATUS_TYPE and loaded.lifecycle is not None:
        lines = status_lines(loaded.lifecycle, loaded.routes, explanation, doc["payload"])
        explanation = dataclasses.replace(explanation, checks=explanation.checks + lines)
    click.echo(f"{message}: {type_} v{version}, id {doc['id']}")
    click.echo(str(explanation))


COMMANDS = [routes]
