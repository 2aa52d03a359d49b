"""``dvcbus targets``: each target at a glance — circuit, in flight, queued, oldest, last error.

"oldest waiting" is the age of the oldest message waiting for the target, estimated the way
the ``dvcbus_oldest_undelivered_age_seconds`` metric is (``bus/observability/backlog.py``),
from what a command can see: the dispatchers' saved views, the queue depth, the store.

* messages in flight: a delivery queue is first-in first-out, so everything still queued
  was routed after the oldest message being delivered: its age is the answer (exact);
* queued but nothing in flight (circuit open, no dispatcher): the queue's head was routed
  after every message the target already settled, so it is at most as old as the newest of
  those (the creation time its UUIDv7 or ULID id carries): shown as ``~AGE``. The messages
  that were in hand when the circuit opened went back to the queue and are about that old;
* nothing queued and nothing in flight: ``-``.

RabbitMQ cannot tell the head's age of a quorum queue (no ``head_message_timestamp``), and
peeking at it would count as a delivery toward the poison limit.
"""

from __future__ import annotations

import time
from typing import Any

import click
import pika
from rich.table import Table

from bus.broker.nodes import blocking_connection
from bus.cli.common import Ctx, cell, console, load_with_store

STALE = 15.0  # seconds without a report from a dispatcher: its view is out of date
RECENT = 50  # newest settled messages of a target looked at for the estimate


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
        conn = blocking_connection(url, "dvcbus-targets")
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


def _newest_settled(store: Any, target: str, now: float) -> float | None:
    """Creation time of the newest message ``target`` settled (delivered, superseded, parked).

    Read from the ids of its most recently recorded outcomes; an id without a time, or with
    a time too far in the future or past to be believed (a sender chose it), is not used.
    """
    from bus.observability.backlog import MAX_AGE, MAX_SKEW, created_at

    ids = store.recently_settled(target, RECENT)
    times = [
        t for t in map(created_at, ids) if t is not None and now - MAX_AGE < t < now + MAX_SKEW
    ]
    return max(times, default=None)


def _oldest_waiting(
    store: Any, target: str, oldest_in_flight: float | None, queued: int | None, now: float
) -> str:
    """The oldest waiting message's age for the table (see the module docstring)."""
    if oldest_in_flight is not None:
        return _age(max(0.0, now - oldest_in_flight))
    if not queued:
        return "-" if queued == 0 else "?"
    newest = _newest_settled(store, target, now)
    return "?" if newest is None else "~" + _age(max(0.0, now - newest))


@click.command()
@click.pass_obj
def targets(obj: Ctx) -> None:
    """Show each target: circuit state, in flight, queued, oldest waiting, last error."""
    from bus.observability.masking import LOG_MASKER
    from bus.observability.process import protect_logs

    loaded, store = load_with_store(obj)
    protect_logs(loaded)  # last errors masked as the logs mask them, credentials included
    names = loaded.names
    queued = _queued(
        loaded.settings.amqp_url, [names.delivery_queue(t) for t in loaded.routes.targets]
    )
    now = time.time()
    try:
        states = store.target_states()
        rows = _rows(loaded, store, states, queued, now, LOG_MASKER.text)
    finally:
        store.close()
    table = Table(title="targets")
    for col in (
        "target",
        "agency",
        "adapter",
        "state",
        "in flight",
        "queued",
        "oldest waiting",
        "last error",
    ):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*map(cell, row))  # an agency's answer may hold brackets or control bytes
    console.print(table)


def _rows(
    loaded: Any, store: Any, states: list[Any], queued: dict[str, int | None], now: float, mask: Any
) -> list[tuple[str, ...]]:
    names = loaded.names
    rows = []
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
        rows.append(
            (
                name,
                target.agency,
                target.adapter,
                state,
                in_flight,
                "?" if count is None else str(count),
                _oldest_waiting(store, name, oldest, count, now),
                f"{_age(now - (last.last_error_at or now))} ago: {mask(last.last_error or '')}"
                if last
                else "-",
            )
        )
    return rows


COMMANDS = [targets]
