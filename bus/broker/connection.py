"""AMQP on asyncio: pika's callback API turned into awaitables for setup, plus reconnection.

``url`` may list several nodes of a cluster (bus/broker/nodes.py): a connection goes to the
first of them, in shuffled order, that answers; on loss the supervisor connects to another
(the lost one last), with backoff. A node shutting down closes its connections with
CONNECTION_FORCED (320): a reason to reconnect. Only refused credentials or permissions
(ACCESS_REFUSED, 403) and an unsafe topology are fatal: reconnecting cannot fix them.

The hot paths (router publish/ack, dispatcher ack) use pika's callbacks directly; only
connection set-up, declarations and QoS go through the awaitable helpers here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pika
import structlog
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel

from bus.broker import pika_tuning
from bus.broker.nodes import node_urls, shuffled, where
from bus.errors import BrokerError, FatalSetupError  # defined in the tree, still imported from here

log = structlog.get_logger("bus.amqp")
pika_tuning.apply()


def parameters(url: str, *, name: str) -> pika.URLParameters:
    """Connection parameters with a client name the broker's connection list shows."""
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": name, "product": "dvc-bus"}
    if "heartbeat" not in url:
        params.heartbeat = 30
    if "blocked_connection_timeout" not in url:
        params.blocked_connection_timeout = 300
    return params


class AccessRefused(FatalSetupError):
    """The broker refused the bus's credentials or permissions: an operator must fix them."""


def refused_access(error: BaseException | str) -> bool:
    """Whether a connection or channel error is the broker refusing credentials or rights."""
    if isinstance(
        error,
        pika.exceptions.ProbableAuthenticationError | pika.exceptions.ProbableAccessDeniedError,
    ):
        return True
    return "ACCESS_REFUSED" in str(error)


async def connect(
    url: str, *, name: str, avoid: str | None = None
) -> tuple[AsyncioConnection, asyncio.Future[BaseException]]:
    """Open a connection to one of the nodes of ``url`` (shuffled, ``avoid`` last); return it
    and a future that resolves with the reason it closed.

    Refused credentials are :class:`AccessRefused` at once (every node of a cluster has the
    same users); a node that does not answer sends the attempt on to the next.
    """
    errors = []
    for node in shuffled(url, avoid):
        try:
            return await _connect_one(node, name=name)
        except AccessRefused:
            raise
        except BrokerError as exc:
            errors.append(str(exc))
    if len(errors) == 1:
        raise BrokerError(errors[0])
    raise BrokerError("no node answered: " + "; ".join(errors))


async def _connect_one(
    url: str, *, name: str
) -> tuple[AsyncioConnection, asyncio.Future[BaseException]]:
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[AsyncioConnection] = loop.create_future()
    closed: asyncio.Future[BaseException] = loop.create_future()

    def on_open(conn: AsyncioConnection) -> None:
        if not opened.done():
            opened.set_result(conn)

    def on_open_error(_conn: AsyncioConnection, exc: BaseException | str) -> None:
        if not opened.done():
            kind = AccessRefused if refused_access(exc) else BrokerError
            opened.set_exception(kind(f"cannot connect to {_safe(url)}: {exc!r}"))

    def on_close(_conn: AsyncioConnection, exc: BaseException) -> None:
        if not opened.done():
            kind = AccessRefused if refused_access(exc) else BrokerError
            opened.set_exception(kind(f"connection to {_safe(url)} closed: {exc!r}"))
        if not closed.done():
            closed.set_result(exc)

    AsyncioConnection(
        parameters(url, name=name),
        on_open_callback=on_open,
        on_open_error_callback=on_open_error,
        on_close_callback=on_close,
        custom_ioloop=loop,
    )
    return await opened, closed


