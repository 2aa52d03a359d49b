"""``dvcbus dead``: dead letters as a workflow — list, show, replay, purge, each action recorded."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click
import orjson
from rich.table import Table

from bus.cli.common import Ctx, cell, console, err_console, load_with_store, shown_identity_of
from bus.observability.masking import printable
from bus.observability.trace import VN
from bus.store import PARKED, PURGED, DeadFilter, DeadLetter


def _since(value: str | None) -> float | None:
    """``2h`` / ``30m`` ago, or an ISO date/time; without an offset it is Vietnam time, so
    ``2026-11-25`` is midnight in Hà Nội (operators read +07:00 in every listing)."""
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
        stamp = stamp.replace(tzinfo=VN)
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
    """Vietnam time with its offset, as ``trace`` prints it (whatever the server's zone)."""
    return datetime.fromtimestamp(ts, UTC).astimezone(VN).strftime("%Y-%m-%d %H:%M:%S +07:00")


@click.group()
def dead() -> None:
    """Dead letters: list, show, replay, purge (every action is recorded)."""


_LIST_COLUMNS = (
    "id",
    "parked at +07:00",
    "reason",
    "target",
    "type",
    "message id",
    "dossier",
    "tries",
    "detail",
)

_WHOLE = frozenset({"id", "parked at +07:00", "tries"})


def _listed(letter: DeadLetter) -> dict[str, Any]:
    """One dead letter as ``dead list`` shows it: identity and free text masked like the logs."""
    from bus.observability.masking import LOG_MASKER

    message_id, message_type, dossier_no = shown_identity_of(
        letter.stage, letter.reason, (letter.message_id, letter.message_type, letter.dossier_no)
    )
    return {
        "id": letter.id,
        "state": letter.state,
        "parked_at": _when(letter.dead_at),
        "reason": letter.reason,
        "stage": letter.stage,
        "target": letter.target,
        "type": message_type,
        "message_id": message_id,
        "dossier_no": dossier_no,
        "attempts": letter.attempts,
        "detail": LOG_MASKER.text(letter.detail),
    }


@dead.command("list")
@_filter_options
@click.option("--all", "all_states", is_flag=True, help="Include replayed and purged ones.")
@click.option("--limit", default=200, show_default=True, help="At most this many (0: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
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
    as_json: bool,
) -> None:
    """List dead letters (personal data masked, as in the logs)."""
    from bus.observability.process import protect_logs

    loaded, store = load_with_store(obj)
    protect_logs(loaded)  # the masker also blanks the credentials this bus resolves
    try:
        # one more than asked for: whether --limit cut the list, without counting them all
        flt = _filter(
            ids, target, message_type, reason, since, None if all_states else PARKED,
            limit + 1 if limit > 0 else None,
        )  # fmt: skip
        letters = store.dead_letters(flt)
    finally:
        store.close()
    cut = limit > 0 and len(letters) > limit
    rows = [_listed(d) for d in (letters[:limit] if cut else letters)]
    more = f"showing the first {len(rows)}; more match: raise --limit to see them"
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        if cut:
            click.echo(more, err=True)
        return
    table = Table(title=f"{len(rows)} dead letter(s)")
    for col in _LIST_COLUMNS:  # the short ones whole; identifiers and detail fold
        table.add_column(col, overflow="fold", no_wrap=col in _WHOLE)
    for row in rows:
        state = "" if row["state"] == PARKED else f" ({row['state']})"
        table.add_row(
            *map(
                cell,
                (
                    str(row["id"]),
                    row["parked_at"].removesuffix(" +07:00"),  # the offset is in the heading
                    row["reason"] + state,
                    row["target"] or "-",
                    row["type"] or "-",
                    row["message_id"] or "-",
                    row["dossier_no"] or "-",
                    str(row["attempts"]),
                    row["detail"][:160],
                ),
            )
        )
    console.print(table)
    if cut:
        console.print(more)


@dead.command("show")
@click.argument("dead_id", type=int)
@click.pass_obj
def dead_show(obj: Ctx, dead_id: int) -> None:
    """One dead letter: the message (masked), reason, attempts, errors, actions taken.

    Masked as the logs are: personal data in free text, the identity of a message the
    router refused, the body by its schema's x-pii marks. Control characters are escaped.
    """
    from bus.observability.masking import LOG_MASKER
    from bus.observability.process import protect_logs

    loaded, store = load_with_store(obj)
    protect_logs(loaded)  # x-pii marks of the schemas, credentials this bus resolves
    try:
        letter = store.dead_letter(dead_id)
    finally:
        store.close()
    if letter is None:
        err_console.print(f"no dead letter {dead_id}")
        raise SystemExit(1)
    mask = LOG_MASKER.text

    def say(line: str) -> None:
        click.echo(printable(line))

    shown = _listed(letter)
    say(f"dead letter {letter.id} ({letter.state})")
    for label, value in (
        ("reason", letter.reason),
        ("detail", shown["detail"]),
        ("stage", letter.stage),
        ("target", letter.target or "-"),
        ("message", f"{shown['message_id'] or '-'} {shown['type'] or ''}"),
        ("dossier", shown["dossier_no"] or "-"),
        ("parked at", shown["parked_at"]),
        ("attempts", str(letter.attempts)),
    ):
        say(f"  {label:<10} {value}")
    if letter.history:
        say("  history:")
        for entry in letter.history:
            at = _when(entry["at"]) if "at" in entry else "?"
            why = mask(str(entry.get("reason", "")))
            say(f"    attempt {entry.get('attempt', '?')} at {at}: {why}")
    if letter.actions:
        say("  actions:")
        for action in letter.actions:
            when = _when(action["at"])
            say(f"    {when} {action['action']} by {action['actor']}: {mask(action['detail'])}")
    say("  message (personal data masked):")
    try:
        doc = orjson.loads(letter.body)
    except orjson.JSONDecodeError:
        say("    " + mask(letter.body[:500].decode("utf-8", "replace")))
        return
    masked = LOG_MASKER.mask_value("message", doc, 0)
    # orjson writes control characters in strings as \u escapes: the JSON is printable as is
    say("    " + orjson.dumps(masked, option=orjson.OPT_INDENT_2).decode().replace("\n", "\n    "))


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
    from bus.observability.masking import LOG_MASKER
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
            # one going through the router again may be a refusal: its id is the sender's text
            shown_id = result.message_id or "-"
            if result.destination.startswith("ingress"):
                shown_id = LOG_MASKER.text(shown_id)
            click.echo(
                printable(f"{verb} {result.dead_id} {shown_id} → {result.destination}{note}")
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
