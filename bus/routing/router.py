"""The router process: ingress queue → decide → confirmed copies (or a dead letter) → ack.

Every copy carries the router's stamp (``bus.broker.stamp``), without which the dispatcher
delivers nothing: the proof that this copy was validated, authorised and routed.

An ingress message is acknowledged only after the broker has confirmed every copy of it
(or its dead letter); until then a crash simply hands it to the next router. Confirms are
pipelined, never awaited one by one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from pika import BasicProperties
from pika.adapters.asyncio_connection import AsyncioConnection

from bus.broker.acks import IngressAcks
from bus.broker.connection import ChannelOps, Supervisor
from bus.broker.copy_encoding import CopyEncoder
from bus.broker.publisher import ConfirmingPublisher
from bus.broker.stamp import StampKey, body_digest, seal
from bus.broker.topology import Names, Topology, declare
from bus.broker.wire import Header, dead_letter_properties, replay_of, route_headers
from bus.observability.hops import Event, Hop, Hops, Stage
from bus.routes import RoutingTable
from bus.routing.identity import Identities, Verdict, dead_letter_sender
from bus.routing.pipeline import Forward, Park, RouterPipeline

log = structlog.get_logger("bus.router")
STAGE = Stage.ROUTER  # bound once: read for every message
_SENDER = Header.SENDER.value


class RouterStats:
    """Counts since start, for the shutdown summary (metrics come from the metrics module)."""

    __slots__ = ("consumed", "copies", "errors", "forwarded", "parked")

    def __init__(self) -> None:
        self.consumed = self.forwarded = self.copies = self.parked = self.errors = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Router:
    """Consumes the ingress queue and routes every message, or parks it with a reason."""

    def __init__(
        self,
        pipeline: RouterPipeline,
        names: Names,
        topology: Topology,
        *,
        hops: Hops,
        stamp_key: StampKey,
        amqp_url: str,
        identities: Identities | None = None,
        prefetch: int = 1000,
        reconnect_delay_max: float = 10.0,
        shutdown_grace: float = 20.0,
        name: str = "dvcbus-router",
    ) -> None:
        self.pipeline = pipeline
        self.identities = identities  # None: ingress_identity = "off"
        self.hops = hops
        self.stamp_key = stamp_key
        self.names = names
        self.topology = topology
        self.prefetch = prefetch
        self.shutdown_grace = shutdown_grace
        self.stats = RouterStats()
        self.supervisor = Supervisor(
            amqp_url, name, self._setup, self._teardown, max_delay=reconnect_delay_max
        )
        self._publisher: ConfirmingPublisher | None = None
        self._acks: IngressAcks | None = None
        self._consumer: tuple[ChannelOps, str] | None = None

    async def run(self) -> None:
        await self.supervisor.run()

    async def _setup(self, conn: AsyncioConnection) -> None:
        setup_ops = await ChannelOps.open(conn)
        await declare(setup_ops, self.topology)
        await setup_ops.close()
        publisher = await ConfirmingPublisher.open(await ChannelOps.open(conn))
        consumer = await ChannelOps.open(conn)
        await consumer.qos(self.prefetch)
        acks = IngressAcks(
            consumer.channel,
            before_ack=self.hops.sync,  # hops before acks
            call_later=asyncio.get_running_loop().call_later,  # a refused copy's message waits
        )
        publisher.after_confirm = acks.flush
        self._publisher, self._acks = publisher, acks
        tag = await consumer.call(
            consumer.channel.basic_consume, self.names.ingress_queue, self._on_message
        )
        self._consumer = (consumer, tag.method.consumer_tag)
        log.info("router.ready", queue=self.names.ingress_queue, prefetch=self.prefetch)

    def _teardown(self) -> None:
        self._publisher = None
        self._acks = None
        self._consumer = None

    def _on_message(self, _ch: Any, method: Any, props: BasicProperties, body: bytes) -> None:
        acks, publisher = self._acks, self._publisher
        if acks is None or publisher is None:
            return  # connection being torn down; the broker requeues it
        stats = self.stats
        stats.consumed += 1
        started = time.perf_counter()
        identities = self.identities
        verdict = (
            identities.identify(props.user_id, props.headers) if identities is not None else None
        )
        try:
            decision = self.pipeline.decide(body, verdict)
        except Exception:
            stats.errors += 1
            log.exception("router.decide_failed", delivery_tag=method.delivery_tag)
            acks.fail(method.delivery_tag, props.headers)
            return
        dead_id = replay_of(props.headers)
        if dead_id is not None:
            self._taken_up(decision, dead_id, body)
        if type(decision) is Forward:
            parked = decision.parked  # a copy with no target (a payment's agency copy)
            publishes = len(decision.targets) + (parked is not None)
            pending = acks.track(method.delivery_tag, publishes, props.headers)
            if parked is not None:
                self._publish_dead(parked, props, body, publisher, pending.settle, verdict)
            shared = route_headers(decision.routes, decision.unit_notes)
            exchange = self.names.deliver_exchange
            message_id = decision.message_id
            copies = CopyEncoder(message_id, decision.message_type, shared, int(time.time()))
            key, digest = self.stamp_key, body_digest(decision.body)
            for target in decision.targets:
                copy_props = copies.copy(target, seal(key, message_id, target, digest))
                publisher.publish(exchange, target, decision.body, copy_props, pending.settle)
            stats.forwarded += 1
            stats.copies += len(decision.targets)
            if parked is not None:
                self._parked_hop(parked, started, body)
            self.hops.emit(
                Hop(
                    Event.ROUTED,
                    STAGE,
                    decision.message_id,
                    decision.message_type,
                    decision.dossier_no,
                    targets=decision.targets,
                    detail="; ".join(decision.unit_notes) or None,
                    duration=time.perf_counter() - started,
                    body=decision.body,
                    body_sha256=digest,
                    status=decision.status,
                )
            )
        else:
            self._park(decision, method.delivery_tag, props, body, acks, publisher, verdict)
            self._parked_hop(decision, started, body)

    def _parked_hop(self, decision: Park, started: float, body: bytes) -> None:
        self.hops.emit(
            Hop(
                Event.DEAD_LETTERED,
                STAGE,
                decision.message_id,
                decision.message_type,
                decision.dossier_no,
                reason=decision.reason.value,
                detail=decision.detail,
                duration=time.perf_counter() - started,
                body=body,
            )
        )

    def _taken_up(self, decision: Forward | Park, dead_id: Any, body: bytes) -> None:
        """A replayed dead letter is back: the operator's replay counted where it arrives.

        Refused again, the hop carries the reason: its identity is the sender's unvalidated
        text, masked in logs and the audit trail like the dead letter's (``shown_identity``).
        """
        self.hops.emit(
            Hop(
                Event.REPLAYED,
                STAGE,
                decision.message_id,
                decision.message_type,
                decision.dossier_no,
                reason=decision.reason.value if type(decision) is Park else None,
                detail=f"replay of dead letter {dead_id} taken up",
                body=body,
            )
        )

    def _park(
        self,
        decision: Park,
        tag: int,
        props: BasicProperties,
        body: bytes,
        acks: IngressAcks,
        publisher: ConfirmingPublisher,
        verdict: Verdict | None = None,
    ) -> None:
        self.stats.parked += 1
        pending = acks.track(tag, 1, props.headers)
        self._publish_dead(decision, props, body, publisher, pending.settle, verdict)

    def _publish_dead(
        self,
        decision: Park,
        props: BasicProperties,
        body: bytes,
        publisher: ConfirmingPublisher,
        settle: Any,
        verdict: Verdict | None = None,
    ) -> None:
        headers = dict(props.headers or {})
        if self.identities is not None:
            # The dead letter names only a sender the router established: an operator's
            # replay keeps this header, and the router trusts it from the operators' user.
            headers.pop(_SENDER, None)
            sender = dead_letter_sender(verdict)
            if sender is not None:
                headers[_SENDER] = sender
        dl_props = dead_letter_properties(
            decision.reason,
            decision.detail,
            stage=STAGE,
            original=props,
            headers=headers,
            message_id=decision.message_id,
            message_type=decision.message_type,
        )
        publisher.publish(self.names.dead_exchange, "", body, dl_props, settle)

    async def apply(
        self, table: RoutingTable, topology: Topology, identities: Identities | None
    ) -> None:
        """Use new routes (and senders.yaml) from the next message on; declare what they add
        (new target queues)."""
        conn = self.supervisor.connection
        if conn is not None and conn.is_open:
            ops = await ChannelOps.open(conn)
            await declare(ops, topology)
            await ops.close()
        self.topology = topology
        self.pipeline.table = table
        self.pipeline.payments.report_unreadable_secrets()
        self.identities = identities

    async def stop(self) -> None:
        """Stop consuming, let in-flight copies be confirmed and acked, then disconnect."""
        self.supervisor.stop()
        if self._consumer is not None:
            ops, consumer_tag = self._consumer
            if ops.channel.is_open:
                ops.channel.basic_cancel(consumer_tag)
        deadline = time.monotonic() + self.shutdown_grace
        while self._acks is not None and self._acks.outstanding and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self.supervisor.close()
        log.info("router.stopped", **self.stats.as_dict())
