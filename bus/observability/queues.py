"""Queue depths from the broker: a periodic passive declare of every bus queue, off the hot path.

The poller has its own AMQP connection and channel, so a slow or failed poll never touches
the router's or dispatcher's traffic, and its failures are counted and logged (once per
outage), never raised: a process must not stop delivering because it cannot measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from pika.adapters.asyncio_connection import AsyncioConnection

from bus.broker.connection import BrokerError, ChannelOps, connect
from bus.broker.topology import Names, Topology
from bus.observability.metrics import Metrics

log = structlog.get_logger("bus.observability.queues")

CALL_TIMEOUT = 5.0


def queue_labels(names: Names, queue: str) -> tuple[str, str]:
    """(queue, target) labels of a queue: ``deliver.hanoi`` → ("deliver.hanoi", "hanoi")."""
    prefix = f"{names.namespace}."
    short = queue[len(prefix) :] if queue.startswith(prefix) else queue
    deliver = names.delivery_queue("")
    target = queue[len(deliver) :] if queue.startswith(deliver) else ""
    return short, target


class QueueDepthPoller:
    """Every ``interval`` seconds, reads message and consumer counts of the topology's queues."""

    def __init__(
        self,
        amqp_url: str,
        names: Names,
        topology: Topology,
        metrics: Metrics,
        *,
        interval: float = 5.0,
        name: str = "dvcbus-metrics",
    ) -> None:
        self.amqp_url = amqp_url
        self.names = names
        self.queues = [q.name for q in topology.queues]
        self.metrics = metrics
        self.interval = interval
        self.name = name
        self._stopping = asyncio.Event()
        self._conn: AsyncioConnection | None = None
        self._failing = False

    def use_topology(self, topology: Topology) -> None:
        """Poll the queues of new routes from the next poll on (a routes reload).

        Queues no longer in the topology (a removed target's) are no longer read; their
        depth and consumer series are dropped rather than left at their last value.
        """
        queues = [q.name for q in topology.queues]
        for queue in set(self.queues) - set(queues):
            short, target = queue_labels(self.names, queue)
            self.metrics.drop(self.metrics.queue_messages, short, target)
            self.metrics.drop(self.metrics.queue_consumers, short, target)
            if target:
                self.metrics.estimate.queue_depth.pop(target, None)
        self.queues = queues

    async def run(self) -> None:
        """Poll until :meth:`stop`; never raises (failures are counted and logged)."""
        while not self._stopping.is_set():
            try:
                await self._poll_connected()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc)
            finally:
                self._close()
            await self._sleep(self.interval)

    async def _poll_connected(self) -> None:
        conn, closed = await asyncio.wait_for(
            connect(self.amqp_url, name=self.name), CALL_TIMEOUT * 2
        )
        self._conn = conn
        ops: ChannelOps | None = None
        while not self._stopping.is_set() and not closed.done():
            if ops is None or ops.closed_reason is not None or not ops.channel.is_open:
                ops = await asyncio.wait_for(ChannelOps.open(conn), CALL_TIMEOUT)
            ops = await self.poll_once(conn, ops)
            await self._sleep(self.interval)
        if closed.done():
            raise BrokerError(f"connection closed: {closed.result()}")

    async def poll_once(self, conn: AsyncioConnection, ops: ChannelOps) -> ChannelOps:
        """Read every queue once; a missing queue (404 closes the channel) is skipped."""
        metrics, estimate = self.metrics, self.metrics.estimate
        missing = 0
        for queue in self.queues:
            try:
                frame = await asyncio.wait_for(
                    ops.call(ops.channel.queue_declare, queue=queue, passive=True), CALL_TIMEOUT
                )
            except BrokerError:
                if conn.is_closed or conn.is_closing:
                    raise
                missing += 1  # not declared yet (or deleted): the channel is gone, open another
                ops = await asyncio.wait_for(ChannelOps.open(conn), CALL_TIMEOUT)
                continue
            short, target = queue_labels(self.names, queue)
            depth = frame.method.message_count
            metrics.queue_messages.labels(short, target).set(depth)
            metrics.queue_consumers.labels(short, target).set(frame.method.consumer_count)
            if target:
                estimate.queue_depth[target] = depth
        with contextlib.suppress(Exception):  # sample in-flight between scrapes too
            metrics.refresh()
        if missing:
            metrics.queue_poll_failures.inc()
        else:
            metrics.queue_polled.set(time.time())
            if self._failing:
                log.info("metrics.queue_poll_recovered")
                self._failing = False
        return ops

    def _failed(self, exc: BaseException) -> None:
        self.metrics.queue_poll_failures.inc()
        if not self._failing:
            log.warning("metrics.queue_poll_failed", error=str(exc) or type(exc).__name__)
            self._failing = True

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed and not conn.is_closing:
            with contextlib.suppress(Exception):
                conn.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def stop(self) -> None:
        self._stopping.set()
        self._close()
