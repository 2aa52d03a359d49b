"""Moves dead letters from the broker's dead-letter queue into the store, where operators work.

Every dead letter — parked by the router, the dispatcher or the broker itself (poison) —
passes through ``{ns}.dead``; this consumer writes them to the store in batches and acks
them only after the commit, so a crash redelivers rather than loses one. From then on
``dvcbus dead list/show/replay/purge`` work on the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

import orjson
import structlog
from pika import BasicProperties
from pika.adapters.asyncio_connection import AsyncioConnection

from bus.broker.connection import ChannelOps, Supervisor
from bus.broker.topology import Names, Topology, declare
from bus.broker.wire import Header, last_death
from bus.contract.envelope import dossier_no_of
from bus.contract.rejections import Reason
from bus.delivery.retry import AttemptRecord
from bus.recovery import dead_letters
from bus.store import DeadLetter, Store

log = structlog.get_logger("bus.dead_letters")
BATCH = 200
BATCH_DELAY = 0.05


def delivery_limits(topology: Topology) -> dict[str, int]:
    """Each queue's ``x-delivery-limit``: a poison message was delivered one time more."""
    limits = {}
    for queue in topology.queues:
        limit = queue.arguments.get("x-delivery-limit")
        if isinstance(limit, int) and not isinstance(limit, bool):
            limits[queue.name] = limit
    return limits


def _poison_deliveries(headers: dict[str, Any], limits: dict[str, int]) -> tuple[str, int | None]:
    """(queue, how many times it was delivered there) for a message the broker dead-lettered.

    RabbitMQ 3.10 does not carry the count of the last delivery onto the dead letter (its
    ``x-delivery-count`` is the dead-letter queue's own); it dead-letters a message when it
    comes back after ``x-delivery-limit`` redeliveries, so it was delivered limit + 1 times.
    The queue is the one of the message's last death (``x-death`` counts deaths, not
    deliveries).
    """
    death = last_death(headers)
    queue = death.queue if death is not None and death.reason == "delivery_limit" else ""
    limit = limits.get(queue)
    return queue, None if limit is None else limit + 1


def to_dead_letter(
    props: BasicProperties, body: bytes, now: float, limits: dict[str, int] | None = None
) -> DeadLetter:
    """A dead letter as the store keeps it, from what the broker handed over.

    ``limits`` (queue -> delivery limit) lets a poison dead letter say how many times it was
    delivered without an outcome: its attempts are those and any failed ones before.
    """
    info = dead_letters.read(props)
    headers = dict(props.headers or {})
    record = AttemptRecord.from_headers(headers, now)
    attempts = int(record.history[-1].get("attempt", 0)) if record.history else 0
    detail = info.detail
    if info.reason == Reason.POISON.value:
        queue, deliveries = _poison_deliveries(headers, limits or {})
        if deliveries is not None:
            attempts += deliveries
            detail = (
                f"delivered {deliveries} times without an outcome: the adapter or the process "
                f"crashed each time (delivery limit {deliveries - 1} on {queue})"
            )
    dossier_no = None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        dossier_no = dossier_no_of(doc)
    dead_at = now
    stamp = headers.get(Header.DEAD_AT)
    if isinstance(stamp, bytes | str):
        with contextlib.suppress(ValueError):
            dead_at = datetime.fromisoformat(
                stamp.decode() if isinstance(stamp, bytes) else stamp
            ).timestamp()
    return DeadLetter(
        message_id=info.message_id,
        message_type=info.message_type,
        target=info.target,
        reason=info.reason,
        detail=detail,
        stage=info.stage,
        attempts=attempts,
        history=record.history,
        headers=_plain(headers),
        body=body,
        dead_at=dead_at,
        dossier_no=dossier_no,
    )


def _plain(value: Any) -> Any:
    """Headers as JSON-friendly values (the broker's x-death holds datetimes and bytes)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class DeadLetterRecorder:
    """Consumes ``{ns}.dead`` and stores every dead letter, acking after the commit."""

    def __init__(
        self,
        names: Names,
        topology: Topology,
        store: Store,
        *,
        amqp_url: str,
        reconnect_delay_max: float = 10.0,
    ) -> None:
        self.names = names
        self.topology = topology
        self.limits = delivery_limits(topology)
        self.store = store
        self.recorded = 0
        self.supervisor = Supervisor(
            amqp_url,
            "dvcbus-dead-letters",
            self._setup,
            self._teardown,
            max_delay=reconnect_delay_max,
        )
        self._batch: list[tuple[int, DeadLetter]] = []
        self._ops: ChannelOps | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def run(self) -> None:
        await self.supervisor.run()

    async def _setup(self, conn: AsyncioConnection) -> None:
        ops = await ChannelOps.open(conn)
        await declare(ops, self.topology)
        await ops.qos(BATCH * 2)
        self._ops = ops
        await ops.call(ops.channel.basic_consume, self.names.dead_queue, self._on_message)
        self._flusher = asyncio.ensure_future(self._flush_forever(ops))

    def _teardown(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        self._flusher = None
        self._ops = None
        self._batch.clear()  # unacked: the broker redelivers them

    def _on_message(self, _ch: Any, method: Any, props: BasicProperties, body: bytes) -> None:
        letter = to_dead_letter(props, body, time.time(), self.limits)
        self._batch.append((method.delivery_tag, letter))

    async def _flush_forever(self, ops: ChannelOps) -> None:
        while True:
            await asyncio.sleep(BATCH_DELAY)
            if self._batch:
                await self._flush(ops)

    async def _flush(self, ops: ChannelOps) -> None:
        batch, self._batch = self._batch, []
        try:
            await asyncio.to_thread(self.store.add_dead_letters, [dl for _, dl in batch])
        except Exception as exc:
            log.error("dead_letters.store_failed", error=str(exc), count=len(batch))
            if ops.channel.is_open:
                ops.channel.basic_nack(batch[-1][0], multiple=True, requeue=True)
            await asyncio.sleep(1.0)
            return
        self.recorded += len(batch)
        if ops.channel.is_open:
            ops.channel.basic_ack(batch[-1][0], multiple=True)

    async def stop(self) -> None:
        self.supervisor.stop()
        flusher, ops = self._flusher, self._ops
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher  # a flush in progress finishes its ack first
        if ops is not None and self._batch:
            await self._flush(ops)
        await self.supervisor.close()
        log.info("dead_letters.stopped", recorded=self.recorded)
