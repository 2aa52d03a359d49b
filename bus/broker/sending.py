"""Publishing messages to the bus's ingress with pipelined confirms (CLI ``send``, demo, tests).

A send counts as done only when the broker confirmed it *and* it reached a queue: messages
are published ``mandatory`` so that an ingress exchange with no queue behind it is an
error the sender sees, not a silent loss.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import pika
import structlog

from bus.broker.connection import AccessRefused, ChannelOps, connect
from bus.broker.nodes import first_url, node_urls, where
from bus.broker.publisher import ConfirmingPublisher
from bus.broker.topology import Names
from bus.broker.wire import ingress_properties
from bus.contract.ids import uuid7
from bus.errors import BrokerError

log = structlog.get_logger("bus.send")


@dataclass(slots=True)
class SendResult:
    """What happened to one published message."""

    message_id: str
    ok: bool = False
    returned: bool = False
    published_at: float = 0.0  # time.time() when handed to the broker
    confirmed_at: float = 0.0
    error: str = ""  # why it was not taken, for the sender to read

    def explain(self) -> str:
        if self.ok:
            return "sent"
        if self.returned:
            return "no queue behind the ingress exchange (start the bus once to declare it)"
        if "NOT_FOUND" in self.error:
            return f"the bus's ingress exchange does not exist (start the bus once): {self.error}"
        return self.error or "refused by the broker"


def user_of(amqp_url: str) -> str:
    """The RabbitMQ user an AMQP URL connects as: the ``user_id`` its messages carry."""
    return str(pika.URLParameters(first_url(amqp_url)).credentials.username)


def message_id_of(body: bytes) -> str:
    """The envelope id (used as AMQP message_id), or a fresh one for a body without a usable id.

    The router never trusts this property; it only lets a sender find its dead letters.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return uuid7()
    mid = doc.get("id") if isinstance(doc, dict) else None
    return mid if isinstance(mid, str) and 0 < len(mid) <= 64 else uuid7()


