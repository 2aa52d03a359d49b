"""``dvcbus targets``: each target at a glance — circuit, in flight, queued, oldest, last error."""

from __future__ import annotations

import time

import click
import pika
from rich.table import Table

from bus.cli.common import Ctx, console, load_with_store

STALE = 15.0  # seconds without a report from a dispatcher: its view is out of date


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _queued(url: str, queues: list[str]) -> dict[str, int | None]:
    counts: dict[str, int | None] = dict.fromkeys(queues)
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
    except pika.exceptions.AMQPError:
        return counts
    try:
        for q in queues:
            channel = conn.channel()
            try:
                counts[q] = channel.queue_declare(q, passive=True).method.message_count
                channel.close()
            except pika.exceptions.ChannelClosedByBroker:
                counts[q] = None
    finally:
        conn.close()
    return counts


@click.command()
@click.pass_obj
def targets(obj: Ctx) -> None:
    """Show each target: circuit state, in flight, queued, oldest in flight, last error."""
    from bus.observability.masking import mask_text

    loaded, store = load_with_store(obj)
    try:
        states = store.target_states()
    finally:
        store.close()
    names = loaded.names
    queued = _queued(
        loaded.settings.amqp_url, [names.delivery_queue(t) for t in loaded.routes.targets]
    )
    now = time.time()
    table = Table(title="targets")
    for col in (
        "target",
        "agency",
        "adapter",
        "state",
        "in flight",
        "queued",
        "oldest in flight",
        "last error",
    ):
        table.add_column(col, overflow="fold")
    for name, target in sorted(loaded.routes.targets.items()):
        fresh = [s for s in states if s.target == name and now - s.updated_at < STALE]
        if fresh:
            worst = max(
                fresh,
                key=lambda s: (
                    ("closed", "half_open", "open").index(s.state)
                    if s.state in ("closed", "half_open", "open")
                    else 0
                ),
            )
            state = worst.state + (f" ({len(fresh)} dispatchers)" if len(fresh) > 1 else "")
            in_flight = str(sum(s.in_flight for s in fresh))
            oldest = min(
                (s.oldest_in_flight_at for s in fresh if s.oldest_in_flight_at), default=None
            )
        else:
            state, in_flight, oldest = "no dispatcher", "-", None
        errors = [s for s in states if s.target == name and s.last_error]
        last = max(errors, key=lambda s: s.last_error_at or 0) if errors else None
        count = queued[names.delivery_queue(name)]
        table.add_row(
            name,
            target.agency,
            target.adapter,
            state,
            in_flight,
            "?" if count is None else str(count),
            _age(now - oldest if oldest else None),
            f"{_age(now - (last.last_error_at or now))} ago: {mask_text(last.last_error or '')}"
            if last
            else "-",
        )
    console.print(table)


COMMANDS = [targets]
