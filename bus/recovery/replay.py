"""Replaying dead letters: back to the target that failed, or through the router again.

A dead letter parked by the dispatcher (or the broker, for a target) goes straight back to
that target's delivery queue with a fresh retry budget; one refused by the router (invalid,
unroutable …) goes back to the ingress, to be judged again after the cause was fixed (a
routes.yaml change, a corrected schema). A copy sent to a target carries a fresh router stamp
(the operator's CLI holds the stamp key, like the router): without it the dispatcher would
refuse it. Only a dead letter that carries the router's stamp for its target goes straight
back there; any other (refused for want of a stamp, or put on the dead-letter exchange by
someone else) never went through the router, so it goes to the ingress. Each replay is
claimed in the store first, so two operators cannot replay the same dead letter twice, and
recorded with who did it. If the message is then not sent (the broker refused it, or the
connection failed), the claim is undone: the dead letter is parked again with a
``replay_failed`` action. Each message sent is told to the process's hop sinks (audit
trail, logs) as a ``replayed`` hop.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pika
import structlog

from bus.broker.nodes import blocking_connection, first_url
from bus.broker.stamp import StampKey, stamp, verify
from bus.broker.topology import Names
from bus.broker.wire import BROKER_DEATH_HEADERS, Header, replay_properties
from bus.contract.envelope import STATUS_TYPE, status_of
from bus.contract.rejections import shown_identity
from bus.observability.hops import Event, Hop, Hops, Stage
from bus.observability.masking import LOG_MASKER
from bus.store import PARKED, REPLAYED, DeadFilter, DeadLetter, Store

log = structlog.get_logger("bus.replay")

# A replay starts afresh: no dead-letter record, no retry budget spent, no broker deaths.
_DROP = {
    Header.REASON,
    Header.DETAIL,
    Header.STAGE,
    Header.DEAD_AT,
    Header.ATTEMPT,
    Header.FIRST_ATTEMPT_AT,
    Header.HISTORY,
    Header.STAMP,  # a replay to a target is stamped afresh; one to the ingress needs none
    *BROKER_DEATH_HEADERS,
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


def destination(letter: DeadLetter, stamp_key: StampKey) -> tuple[str, str, str]:
    """(exchange kind, routing key, description) a dead letter is replayed to.

    Straight back to its target only if it still carries the router's stamp for that target:
    one that never went through the router (refused for its stamp, or published to the
    dead-letter exchange by someone else) goes through the router now. So does one parked
    before copies were stamped; targets that already had it suppress it as a duplicate.
    """
    to_ingress = "ingress", letter.message_type or "replay"
    if not letter.target or letter.stage == Stage.ROUTER:
        return (*to_ingress, "ingress")
    if not routed(letter, stamp_key):
        return (*to_ingress, f"ingress (no router stamp for target {letter.target})")
    return "deliver", letter.target, f"target {letter.target}"


def routed(letter: DeadLetter, stamp_key: StampKey) -> bool:
    """Whether the dead letter carries the router's stamp for its target, id and body."""
    presented = letter.headers.get(Header.STAMP.value)
    if not isinstance(presented, str) or not letter.body or not letter.target:
        return False
    return verify(stamp_key, letter.message_id, letter.target, letter.body, presented)


def replay_headers(letter: DeadLetter) -> dict[str, Any]:
    """The original headers without the dead letter's and the retries' own."""
    headers = {k: v for k, v in letter.headers.items() if k not in _DROP}
    headers[Header.REPLAY_OF.value] = letter.id
    return headers


