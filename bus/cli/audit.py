"""``dvcbus trace`` and ``dvcbus audit``: a dossier's journey, and the trail's integrity."""

from __future__ import annotations

import time

import click

from bus.cli.common import Ctx, console, err_console, load_with_store
from bus.observability.trace import print_journey


@click.command()
@click.argument("what")
@click.pass_obj
def trace(obj: Ctx, what: str) -> None:
    """The journey of a dossier (by dossier number) or of a message's dossier (by message id).

    Times are Vietnam time (UTC+07:00) with the date; personal data and credentials are masked.
    """
    from bus.observability.process import protect_logs

    loaded, store = load_with_store(obj)
    protect_logs(loaded)  # the masker also blanks the credentials this bus resolves
    try:
        records = store.audit_records(dossier_no=what, message_ids=[what])
        dossiers = {r.dossier_no for r in records if r.dossier_no}
        if dossiers and what not in dossiers:  # a message id: show its whole dossier
            records = store.audit_records(dossier_no=sorted(dossiers)[0], message_ids=[what])
    finally:
        store.close()
    if not records:
        err_console.print(f"nothing in the audit trail for {what}", markup=False)
        raise SystemExit(1)
    print_journey(console, records)


@click.group()
def audit() -> None:
    """Check the audit trail's hash chain; purge records past retention."""


@audit.command("verify")
@click.option(
    "--expect",
    metavar="SEQ:HASH",
    help="A head exported earlier (`dvcbus audit head`): record SEQ must still have HASH.",
)
@click.option(
    "--page-size",
    type=click.IntRange(1),
    default=5000,
    show_default=True,
    help="Records read per query (memory is one page, whatever the chain's length).",
)
@click.pass_obj
def audit_verify(obj: Ctx, expect: str | None, page_size: int) -> None:
    """Walk the hash chain; exit 1 at the first altered, missing or reordered record."""
    from bus.observability.audit import verify_store

    expected = _parse_expect(expect) if expect else None
    _, store = load_with_store(obj)
    started = time.perf_counter()
    try:
        broken, anchor, head = verify_store(store, page_size=page_size, expect=expected)
    finally:
        store.close()
    took = time.perf_counter() - started
    if broken is not None:
        err_console.print(f"audit trail BROKEN at record {broken.seq}: {broken.why}")
        raise SystemExit(1)
    start = f" (after the purge anchor at {anchor[0]})" if anchor[0] else ""
    checked = f"; record {expected[0]} has the expected hash" if expected else ""
    click.echo(
        f"audit trail OK: records {anchor[0] + 1}..{head[0]} verified in {took:.2f}s"
        f"{start}{checked}"
    )


def _parse_expect(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise click.BadParameter(
            "SEQ:HASH, as `dvcbus audit head` prints it", param_hint="--expect"
        )
    return int(seq), digest.lower()


@audit.command("head")
@click.pass_obj
def audit_head(obj: Ctx) -> None:
    """Print the chain's head as SEQ:HASH, to keep somewhere the bus cannot write.

    Compare later with `dvcbus audit verify --expect SEQ:HASH`: anyone able to write the
    database can rewrite the chain and its head, but not a copy kept elsewhere.
    """
    _, store = load_with_store(obj)
    try:
        seq, digest = store.audit_head()
    finally:
        store.close()
    click.echo(f"{seq}:{digest}")


@audit.command("purge")
@click.option("--older-than", "months", type=int, help="Months to keep (default: the setting).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def audit_purge(obj: Ctx, months: int | None, yes: bool) -> None:
    """Delete records past retention from the start of the chain, leaving a verifiable anchor."""
    from bus.recovery.replay import actor

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
