"""``dvcbus trace`` and ``dvcbus audit``: a dossier's journey, and the trail's integrity."""

from __future__ import annotations

import time

import click

from bus.cli.common import Ctx, console, err_console, load_with_store
from bus.trace import journey_table


@click.command()
@click.argument("what")
@click.pass_obj
def trace(obj: Ctx, what: str) -> None:
    """The journey of a dossier (by dossier number) or of a message's dossier (by message id)."""
    _, store = load_with_store(obj)
    try:
        records = store.audit_records(dossier_no=what, message_ids=[what])
        dossiers = {r.dossier_no for r in records if r.dossier_no}
        if dossiers and what not in dossiers:  # a message id: show its whole dossier
            records = store.audit_records(dossier_no=sorted(dossiers)[0], message_ids=[what])
    finally:
        store.close()
    if not records:
        err_console.print(f"nothing in the audit trail for {what}")
        raise SystemExit(1)
    console.print(journey_table(records))


@click.group()
def audit() -> None:
    """Check the audit trail's hash chain; purge records past retention."""


@audit.command("verify")
@click.pass_obj
def audit_verify(obj: Ctx) -> None:
    """Walk the hash chain; exit 1 at the first altered, missing or reordered record."""
    from bus.audit import verify

    _, store = load_with_store(obj)
    try:
        anchor = store.audit_anchor()
        head = store.audit_head()
        started = time.perf_counter()
        broken = verify(store.audit_records(after_seq=anchor[0]), *anchor, head)
    finally:
        store.close()
    took = time.perf_counter() - started
    if broken is not None:
        err_console.print(f"audit trail BROKEN at record {broken.seq}: {broken.why}")
        raise SystemExit(1)
    click.echo(f"audit trail OK: records {anchor[0] + 1}..{head[0]} verified in {took:.2f}s")


@audit.command("purge")
@click.option("--older-than", "months", type=int, help="Months to keep (default: the setting).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def audit_purge(obj: Ctx, months: int | None, yes: bool) -> None:
    """Delete records past retention from the start of the chain, leaving a verifiable anchor."""
    from bus.replay import actor

    loaded, store = load_with_store(obj)
    try:
        months = months or loaded.settings.audit_retention_months
        before = time.time() - months * 30.44 * 86400
        if not yes:
            click.confirm(f"delete audit records older than {months} months?", abort=True)
        purged = store.purge_audit(before, actor())
    finally:
        store.close()
    click.echo(f"{purged} record(s) purged; the rest still verifies (dvcbus audit verify)")


COMMANDS = [trace, audit]