def replay(
    store: Store,
    amqp_url: str,
    names: Names,
    flt: DeadFilter,
    *,
    stamp_key: StampKey,
    rate: float = 20.0,
    dry_run: bool = False,
    who: str | None = None,
    hops: Hops | None = None,
) -> Iterator[ReplayResult]:
    """Replay every parked dead letter matching ``flt``, at most ``rate`` per second.

    Once the connection to the broker is lost, the remaining dead letters are reported
    ``not attempted`` and left parked, untouched.
    """
    who = who or actor()
    hops = hops or Hops()
    # Asked for by id, a dead letter that is no longer parked is reported, not silently left out.
    state = None if flt.ids else PARKED
    letters = store.dead_letters(DeadFilter(**{**_as_dict(flt), "state": state}), with_body=True)
    if dry_run:
        for letter in letters:
            note = "dry run" if letter.state == PARKED else f"already {letter.state}"
            yield ReplayResult(
                letter.id or 0, letter.message_id, destination(letter, stamp_key)[2], False, note
            )
        return
    params = pika.URLParameters(first_url(amqp_url))
    conn = blocking_connection(amqp_url, "dvcbus-replay")
    # Published as the operator's own broker user: the router trusts the dead letter's
    # sender header from the operators' user only (bus/routing/identity.py).
    user_id = params.credentials.username
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for n, letter in enumerate(letters):
            if not (conn.is_open and channel.is_open):
                where = destination(letter, stamp_key)[2]
                note = "not attempted: the connection to the broker was lost"
                yield ReplayResult(letter.id or 0, letter.message_id, where, False, note)
                continue
            if n and rate > 0:
                time.sleep(1 / rate)
            yield _replay_one(store, channel, names, letter, who, hops, stamp_key, user_id)
    finally:
        if conn.is_open:
            conn.close()


def _status(letter: DeadLetter) -> int | None:
    """The status code of a replayed status update, for its hop (None for other messages)."""
    if letter.message_type != STATUS_TYPE:
        return None
    try:
        return status_of(orjson.loads(letter.body))
    except orjson.JSONDecodeError:
        return None


def _replay_one(
    store: Store,
    channel: Any,
    names: Names,
    letter: DeadLetter,
    who: str,
    hops: Hops,
    stamp_key: StampKey,
    user_id: str | None = None,
) -> ReplayResult:
    kind, key, where = destination(letter, stamp_key)
    dead_id = letter.id or 0
    if letter.state != PARKED:
        return ReplayResult(dead_id, letter.message_id, where, False, f"already {letter.state}")
    if not letter.body:
        return ReplayResult(dead_id, letter.message_id, where, False, "no body kept")
    if not store.mark(dead_id, REPLAYED, "replay", who, f"to {where}"):
        return ReplayResult(dead_id, letter.message_id, where, False, "no longer parked")
    headers = replay_headers(letter)
    if kind == "deliver":
        exchange = names.deliver_exchange
        headers[Header.STAMP.value] = stamp(stamp_key, letter.message_id, key, letter.body)
    else:
        exchange = names.ingress_exchange
    props = replay_properties(letter.message_id, letter.message_type, headers, user_id)
    try:
        channel.basic_publish(exchange, key, letter.body, props, mandatory=True)
    except Exception as exc:  # refused, or not known to be sent: never leave it claimed
        if isinstance(exc, pika.exceptions.UnroutableError | pika.exceptions.NackError):
            why = "broker refused it"
        else:
            why = f"not sent: {type(exc).__name__}"
        detail = f"{why}: {exc}" if str(exc) else why
        store.mark(dead_id, PARKED, "replay_failed", who, detail, was=REPLAYED)
        log.warning("replay.failed", dead_letter=dead_id, message_id=letter.message_id, why=why)
        return ReplayResult(dead_id, letter.message_id, where, False, why)
    # shown as the dead letter shows it: a router refusal's identity is the sender's text
    identity = shown_identity(
        letter.stage,
        letter.reason,
        letter.message_id,
        letter.message_type,
        letter.dossier_no,
        LOG_MASKER.text,
    )
    hops.emit(
        Hop(
            Event.REPLAYED,
            Stage.OPERATOR,
            *identity,
            target=letter.target,
            reason=letter.reason,
            detail=f"dead letter {dead_id} replayed to {where} by {who}",
            body=letter.body,
            status=_status(letter),
        )
    )
    return ReplayResult(dead_id, letter.message_id, where, True)


def _as_dict(flt: DeadFilter) -> dict[str, Any]:
    return {name: getattr(flt, name) for name in flt.__slots__}
