"""``dvcbus send``: publish message files to the bus's ingress.

Nothing is sent unless every file can be: an empty file, or a JSON array without
``--each``, stops the command before it connects; ``--check`` also runs the router's own
checks on every message first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

from bus.cli.common import Ctx, console, err_console, load_or_exit

if TYPE_CHECKING:
    from bus.routing.identity import Verdict
    from bus.routing.pipeline import RouterPipeline


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send: its body and where it came from (``file`` or ``file[2]``)."""

    label: str
    body: bytes


class NotSendable(Exception):
    """A file that cannot be sent as it is; the message says why and what to do."""


def messages_of(path: Path, raw: bytes, *, each: bool) -> list[Outgoing]:
    """The messages a file holds: itself, or with ``each`` one per element of its JSON array.

    An empty file is never a message. A JSON array is refused without ``each``: sent whole,
    the router would refuse it; split silently, one file would become many messages. Any
    other body is sent as it is, broken or not: the router judges it (``--check`` first).
    """
    if not raw.strip():
        raise NotSendable(f"{path}: empty file, not a message")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [Outgoing(str(path), raw)]
    if not isinstance(doc, list):
        return [Outgoing(str(path), raw)]
    if not each:
        raise NotSendable(
            f"{path}: a JSON array of {len(doc)} element(s), not a message: "
            "pass --each to send each element as its own message"
        )
    if not doc:
        raise NotSendable(f"{path}: an empty JSON array, no message to send")
    from bus.contract.envelope import refuse_repeated_keys
    from bus.contract.rejections import Rejection

    try:
        # the elements are re-serialised, which would silently keep one of two equal keys
        refuse_repeated_keys(raw, doc)
    except Rejection as rej:
        raise NotSendable(f"{path}: {rej.reason.value}: {rej.detail}") from None
    return [Outgoing(f"{path}[{i}]", orjson.dumps(item)) for i, item in enumerate(doc)]


def refusals(
    pipeline: RouterPipeline, messages: list[Outgoing], verdict: Verdict | None = None
) -> list[str]:
    """What the router would refuse, one line per message, with its reason and exact error."""
    from bus.routing.pipeline import Park

    lines = []
    for message in messages:
        decision = pipeline.decide(message.body, verdict)
        if isinstance(decision, Park):
            lines.append(f"{message.label}: {decision.reason.value}: {decision.detail}")
    return lines


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--check",
    is_flag=True,
    help="Run the router's checks here first; if any message would be refused, say why "
    "and send nothing (exit 1).",
)
@click.option(
    "--each", is_flag=True, help="Send each element of a file's JSON array as its own message."
)
@click.option(
    "--as",
    "as_sender",
    metavar="SENDER",
    help="Publish as this senders.yaml sender: connect as its amqp_user (password from the "
    "broker_passwords setting) and set user_id, as the sender's own system would.",
)
@click.pass_obj
def send(obj: Ctx, files: tuple[Path, ...], check: bool, each: bool, as_sender: str | None) -> None:
    """Publish message files to the bus's ingress, with confirms; print each message id.

    A file holds one JSON message (or, with --each, a JSON array of messages). Nothing is
    sent if any file cannot be: an empty file, an array without --each, or with --check a
    message the router would refuse. Every message carries user_id, the broker user it is
    published as: the router knows the sender by it (docs/ingress.md).
    """
    from bus.broker.sending import send_bodies
    from bus.broker.topology import Names
    from bus.cli.as_sender import identify_as, sender_url

    settings = obj.settings()
    amqp_url = settings.amqp_url
    if as_sender is not None:
        amqp_url = sender_url(load_or_exit(settings), as_sender)
    messages: list[Outgoing] = []
    problems: list[str] = []
    for path in files:
        try:
            messages.extend(messages_of(path, path.read_bytes(), each=each))
        except NotSendable as exc:
            problems.append(str(exc))
    if check:
        from bus import app
        from bus.routing.pipeline import RouterPipeline

        loaded = load_or_exit(settings)
        pipeline = RouterPipeline(loaded.schemas, loaded.table, settings.max_message_bytes)
        verdict = None
        if as_sender is not None and app.identities(loaded) is not None:
            verdict = identify_as(loaded, as_sender)
        lines = refusals(pipeline, messages, verdict)
        problems += [f"would be refused: {line}" for line in lines]
        if not problems:
            console.print(f"checked {len(messages)} message(s): the router would route each")
    if problems:
        for line in problems:
            err_console.print(line, markup=False, soft_wrap=True)
        err_console.print(f"nothing sent: {len(problems)} problem(s)", markup=False)
        raise SystemExit(1)
    bodies = [m.body for m in messages]
    names = Names(settings.namespace)
    results = asyncio.run(send_bodies(amqp_url, names, bodies))
    failed = 0
    for result in results:
        if result.ok:
            console.print(f"sent {result.message_id}", markup=False)
        else:
            failed += 1
            err_console.print(f"NOT sent {result.message_id}: {result.explain()}", markup=False)
    if failed:
        raise SystemExit(1)


COMMANDS = [send]
