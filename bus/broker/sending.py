"""Publishing messages to the bus's ingress with pipelined confirms (CLI ``send``, demo, tests).

A send counts as done only when the broker confirmed it *and* it reached a queue: messages
are published ``mandatory`` so that an ingress exchange with no queue behind it is an
error the sender sees, not a silent loss.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
import pika

from bus.broker.connection import ChannelOps, connect
from bus.broker.publisher import ConfirmingPublisher, Settle
from bus.broker.topology import Names
from bus.broker.wire import ingress_properties
from bus.contract.ids import uuid7


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
    return str(pika.URLParameters(amqp_url).credentials.username)


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


async def send_bodies(
    amqp_url: str,
    names: Names,
    bodies: Iterable[bytes],
    *,
    window: int = 1000,
    rate: float | None = None,
    headers: dict[str, str] | None = None,
) -> list[SendResult]:
    """Publish every body to the ingress exchange; return one result per body, in order.

    ``window`` bounds unconfirmed publishes; ``rate`` (messages/s) paces them for
    fixed-load measurements. Every message carries ``user_id``, the user of ``amqp_url``
    (the broker refuses another): the router knows the sender by it. ``headers``: on every
    message (the operators' tools name the sender they act for: ``x-dvcbus-sender``).
    """
    user_id = user_of(amqp_url)
    conn, _closed = await connect(amqp_url, name="dvcbus-send")
    try:
        ops = await ChannelOps.open(conn)
        publisher = await ConfirmingPublisher.open(ops)
        returned: set[str] = set()
        ops.channel.add_on_return_callback(
            lambda _ch, _m, props, _b: returned.add(props.message_id)
        )
        results: list[SendResult] = []
        space = asyncio.Semaphore(window)
        all_done = asyncio.Event()
        outstanding = 0
        started = time.perf_counter()

        def settle_for(result: SendResult) -> Settle:
            def settle(ok: bool) -> None:
                nonlocal outstanding
                result.ok = ok and result.message_id not in returned
                result.returned = result.message_id in returned
                if not ok:
                    result.error = str(ops.closed_reason or "the broker nacked it")
                result.confirmed_at = time.time()
                outstanding -= 1
                space.release()
                if outstanding == 0:
                    all_done.set()

            return settle

        for i, body in enumerate(bodies):
            if rate:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await space.acquire()
            mid = message_id_of(body)
            result = SendResult(message_id=mid, published_at=time.time())
            results.append(result)
            props = ingress_properties(mid, user_id)
            if headers:
                props.headers = dict(headers)
            outstanding += 1
            all_done.clear()
            publisher.publish(
                names.ingress_exchange,
                routing_key_of(body),
                body,
                props,
                settle_for(result),
                mandatory=True,
            )
        if outstanding:
            await asyncio.wait_for(all_done.wait(), 120)
        return results
    finally:
        conn.close()
