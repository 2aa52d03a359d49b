"""Replaying dead letters: back to the target that failed, or through the router again.

A dead letter parked by the dispatcher (or the broker, for a target) goes straight back to
that target's delivery queue with a fresh retry budget; one refused by the router (invalid,
unroutable …) goes back to the ingress, to be judged again after the cause was fixed (a
routes.yaml change, a corrected schema). Each replay is claimed in the store first, so two
operators cannot replay the same dead letter twice, and recorded with who did it.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pika

from bus import dead_letters, retry
from bus.store import PARKED, REPLAYED, DeadFilter, DeadLetter, Store
from bus.topology import Names

REPLAY_OF = "x-dvcbus-replay-of"
_DROP = {
    dead_letters.REASON,
    dead_letters.DETAIL,
    dead_letters.STAGE,
    dead_letters.DEAD_AT,
    retry.ATTEMPT,
    retry.FIRST_ATTEMPT_AT,
    retry.HISTORY,
    *retry.BROKER_HEADERS,
}


@dataclass(frozen=True, slots=True)
class ReplayResult:
    dead_id: int
    message_id: str | None
    destination: str  # "target hanoi" | "ingress"
    done: bool
    note: str = ""


def actor() -> str:
    """Who is acting, for the record: user@host."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def destination(letter: DeadLetter) -> tuple[str, str, str]:
    """(exchange kind, routing key, description) a dead letter is replayed to."""
    if letter.target and letter.stage != "router":
        return "deliver", letter.target, f"target {letter.target}"
    return "ingress", letter.message_type or "replay", "ingress"


def replay_headers(letter: DeadLetter) -> dict[str, Any]:
    """The original headers without the dead letter's and the retries' own."""
    headers = {k: v for k, v in letter.headers.items() if k not in _DROP}
    headers[REPLAY_OF] = letter.id
    return headers


def replay(
    store: Store,
    amqp_url: str,
    names: Names,
    flt: DeadFilter,
    *,
    rate: float = 20.0,
    dry_run: bool = False,
    who: str | None = None,
) -> Iterator[ReplayResult]:
    """Replay every parked dead letter matching ``flt``, at most ``rate`` per second."""
    who = who or actor()
    # Asked for by id, a dead letter that is no longer parked is reported, not silently left out.
    state = None if flt.ids else PARKED
    letters = store.dead_letters(DeadFilter(**{**_as_dict(flt), "state": state}), with_body=True)
    if dry_run:
        for letter in letters:
            note = "dry run" if letter.state == PARKED else f"already {letter.state}"
            yield ReplayResult(
                letter.id or 0, letter.message_id, destination(letter)[2], False, note
            )
        return
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for n, letter in enumerate(letters):
            if n and rate > 0:
                time.sleep(1 / rate)
            yield _replay_one(store, channel, names, letter, who)
    finally:
        conn.close()


def _replay_one(
    store: Store, channel: Any, names: Names, letter: DeadLetter, who: str
) -> ReplayResult:
    kind, key, where = destination(letter)
    dead_id = letter.id or 0
    if letter.state != PARKED:
        return ReplayResult(dead_id, letter.message_id, where, False, f"already {letter.state}")
    if not letter.body:
        return ReplayResult(dead_id, letter.message_id, where, False, "no body kept")
    if not store.mark(dead_id, REPLAYED, "replay", who, f"to {where}"):
        return ReplayResult(dead_id, letter.message_id, where, False, "no longer parked")
    exchange = names.deliver_exchange if kind == "deliver" else names.ingress_exchange
    props = pika.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id=letter.message_id,
        type=letter.message_type,
        timestamp=int(time.time()),
        headers=replay_headers(letter),
    )
    try:
        channel.basic_publish(exchange, key, letter.body, props, mandatory=True)
    except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
        store.mark(dead_id, PARKED, "replay_failed", who, f"broker refused: {exc}", was=REPLAYED)
        return ReplayResult(dead_id, letter.message_id, where, False, "broker refused it")
    return ReplayResult(dead_id, letter.message_id, where, True)


def _as_dict(flt: DeadFilter) -> dict[str, Any]:
    return {name: getattr(flt, name) for name in flt.__slots__}
