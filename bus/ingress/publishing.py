"""The gateway's publishes to the ingress exchange: confirmed, mandatory, pipelined.

A publish counts only when the broker confirmed it and did not return it: a confirm says
the message is in every queue it was routed to, and ``mandatory`` makes "routed to no queue"
a return (which arrives before the confirm of the same publish) instead of a silent ack. A
nack (the ingress queue is full: ``x-overflow: reject-publish``), a return, a lost channel
or no confirm in time is :class:`BrokerUnavailable`, and the sender hears 503.

Publishes share one confirm-mode channel and are settled by the broker's (batched) confirms
through :class:`bus.broker.publisher.ConfirmingPublisher`: a request awaits its own confirm
and never another's. The connection is kept by a :class:`bus.broker.connection.Supervisor`,
as the router's is.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import structlog
from pika.adapters.asyncio_connection import AsyncioConnection

from bus.broker.connection import ChannelOps, Supervisor
from bus.broker.publisher import ConfirmingPublisher
from bus.broker.sending import user_of
from bus.broker.topology import Names
from bus.ingress.publish_properties import GatewayProperties

log = structlog.get_logger("bus.ingress.publishing")


class BrokerUnavailable(Exception):
    """The broker did not take the message; ``why`` is for the sender and the audit trail."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class IngressPublisher:
    """Publishes senders' messages to the ingress exchange for the gateway."""

    def __init__(
        self,
        amqp_url: str,
        names: Names,
        *,
        confirm_timeout: float = 10.0,
        reconnect_delay_max: float = 10.0,
        name: str = "dvcbus-gateway",
    ) -> None:
        self.names = names
        # Every publish carries the gateway's own user as user_id (the broker checks it):
        # the router trusts x-dvcbus-sender from that user only.
        self.user_id = user_of(amqp_url)
        self._properties = GatewayProperties(self.user_id)  # encoded once per (type, sender)
        self.confirm_timeout = confirm_timeout
        self.supervisor = Supervisor(
            amqp_url, name, self._setup, self._teardown, max_delay=reconnect_delay_max
        )
        self._publisher: ConfirmingPublisher | None = None
        self._returned: Counter[str] = Counter()
        self._unconfirmed_since: float | None = None  # a confirm timed out and none came since

    async def run(self) -> None:
        await self.supervisor.run()

    async def _setup(self, conn: AsyncioConnection) -> None:
        check = await ChannelOps.open(conn)
        # The router declares the topology; the gateway only needs the exchange to exist
        # (a passive declare fails NOT_FOUND and the supervisor retries until it does).
        await check.call(
            check.channel.exchange_declare, exchange=self.names.ingress_exchange, passive=True
        )
        await check.close()
        ops = await ChannelOps.open(conn)
        publisher = await ConfirmingPublisher.open(ops)
        ops.channel.add_on_return_callback(self._on_return)
        ops.channel.add_on_close_callback(lambda _ch, reason: self._channel_lost(conn, reason))
        publisher.after_confirm = self._confirmed
        self._publisher = publisher
        self._unconfirmed_since = None
        log.info("gateway.publisher_ready", exchange=self.names.ingress_exchange)

    def _channel_lost(self, conn: AsyncioConnection, reason: Any) -> None:
        """The broker closed the publishing channel (e.g. the exchange was deleted) while the
        connection lives on: close the connection too, so the supervisor reconnects and sets
        up again (waiting for the exchange), rather than refusing every request from now on."""
        self._publisher = None
        if self.supervisor.stopping or conn.is_closing or conn.is_closed:
            return
        log.warning("gateway.channel_lost", reason=str(reason))
        conn.close()

    def _teardown(self) -> None:
        self._publisher = None
        self._returned.clear()

    def _on_return(self, _channel: Any, _method: Any, properties: Any, _body: bytes) -> None:
        if properties.message_id:
            self._returned[properties.message_id] += 1

    def _confirmed(self) -> None:
        self._unconfirmed_since = None

    @property
    def ready(self) -> bool:
        """Connected, and confirms flowing (no confirm overdue since the last one came)."""
        return (
            self.supervisor.ready.is_set()
            and self._publisher is not None
            and self._unconfirmed_since is None
        )

    @property
    def in_flight(self) -> int:
        publisher = self._publisher
        return publisher.in_flight if publisher is not None else 0

    async def publish(self, body: bytes, message_id: str, message_type: str, sender: str) -> None:
        """Return once the broker holds the message; else raise :class:`BrokerUnavailable`."""
        publisher = self._publisher
        if publisher is None or not publisher.ops.channel.is_open:
            raise BrokerUnavailable("the gateway is not connected to the broker")
        loop = asyncio.get_running_loop()
        verdict: asyncio.Future[str] = loop.create_future()
        returned = self._returned

        def settle(ok: bool) -> None:
            if returned.get(message_id):
                returned[message_id] -= 1
                if not returned[message_id]:
                    del returned[message_id]
                outcome = "returned"
            else:
                outcome = "confirmed" if ok else "nacked"
            if not verdict.done():
                verdict.set_result(outcome)

        try:
            publisher.publish(
                self.names.ingress_exchange,
                message_type,
                body,
                self._properties(message_id, message_type, sender),
                settle,
                mandatory=True,
            )
        except Exception as exc:  # pika: the channel or connection closed under us
            raise BrokerUnavailable(f"the broker connection failed: {type(exc).__name__}") from None
        # One timer per publish, cancelled by the confirm (cheaper than wait_for + shield,
        # which this path paid on every request); a late confirm finds the verdict done.
        timer = loop.call_later(self.confirm_timeout, _expire, verdict)
        try:
            outcome = await verdict
        finally:
            timer.cancel()
        if outcome == "timeout":
            if self._unconfirmed_since is None:
                self._unconfirmed_since = time.monotonic()
            raise BrokerUnavailable(f"the broker did not confirm within {self.confirm_timeout:g}s")
        if outcome == "returned":
            raise BrokerUnavailable("no queue is bound to the ingress exchange for this type")
        if outcome == "nacked":
            reason = publisher.ops.closed_reason
            raise BrokerUnavailable(
                "the broker refused it (ingress queue full)"
                if reason is None
                else "the broker connection was lost before it confirmed"
            )

    async def stop(self) -> None:
        """Stop reconnecting, let pending confirms arrive (bounded), then disconnect."""
        self.supervisor.stop()
        deadline = time.monotonic() + self.confirm_timeout
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await self.supervisor.close()


def _expire(verdict: asyncio.Future[str]) -> None:
    if not verdict.done():
        verdict.set_result("timeout")
