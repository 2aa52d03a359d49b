"""``dvcbus send``: publish message files to the bus's ingress."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import orjson

from bus.cli.common import Ctx, console, err_console


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.pass_obj
def send(obj: Ctx, files: tuple[Path, ...]) -> None:
    """Publish message files to the bus's ingress, with confirms; print each message id.

    A file holds one JSON message, or a JSON array of messages.
    """
    from bus.broker.sending import send_bodies
    from bus.broker.topology import Names

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


COMMANDS = [send]
