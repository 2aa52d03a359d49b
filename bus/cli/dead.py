"""``dvcbus dead``: dead letters as a workflow — list, show, replay, purge, each action recorded."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click
import orjson
from rich.table import Table

from bus.cli.common import Ctx, console, err_console, load_with_store
from bus.store import PARKED, PURGED, DeadFilter


def _since(value: str | None) -> float | None:
    """``2h`` / ``30m`` ago, or an ISO date/time."""
    if not value:
        return None
    from bus.routes.durations import parse_duration

    try:
        return time.time() - parse_duration(value)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use a duration like 2h or a date like 2026-11-25"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _filter_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--target", help="Only dead letters of this target."),
            click.option("--type", "message_type", help="Only this message type."),
            click.option("--reason", help="Only this reason (invalid, rejected, poison …)."),
            click.option("--since", help="Only those parked since: 2h, 30m, or a date."),
            click.option("--id", "ids", multiple=True, type=int, help="These ids (repeatable)."),
        ]
    ):
        fn = option(fn)
    return fn


def _filter(
    ids: tuple[int, ...],
    target: str | None,
    message_type: str | None,
    reason: str | None,
    since: str | None,
    state: str | None = PARKED,
    limit: int | None = None,
) -> DeadFilter:
    return DeadFilter(
        ids=tuple(ids),
        target=target,
        message_type=message_type,
        reason=reason,
        since=_since(since),
        state=state,
        limit=limit,
    )


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@click.group()
def dead() -> None:
    """Dead letters: list, show, replay, purge (every action is recorded)."""


@dead.command("list")
@_filter_options
@click.option("--all", "all_states", is_flag=True, help="Include replayed and purged ones.")
@click.option("--limit", default=200, show_default=True)
@click.pass_obj
def dead_list(
    obj: Ctx,
    ids: tuple[int, ...],
    target: str | None,
    message_type: str | None,
    reason: str | None,
    since: str | None,
    all_states: bool,
    limit: int,
) -> None:
    """List dead letters (personal data masked)."""
    from bus.observability.masking import mask_text

    _, store = load_with_store(obj)
    try:
        flt = _filter(
            ids, target, message_type, reason, since, None if all_states else PARKED, limit
        )
        letters = store.dead_letters(flt)
    finally:
        store.close()
    table = Table(title=f"{len(letters)} dead letter(s)")
    for col in (
        "id",
        "parked at",
        "reason",
        "target",
        "type",
        "message id",
        "dossier",
        "tries",
        "detail",
    ):
        table.add_column(col, overflow="fold")
    for d in letters:
        table.add_row(
            str(d.id),
            _when(d.dead_at),
            d.reason + ("" if d.state == PARKED else f" ({d.state})"),
            d.target or "-",
            d.message_type or "-",
            d.message_id or "-",
            d.dossier_no or "-",
            str(d.attempts),
            mask_text(d.detail)[:160],
        )
    console.print(table)


@dead.command("show")
@click.argument("dead_id", type=int)
@click.pass_obj
def dead_show(obj: Ctx, dead_id: int) -> None:
    """One dead letter: the message (masked), reason, attempts, errors, actions taken."""
    from bus.observability.masking import LogMasker, mask_text

    loaded, store = load_with_store(obj)
    try:
        letter = store.dead_letter(dead_id)
    finally:
        store.close()
    if letter is None:
        err_console.print(f"no dead letter {dead_id}")
        raise SystemExit(1)
    masker = LogMasker()
    masker.use_schemas(loaded.schemas)
    click.echo(f"dead letter {letter.id} ({letter.state})")
    for label, value in (
        ("reason", letter.reason),
        ("detail", mask_text(letter.detail)),
        ("stage", letter.stage),
        ("target", letter.target or "-"),
        ("message", f"{letter.message_id or '-'} {letter.message_type or ''}"),
        ("dossier", letter.dossier_no or "-"),
        ("parked at", _when(letter.dead_at)),
        ("attempts", str(letter.attempts)),
    ):
        click.echo(f"  {label:<10} {value}")
    if letter.history:
        click.echo("  history:")
        for entry in letter.history:
            at = _when(entry["at"]) if "at" in entry else "?"
            why = mask_text(str(entry.get("reason", "")))
            click.echo(f"    attempt {entry.get('attempt', '?')} at {at}: {why}")
    if letter.actions:
        click.echo("  actions:")
        for action in letter.actions:
            when = _when(action["at"])
            click.echo(f"    {when} {action['action']} by {action['actor']}: {action['detail']}")
    click.echo("  message (personal data masked):")
    try:
        doc = orjson.loads(letter.body)
    except orjson.JSONDecodeError:
        click.echo("    " + mask_text(letter.body[:500].decode("utf-8", "replace")))
        return
    masked = masker.mask_value("message", doc, 0)
    click.echo(
        "    " + orjson.dumps(masked, option=orjson.OPT_INDENT_2).decode().replace("\n", "\n    ")
    )


@dead.command("replay")
@_filter_options
@click.option("--rate", default=20.0, show_default=True, help="At most this many per second.")
@click.option("--dry-run", is_flag=True, help="Only say what would be replayed.")
@click.pass_obj
def dead_replay(
    obj: Ctx,
    ids: tuple[int, ...],
    target: str | None,
    message_type: str | None,
    reason: str | None,
    since: str | None,
    rate: float,
    dry_run: bool,
) -> None:
    """Send parked dead letters back: to their target, or through the router again.

    Each message sent is a ``replayed`` hop in the audit trail (``dvcbus trace``) and in
    the log (stderr), like the router's and the dispatcher's hops.
    """
    import asyncio

    import pika

    from bus import app
    from bus.observability import log as log_config
    from bus.recovery.replay import replay

    if not (ids or target or message_type or reason or since):
        raise click.UsageError(
            "say which dead letters: --id, --target, --type, --reason or --since"
        )
    loaded, store = load_with_store(obj)
    settings = loaded.settings
    log_config.configure(settings.log_level, settings.log_format, process="replay")
    from bus.observability.process import protect_logs

    protect_logs(loaded)  # the replayed hops' log lines and audit records mask credentials too
    hops = app.build_hops(loaded)
    audit = None if dry_run else app.build_audit(loaded, store)
    if audit is not None:
        hops.add(audit)
    done = skipped = 0
    try:
        flt = _filter(ids, target, message_type, reason, since)
        for result in replay(
            store,
            settings.amqp_url,
            loaded.names,
            flt,
            rate=rate,
            dry_run=dry_run,
            hops=hops,
            stamp_key=app.stamp_key(settings),
        ):
            if dry_run:
                verb = "would replay" if result.note == "dry run" else "would skip"
            else:
                verb = "replayed" if result.done else "skipped"
            note = f" ({result.note})" if result.note and result.note != "dry run" else ""
            click.echo(
                f"{verb} {result.dead_id} {result.message_id or '-'} → {result.destination}{note}"
            )
            done += result.done
            skipped += not result.done and not dry_run
            if result.done and audit is not None:
                asyncio.run(audit.flush())  # in the trail before the replayed copy is delivered
    except pika.exceptions.AMQPConnectionError as exc:
        raise click.ClickException(f"cannot reach the broker: {exc!r}") from None
    finally:
        if audit is not None:
            asyncio.run(audit.stop())  # the replayed hops reach the audit trail before exit
        store.close()
    if not dry_run:
        click.echo(f"{done} replayed, {skipped} skipped")


@dead.command("purge")
@_filter_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def dead_purge(
    obj: Ctx,
    ids: tuple[int, ...],
    target: str | None,
    message_type: str | None,
    reason: str | None,
    since: str | None,
    yes: bool,
) -> None:
    """Drop the bodies of parked dead letters; the record of each, and of the purge, stays."""
    from bus.recovery.replay import actor

    if not (ids or target or message_type or reason or since):
        raise click.UsageError(
            "say which dead letters: --id, --target, --type, --reason or --since"
        )
    _, store = load_with_store(obj)
    try:
        letters = store.dead_letters(_filter(ids, target, message_type, reason, since))
        if not letters:
            click.echo("nothing to purge")
            return
        if not yes:
            click.confirm(
                f"purge {len(letters)} dead letter(s)? their bodies are deleted", abort=True
            )
        who = actor()
        purged = sum(
            store.mark(d.id or 0, PURGED, "purge", who, "purged by operator") for d in letters
        )
    finally:
        store.close()
    click.echo(f"{purged} purged (the records stay: dvcbus dead list --all)")


COMMANDS = [dead]
