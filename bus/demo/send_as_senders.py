"""Sending the demo's planned messages the way each sender would, and reading the answers.

HTTP (``POST /v1/messages``), SOAP (``POST /v1/soap``) and the payment platform's callback go
to the gateway with aiohttp, each answer read in its own form (202 and the id, the SOAP
result or fault, the platform's ``errorCode``); AMQP is published by each sender's own
RabbitMQ user, ``user_id`` set, confirmed and ``mandatory``. A sender retries what the bus
asks it to retry later (429, 503, ``in_flight``: ``Retry-After``), as a real one would.
Each outcome keeps when its request started: the demo's latencies start there.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from lxml import etree

from adapters import safexml
from bus.broker.connection import ChannelOps, connect
from bus.broker.publisher import ConfirmingPublisher
from bus.broker.sending import routing_key_of, user_of
from bus.broker.topology import Names
from bus.broker.wire import ingress_properties
from bus.demo.senders import AMQP, CALLBACK, SOAP
from bus.demo.ways_in import Planned
from bus.demo.wire_forms import (
    SOAP_ACTION,
    SOAP_CONTENT_TYPE,
    platform_confirmation,
    soap_status_request,
)
from bus.ingress import payment_callback, soap_status

RETRY_LATER = frozenset({429, 503, 408})
MAX_ATTEMPTS = 5
MAX_WAIT = 5.0  # seconds: the demo does not wait longer than this for a Retry-After
_NS = f"{{{soap_status.NS}}}"


@dataclass(slots=True)
class Outcome:
    """What became of one planned message at the way in."""

    planned: Planned
    started: float = 0.0  # time.time() when its (first) request started, or its publish
    accepted: bool = False
    message_id: str = ""  # the id the bus holds it under (the callback derives its own)
    reason: str = ""  # why it was refused
    envelope: bytes = b""  # what the bus holds: the router decides on this
    attempts: int = 0


class SendAsSenders:
    """Open once, then :meth:`send` any number of planned messages concurrently."""

    def __init__(
        self, gateway_urls: list[str], amqp_url_of: Callable[[str], str], names: Names
    ) -> None:
        self.gateway_urls = [url.rstrip("/") for url in gateway_urls]  # taken in turn
        self._turn = 0
        self.amqp_url_of = amqp_url_of
        self.names = names
        self.session: aiohttp.ClientSession | None = None
        self._amqp: dict[str, _AmqpSender] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    async def __aenter__(self) -> SendAsSenders:
        connector = aiohttp.TCPConnector(limit=128)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        for sender in self._amqp.values():
            sender.close()

    async def send(self, p: Planned) -> Outcome:
        out = Outcome(p, started=time.time())
        if p.way == AMQP:
            await self._publish(p, out)
            return out
        path, body, sent = request_of(p)
        while True:
            out.attempts += 1
            status, headers, raw = await self._post(path, body, sent)
            retry = status in RETRY_LATER or (status == 409 and b"in_flight" in raw)
            if not retry or out.attempts >= MAX_ATTEMPTS:
                break
            await asyncio.sleep(min(float(headers.get("Retry-After", "1")), MAX_WAIT))
        if status == 0:  # no answer at all
            out.reason = str(_json(raw).get("reason"))
            return out
        read = {SOAP: _soap_answer, CALLBACK: _callback_answer}.get(p.way, _rest_answer)
        out.accepted, value = read(status, raw)
        if out.accepted:
            out.message_id = value
            out.envelope = _envelope(p, body)
        else:
            out.reason = value
        return out

    async def _post(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        assert self.session is not None
        self._turn += 1
        gateway = self.gateway_urls[self._turn % len(self.gateway_urls)]
        try:
            async with self.session.post(gateway + path, data=body, headers=headers) as resp:
                return resp.status, dict(resp.headers), await resp.read()
        except aiohttp.ClientError as exc:
            # No answer to read (the gateway may close on a body it refuses unread): the
            # message is not on the bus, and the summary says why it is not.
            reason = f"no answer ({type(exc).__name__})"
            return 0, {}, orjson.dumps({"reason": reason})

    async def _publish(self, p: Planned, out: Outcome) -> None:
        user = p.sender.amqp_user
        assert user is not None
        sender = self._amqp.get(user)
        if sender is None:
            async with self._opening.setdefault(user, asyncio.Lock()):
                sender = self._amqp.get(user)
                if sender is None:
                    sender = await _AmqpSender.open(self.amqp_url_of(user), self.names)
                    self._amqp[user] = sender
        out.started = time.time()
        out.attempts = 1
        out.accepted, out.reason = await sender.publish(p.body, p.message_id)
        if out.accepted:
            out.message_id, out.envelope = p.message_id, p.body


class _AmqpSender:
    """One sender's connection as its own broker user: confirmed, mandatory publishes."""

    def __init__(self, conn: Any, publisher: ConfirmingPublisher, user: str, names: Names):
        self.conn = conn
        self.publisher = publisher
        self.user = user
        self.names = names
        self.returned: set[str] = set()
        publisher.ops.channel.add_on_return_callback(
            lambda _ch, _m, props, _b: self.returned.add(props.message_id)
        )

    @classmethod
    async def open(cls, url: str, names: Names) -> _AmqpSender:
        conn, _closed = await connect(url, name="dvcbus-demo-sender")
        publisher = await ConfirmingPublisher.open(await ChannelOps.open(conn))
        return cls(conn, publisher, user_of(url), names)

    async def publish(self, body: bytes, message_id: str) -> tuple[bool, str]:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def settle(ok: bool) -> None:
            if not done.done():
                done.set_result(ok)

        self.publisher.publish(
            self.names.ingress_exchange,
            routing_key_of(body),
            body,
            ingress_properties(message_id, self.user),
            settle,
            mandatory=True,
        )
        ok = await asyncio.wait_for(done, 60)
        if message_id in self.returned:
            return False, "returned: no queue behind the ingress exchange"
        return ok, "" if ok else str(self.publisher.ops.closed_reason or "nacked")

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()