class ChannelOps:
    """Awaitable wrappers around one pika channel's callback-style methods.

    If the broker closes the channel (e.g. PRECONDITION_FAILED on a declaration), every
    pending operation fails with the broker's reply instead of waiting forever.
    """

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._pending: set[asyncio.Future[Any]] = set()
        self.closed_reason: BaseException | None = None
        channel.add_on_close_callback(self._on_close)

    @classmethod
    async def open(cls, conn: AsyncioConnection) -> ChannelOps:
        """Open a new channel on ``conn``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Channel] = loop.create_future()
        conn.channel(on_open_callback=fut.set_result)
        return cls(await asyncio.wait_for(fut, 30))

    def _on_close(self, _channel: Channel, reason: BaseException) -> None:
        self.closed_reason = reason
        for fut in list(self._pending):
            if not fut.done():
                fut.set_exception(BrokerError(str(reason)))
        self._pending.clear()

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a pika channel method that reports completion through ``callback=``."""
        if self.closed_reason is not None or not self.channel.is_open:
            raise BrokerError(f"channel closed: {self.closed_reason}")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.add(fut)

        def done(frame: Any) -> None:
            self._pending.discard(fut)
            if not fut.done():
                fut.set_result(frame)

        method(*args, callback=done, **kwargs)
        return await fut

    async def qos(self, prefetch: int) -> None:
        await self.call(self.channel.basic_qos, prefetch_count=prefetch)

    async def confirm(self, on_ack_nack: Callable[[Any], None]) -> None:
        await self.call(self.channel.confirm_delivery, on_ack_nack)

    async def close(self) -> None:
        if self.channel.is_open:
            with contextlib.suppress(Exception):
                self.channel.close()


class Supervisor:
    """Keeps a component connected: connect, set up, wait for loss, back off, repeat.

    ``setup(conn)`` declares and starts consuming; ``teardown()`` forgets per-connection
    state. Unacknowledged messages go back to their queue when a connection dies, so a
    reconnect loses nothing; it may redeliver, which idempotency downstream absorbs.
    """

    def __init__(
        self,
        url: str,
        name: str,
        setup: Callable[[AsyncioConnection], Awaitable[None]],
        teardown: Callable[[], None],
        *,
        max_delay: float = 10.0,
    ) -> None:
        self.url = url
        self.name = name
        self.setup = setup
        self.teardown = teardown
        self.max_delay = max_delay
        self.connection: AsyncioConnection | None = None
        self.node: str | None = None  # the node connected to (or last lost)
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Run until :meth:`stop` is called."""
        delay = 0.2
        while not self._stopping.is_set():
            try:
                conn, closed = await connect(self.url, name=self.name, avoid=self.node)
            except AccessRefused as exc:
                log.error("broker.access_refused", component=self.name, error=str(exc))
                raise
            except BrokerError as exc:
                log.warning(
                    "broker.unavailable", component=self.name, error=str(exc), retry_in=delay
                )
                await self._sleep(delay)
                delay = min(delay * 2, self.max_delay)
                continue
            self.connection = conn
            self.node = _node_of(conn, self.url)
            try:
                await self.setup(conn)
            except Exception as exc:
                hint = (
                    "the broker failed internally (see its log); on RabbitMQ 3.10 quorum queues "
                    "with at-least-once dead-lettering can stay broken until the broker's app is "
                    "restarted (rabbitmq-server#16652)"
                    if "INTERNAL_ERROR" in str(exc)
                    else None
                )
                log.error("broker.setup_failed", component=self.name, error=str(exc), hint=hint)
                self._close(conn)
                await closed
                self._lost()
                if isinstance(exc, FatalSetupError):
                    raise
                if refused_access(exc):
                    raise AccessRefused(f"{self.name}: {exc}") from None
                await self._sleep(delay)
                delay = min(delay * 2, self.max_delay)
                continue
            delay = 0.2
            self.ready.set()
            log.info("broker.connected", component=self.name, node=where(self.node))
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({closed, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not closed.done():
                return  # stopping: the caller closes the connection after draining
            log.warning(
                "broker.connection_lost",
                component=self.name,
                node=where(self.node),
                reason=str(closed.result()),
            )
            self._lost()
            await self._sleep(delay)

    def _lost(self) -> None:
        self.ready.clear()
        self.connection = None
        self.teardown()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def close(self) -> None:
        """Close the connection (after the component has drained its in-flight work)."""
        conn = self.connection
        if conn is not None and not conn.is_closed and not conn.is_closing:
            closed = asyncio.get_running_loop().create_future()
            conn.add_on_close_callback(lambda *_: closed.done() or closed.set_result(None))
            conn.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(closed, 10)
        self.connection = None

    @staticmethod
    def _close(conn: AsyncioConnection) -> None:
        if not conn.is_closed and not conn.is_closing:
            conn.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def _node_of(conn: AsyncioConnection, url: str) -> str:
    """Which URL of the list ``conn`` went to (by host and port)."""
    params = conn.params
    for node in node_urls(url):
        p = pika.URLParameters(node)
        if (p.host, p.port) == (params.host, params.port):
            return node
    return node_urls(url)[0]


def _safe(url: str) -> str:
    """The URL without its password, for logs and errors."""
    params = pika.URLParameters(url)
    return f"amqp://{params.host}:{params.port}"