def routing_key_of(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "malformed"
    mtype = doc.get("type") if isinstance(doc, dict) else None
    return (
        mtype
        if isinstance(mtype, str) and mtype.replace(".", "").replace("_", "").isalnum()
        else "unknown"
    )


@dataclass(slots=True)
class _Outgoing:
    """One message until the broker settles it: what to publish again after a reconnect."""

    result: SendResult
    routing_key: str
    body: bytes
    properties: pika.BasicProperties
    nacked_since: float = 0.0  # time.monotonic() of its first nack; 0: never nacked
    due: float = 0.0  # not to be published again before (time.monotonic())


async def send_bodies(
    amqp_url: str,
    names: Names,
    bodies: Iterable[bytes],
    *,
    window: int = 1000,
    rate: float | None = None,
    headers: dict[str, str] | None = None,
    give_up_after: float = 120.0,
) -> list[SendResult]:
    """Publish every body to the ingress exchange; return one result per body, in order.

    ``window`` bounds unconfirmed publishes; ``rate`` (messages/s) paces them for
    fixed-load measurements. Every message carries ``user_id``, the user of ``amqp_url``
    (the broker refuses another): the router knows the sender by it. ``headers``: on every
    message (the operators' tools name the sender they act for: ``x-dvcbus-sender``).

    ``amqp_url`` may list a cluster's nodes. When the connection is lost (a node stopped or
    died), what the broker had not confirmed is published again, in order, on a connection
    to another node: the same message id, so the router's and the store's idempotency
    absorb a message the broker did hold but could not confirm. A nack (a full queue, a
    quorum queue between leaders) is published again after a pause, doubling up to 2 s,
    for ``give_up_after`` seconds. A return (no queue), a nack for longer, or as long with
    no node answering or no confirm arriving are final: the result says why. The first
    connection failing is an error.
    """
    user_id = user_of(amqp_url)
    results: list[SendResult] = []
    source = iter(bodies)
    again: deque[_Outgoing] = deque()  # unconfirmed when a connection was lost
    state = _SendState(window)
    started = time.perf_counter()
    count = 0
    node: str | None = None
    conn, closed = await connect(amqp_url, name="dvcbus-send")
    while True:
        ops: ChannelOps | None = None
        try:
            node = _node(conn)
            ops = await ChannelOps.open(conn)
            publisher = await ConfirmingPublisher.open(ops)
            returned: set[str] = set()
            ops.channel.add_on_return_callback(
                lambda _ch, _m, props, _b, returned=returned: returned.add(props.message_id)
            )
            await _publish_again(publisher, names, state, returned, again, ops, closed)
            for body in source:
                if rate:
                    delay = started + count / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                count += 1
                await state.space()
                mid = message_id_of(body)
                result = SendResult(message_id=mid, published_at=time.time())
                results.append(result)
                props = ingress_properties(mid, user_id)
                if headers:
                    props.headers = dict(headers)
                out = _Outgoing(result, routing_key_of(body), body, props)
                if closed.done():
                    again.append(out)
                    break
                _publish(publisher, names, out, state, returned, again, ops)
            await state.settled(closed, give_up_after)
            while again and not closed.done():  # nacked: again, after a pause
                give_up = time.monotonic() - give_up_after
                for out in [o for o in again if o.nacked_since and o.nacked_since < give_up]:
                    again.remove(out)
                    out.result.error = "the broker nacked it"
                    out.result.confirmed_at = time.time()
                await _publish_again(publisher, names, state, returned, again, ops, closed)
                await state.settled(closed, give_up_after)
        except (BrokerError, pika.exceptions.AMQPError) as exc:  # lost while setting up
            log.warning("send.interrupted", error=repr(exc))
        if not closed.done():
            reason = ops.closed_reason if ops is not None else None
            if reason is not None:  # the broker refused on the channel (no exchange...)
                _fail(again, str(reason))
            elif state.outstanding:
                _fail(again, "no confirm from the broker in time")
                _give_up(results, "no confirm from the broker in time")
            conn.close()
            return results
        # lost: everything unconfirmed is in ``again``; connect to another node
        log.warning("send.reconnecting", unconfirmed=len(again))
        reconnected = await _reconnect(amqp_url, node, give_up_after)
        if reconnected is None:
            _fail(again, f"connection lost, no node answered in {give_up_after:g}s")
            return results
        conn, closed = reconnected


async def _publish_again(
    publisher: ConfirmingPublisher,
    names: Names,
    state: _SendState,
    returned: set[str],
    again: deque[_Outgoing],
    ops: ChannelOps,
    closed: asyncio.Future[BaseException],
) -> None:
    """Publish what was lost with a connection or nacked, each once its pause is over."""
    pending = sorted(again, key=lambda o: o.due)
    again.clear()
    for n, out in enumerate(pending):
        wait = out.due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await state.space()
        if closed.done():
            again.extend(pending[n:])
            return
        _publish(publisher, names, out, state, returned, again, ops)


def _fail(outs: Iterable[_Outgoing], why: str) -> None:
    for out in outs:
        out.result.error = why


class _SendState:
    """The window of unconfirmed publishes, across connections."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.outstanding = 0
        self.changed = asyncio.Event()

    async def space(self) -> None:
        while self.outstanding >= self.window:
            self.changed.clear()
            await self.changed.wait()

    def done_one(self) -> None:
        self.outstanding -= 1
        self.changed.set()

    async def settled(self, closed: asyncio.Future[BaseException], within: float) -> None:
        """Until nothing is outstanding, the connection closes, or ``within`` s pass idle."""
        while self.outstanding and not closed.done():
            self.changed.clear()
            waiter = asyncio.ensure_future(self.changed.wait())
            done, _ = await asyncio.wait(
                {waiter, closed}, timeout=within, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if not done:
                return


def _publish(
    publisher: ConfirmingPublisher,
    names: Names,
    out: _Outgoing,
    state: _SendState,
    returned: set[str],
    again: deque[_Outgoing],
    ops: ChannelOps,
) -> None:
    result = out.result

    def settle(ok: bool) -> None:
        state.done_one()
        if not ok and (ops.closed_reason is not None or not ops.channel.is_open):
            again.append(out)  # lost with the channel: publish it again on the next one
            return
        result.returned = result.message_id in returned
        if not ok and not result.returned:  # nacked: again after a pause (send_bodies)
            now = time.monotonic()
            out.nacked_since = out.nacked_since or now
            out.due = now + min(0.2 * 2 ** min(round(now - out.nacked_since), 4), 2.0)
            again.append(out)
            return
        result.ok = ok and not result.returned
        result.confirmed_at = time.time()

    state.outstanding += 1
    try:
        publisher.publish(
            names.ingress_exchange, out.routing_key, out.body, out.properties, settle, True
        )
    except Exception:  # pika: the channel closed under us; keep the message for the next
        state.done_one()
        again.append(out)
        raise


def _give_up(results: list[SendResult], why: str) -> None:
    for result in results:
        if not result.ok and not result.returned and not result.error:
            result.error = why


def _node(conn: Any) -> str:
    params = conn.params
    return f"{params.host}:{params.port}"


async def _reconnect(
    amqp_url: str, lost: str | None, within: float
) -> tuple[Any, asyncio.Future[BaseException]] | None:
    """A connection to some node (the lost one last), retried with backoff for ``within`` s."""
    avoid = next((u for u in node_urls(amqp_url) if where(u) == lost), None)
    deadline = time.monotonic() + within
    delay = 0.2
    while True:
        try:
            return await connect(amqp_url, name="dvcbus-send", avoid=avoid)
        except AccessRefused:
            raise
        except BrokerError as exc:
            if time.monotonic() + delay > deadline:
                log.error("send.no_node", error=str(exc))
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
