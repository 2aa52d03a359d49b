"""``dvcbus trace`` and ``dvcbus audit``: a dossier's journey, and the trail's integrity."""

from __future__ import annotations

import time
from typing import Any

import click

from bus.cli.common import Ctx, console, err_console, load_with_store, shown_identity_of
from bus.observability.masking import printable
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
@click.option(
    "--completeness/--no-completeness",
    default=True,
    show_default=True,
    help="Also check that every delivery and dead letter in the store has its hop.",
)
@click.option(
    "--settle",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    help="Seconds of the newest work not checked for completeness (its hops may be on the way).",
)
@click.option(
    "--show",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="Gaps listed per kind (all are counted).",
)
@click.pass_obj
def audit_verify(
    obj: Ctx,
    expect: str | None,
    page_size: int,
    completeness: bool,
    settle: float,
    show: int,
) -> None:
    """Walk the hash chain, then check the trail is complete; exit 1 on a break or a gap.

    Complete: every delivery the store recorded has its `delivered` hop, every dead letter
    the router or dispatcher parked its `dead_lettered` hop, every message a dispatcher hop
    names its `routed` hop. Identities are masked as in `dvcbus dead list`.
    """
    from bus.observability import completeness as check
    from bus.observability.audit import verify_store
    from bus.observability.process import protect_logs

    expected = _parse_expect(expect) if expect else None
    loaded, store = load_with_store(obj)
    protect_logs(loaded)  # the masker also blanks the credentials this bus resolves
    started = time.perf_counter()
    try:
        broken, anchor, head = verify_store(store, page_size=page_size, expect=expected)
        took = time.perf_counter() - started
        found = None
        if completeness:
            started = time.perf_counter()
            found = check.check(
                store, settle=settle, show=show, journal_dir=loaded.settings.journal_dir()
            )
            found.took = time.perf_counter() - started
    finally:
        store.close()
    if broken is not None:
        err_console.print(f"audit trail BROKEN at record {broken.seq}: {broken.why}")
    else:
        start = f" (after the purge anchor at {anchor[0]})" if anchor[0] else ""
        checked = f"; record {expected[0]} has the expected hash" if expected else ""
        click.echo(
            f"audit trail OK: records {anchor[0] + 1}..{head[0]} verified in {took:.2f}s"
            f"{start}{checked}"
        )
    if found is not None:
        _report_completeness(found, settle)
    if broken is not None or (found is not None and found.gaps):
        raise SystemExit(1)


def _report_completeness(found: Any, settle: float) -> None:
    from bus.observability.completeness import KINDS
    from bus.observability.trace import vn_time

    since = vn_time(found.since) if found.since else "the start"
    window = (
        f"work from {since} to {vn_time(found.until)} (the last {settle:g}s not checked), "
        f"in {found.took:.2f}s"
    )
    if not found.gaps:
        click.echo(f"audit trail complete: every delivery and dead letter has its hop; {window}")
    else:
        counts = ", ".join(f"{found.counts[k]} {k}" for k in KINDS if found.counts[k])
        err_console.print(
            f"audit trail INCOMPLETE: {found.gaps} hop(s) missing ({counts}); {window}",
            markup=False,
            soft_wrap=True,
        )
        for kind in KINDS:
            for gap in found.shown.get(kind, []):
                err_console.print(_gap_line(gap), markup=False, soft_wrap=True)
            more = found.counts[kind] - len(found.shown.get(kind, []))
            if more > 0:
                err_console.print(f"  … and {more} more without a {kind} hop", markup=False)
    if found.undrained_journals:
        err_console.print(
            f"{found.undrained_journals} hop journal(s) of stopped processes are not in the "
            "trail yet: any bus process drains them within seconds of starting",
            markup=False,
            soft_wrap=True,
        )


def _gap_line(gap: Any) -> str:
    """One gap, its identity masked like `dvcbus dead list` (a refusal's id is the sender's)."""
    from bus.observability.masking import LOG_MASKER
    from bus.observability.trace import vn_time

    message_id, message_type, dossier_no = shown_identity_of(
        gap.stage or "", gap.reason, (gap.message_id, gap.message_type, gap.dossier_no)
    )
    what = f"{message_type or 'message'} {message_id or '-'}"
    if gap.dead_letter_id is not None:
        reason = LOG_MASKER.text(gap.reason or "")
        what = f"dead letter {gap.dead_letter_id} ({gap.stage}, {reason}), {what}"
    if gap.target:
        what += f" at {gap.target}"
    if dossier_no:
        what += f", dossier {dossier_no}"
    return printable(f"  no {gap.missing} hop: {what}, recorded {vn_time(gap.at)}")


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
