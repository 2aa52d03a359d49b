"""The dispatcher process: delivery queues → adapter → ack, or a dead letter with the reason.

Each target has its own channel whose prefetch is the target's concurrency, so a slow
agency holds only its own messages in flight and never slows the others. An adapter's
outcome decides the message's fate; an adapter that raises instead of answering is a bug
and the message goes back to its queue, where the broker's delivery limit parks it as
poison if it keeps crashing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from pika import BasicProperties
from pika.adapters.asyncio_connection import AsyncioConnection

from adapters.base import Adapter, Delivered, Outcome, PermanentFailure, TransientFailure
from bus import dead_letters
from bus.amqp import ChannelOps, Supervisor
from bus.envelope import Message
from bus.hops import Event, Hop, Hops
from bus.publisher import ConfirmingPublisher
from bus.rejections import Reason
from bus.topology import Names, Topology, declare

log = structlog.get_logger("bus.dispatcher")


@dataclass(slots=True)
class TargetLane:
    """One target's adapter, channel and counters."""

    name: str
    adapter: Adapter
    concurrency: int
    deadline: float  # seconds an adapter call may take before it is abandoned as transient
    ops: ChannelOps | None = None
    consumer_tag: str | None = None
    in_flight: int = 0
    delivered: int = 0
    failed: int = 0


class Dispatcher:
    """Delivers each target's queue through that target's adapter."""

    def __init__(
        self,
        lanes: dict[str, TargetLane],
        names: Names,
        topology: Topology,
        *,
        hops: Hops,
        amqp_url: str,
        reconnect_delay_max: float = 10.0,
        shutdown_grace: float = 20.0,
        name: str = "dvcbus-dispatcher",
    ) -> None:
        self.lanes = lanes
        self.hops = hops
        self.names = names
        self.topology = topology
        self.shutdown_grace = shutdown_grace
        self.supervisor = Supervisor(
            amqp_url, name, self._setup, self._teardown, max_delay=reconnect_delay_max
        )
        self._publisher: ConfirmingPublisher | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        for lane in self.lanes.values():
            await lane.adapter.start()
        try:
            await self.supervisor.run()
        finally:
            for lane in self.lanes.values():
                await lane.adapter.close()

    async def _setup(self, conn: AsyncioConnection) -> None:
        setup_ops = await ChannelOps.open(conn)
        await declare(setup_ops, self.topology)
        await setup_ops.close()
        self._publisher = await ConfirmingPublisher.open(await ChannelOps.open(conn))
        for lane in self.lanes.values():
            ops = await ChannelOps.open(conn)
            await ops.qos(lane.concurrency)
            frame = await ops.call(
                ops.channel.basic_consume,
                self.names.delivery_queue(lane.name),
                self._consumer_for(lane),
            )
            lane.ops, lane.consumer_tag = ops, frame.method.consumer_tag
        log.info("dispatcher.ready", targets=sorted(self.lanes))

    def _teardown(self) -> None:
        self._publisher = None
        for lane in self.lanes.values():
            lane.ops = None
            lane.consumer_tag = None

    def _consumer_for(self, lane: TargetLane) -> Any:
        def on_message(ch: Any, method: Any, props: BasicProperties, body: bytes) -> None:
            task = asyncio.ensure_future(self._deliver(lane, ch, method.delivery_tag, props, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return on_message

    async def _deliver(
        self, lane: TargetLane, ch: Any, tag: int, props: BasicProperties, body: bytes
    ) -> None:
        lane.in_flight += 1
        started = time.perf_counter()
        try:
            message = Message.from_doc(orjson.loads(body), body)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            # The router validated it; reaching here means someone published around the router.
            outcome: Outcome = PermanentFailure(f"not a canonical message: {exc}")
            message = None
        else:
            try:
                outcome = await asyncio.wait_for(lane.adapter.deliver(message), lane.deadline)
            except TimeoutError:
                outcome = TransientFailure(
                    f"no outcome within {lane.deadline:.0f}s (adapter deadline)"
                )
            except Exception:
                lane.in_flight -= 1
                log.exception(
                    "dispatcher.adapter_crashed", target=lane.name, message_id=props.message_id
                )
                if ch.is_open:
                    ch.basic_nack(tag, requeue=True)
                return
        elapsed = time.perf_counter() - started
        try:
            if isinstance(outcome, Delivered):
                lane.delivered += 1
                if ch.is_open:
                    ch.basic_ack(tag)
                self.hops.emit(
                    Hop(
                        Event.DELIVERED,
                        "dispatcher",
                        props.message_id,
                        props.type,
                        message.correlation_id if message else None,
                        target=lane.name,
                        duration=elapsed,
                        reference=outcome.reference,
                        body=body,
                    )
                )
            else:
                lane.failed += 1
                await self._park(lane, ch, tag, props, body, outcome, message, elapsed)
        finally:
            lane.in_flight -= 1

    async def _park(
        self,
        lane: TargetLane,
        ch: Any,
        tag: int,
        props: BasicProperties,
        body: bytes,
        outcome: PermanentFailure | TransientFailure,
        message: Message | None,
        elapsed: float,
    ) -> None:
        """Until retries exist, every failure ends as a dead letter with its reason."""
        reason = (
            Reason.REJECTED if isinstance(outcome, PermanentFailure) else Reason.DELIVERY_FAILED
        )
        dl_props = dead_letters.properties(
            reason, outcome.reason, stage="dispatcher", original=props, target=lane.name
        )
        publisher = self._publisher
        ok = publisher is not None and await publisher.publish_and_wait(
            self.names.dead_exchange, "", body, dl_props
        )
        if not ch.is_open:
            return
        if ok:
            ch.basic_ack(tag)
            self.hops.emit(
                Hop(
                    Event.DEAD_LETTERED,
                    "dispatcher",
                    props.message_id,
                    props.type,
                    message.correlation_id if message else None,
                    target=lane.name,
                    reason=reason.value,
                    detail=outcome.reason,
                    duration=elapsed,
                    body=body,
                )
            )
        else:
            ch.basic_nack(tag, requeue=True)

    async def stop(self) -> None:
        """Stop taking messages, finish those in flight (bounded), then disconnect."""
        self.supervisor.stop()
        for lane in self.lanes.values():
            if lane.ops is not None and lane.ops.channel.is_open and lane.consumer_tag:
                lane.ops.channel.basic_cancel(lane.consumer_tag)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.shutdown_grace)
        await self.supervisor.close()
        log.info(
            "dispatcher.stopped",
            delivered={n: lane.delivered for n, lane in self.lanes.items()},
            failed={n: lane.failed for n, lane in self.lanes.items()},
        )