def request_of(p: Planned) -> tuple[str, bytes, dict[str, str]]:
    """Path, body and headers of the request its sender makes for ``p``."""
    headers = {"Authorization": f"Bearer {p.token}", "Content-Type": "application/json"}
    if p.way == SOAP:
        body = soap_status_request(orjson.loads(p.body), p.sender.id, p.token)
        return "/v1/soap", body, {"Content-Type": SOAP_CONTENT_TYPE, "SOAPAction": SOAP_ACTION}
    if p.way == CALLBACK:
        return (
            payment_callback.PATH,
            orjson.dumps(platform_confirmation(orjson.loads(p.body))),
            headers,
        )
    # As the Python client does (docs/ingress.md): a key per message, kept across its
    # retries, so a 503 or a lost answer retried is never a second message.
    headers["Idempotency-Key"] = str(uuid.uuid4())
    return "/v1/messages", p.body, headers


def _envelope(p: Planned, body: bytes) -> bytes:
    """The envelope the gateway published for request ``body``, converted here the way the
    gateway converts it (the router's decision is on what the bus holds)."""
    if p.way == SOAP:
        request = etree.fromstring(body)
        operation = request.find(f".//{_NS}{soap_status.OPERATION}")
        assert operation is not None
        return soap_status.envelope_of(operation, soap_status.bus_header(request[0], "traceparent"))
    if p.way == CALLBACK:
        return payment_callback.envelope_of(orjson.loads(body), p.sender.sources[0])[0]
    return p.body


def _rest_answer(status: int, raw: bytes) -> tuple[bool, str]:
    doc = _json(raw)
    if status == 202:
        return True, str(doc.get("id", ""))
    return False, str(doc.get("reason") or f"HTTP {status}")


def _callback_answer(status: int, raw: bytes) -> tuple[bool, str]:
    doc = _json(raw)
    if status == 200 and doc.get("errorCode") in (
        payment_callback.RECEIVED,
        payment_callback.RECEIVED_BEFORE,
    ):
        return True, str(doc.get("id", ""))
    return False, str(doc.get("reason") or f"HTTP {status} errorCode {doc.get('errorCode')}")


def _soap_answer(status: int, raw: bytes) -> tuple[bool, str]:
    try:
        root = safexml.parse(raw, max_bytes=1024 * 1024)
    except safexml.UnsafeXml:
        return False, f"HTTP {status}, not a SOAP answer"
    found = root.find(f".//{_NS}MaThongDiep")
    if status == 200 and found is not None:
        return True, (found.text or "").strip()
    reason = root.find(f".//{_NS}LyDo")
    return False, (reason.text or "").strip() if reason is not None else f"HTTP {status}"


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


async def send_planned(
    client: SendAsSenders, planned: list[Planned], *, rate: float | None, concurrency: int = 64
) -> list[Outcome]:
    """Send every planned message (``rate``: paced, messages/s); one outcome each, in order.

    Unchained messages go out ``concurrency`` at a time; each chain (a journey) in order,
    each message after the previous one's answer, as its systems would.
    """
    outcomes: list[Outcome | None] = [None] * len(planned)
    space = asyncio.Semaphore(concurrency)
    start = time.perf_counter()

    async def one(i: int) -> None:
        try:
            outcomes[i] = await client.send(planned[i])
        finally:
            space.release()

    async def chain(indexes: list[int]) -> None:
        for i in indexes:
            await space.acquire()
            await one(i)

    chains: dict[int, list[int]] = {}
    for n, p in enumerate(planned):
        if p.chain is not None:
            chains.setdefault(p.chain, []).append(n)
    # The chains run beside the rest from the start: their answers come one after another.
    tasks = [asyncio.create_task(chain(indexes)) for indexes in chains.values()]
    for n, p in enumerate(planned):
        if p.chain is not None:
            continue
        if rate:
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await space.acquire()
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    return [o for o in outcomes if o is not None]
