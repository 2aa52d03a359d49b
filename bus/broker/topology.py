"""The broker topology, planned from routes.yaml and declared idempotently at start.

Exchanges and queues are named under a namespace (``bus`` by default) so that a demo or a
test run can live beside production on one broker without touching it.

    {ns}.ingress   topic exchange  -> {ns}.ingress queue (quorum)
    {ns}.deliver   direct exchange -> {ns}.deliver.<target> queues (quorum), key = target
                   alternate exchange {ns}.unrouted -> {ns}.dead (a copy with no queue is parked)
    {ns}.dead      fanout exchange -> {ns}.dead queue (quorum): every dead letter
    {ns}.retry.<wait>  fanout exchange -> queue of the same name (quorum, message TTL = wait),
                   dead-lettering expired messages back to {ns}.deliver with their routing
                   key (the target): the delay tiers of retries, shared by all targets

Every work queue dead-letters (delivery limit reached) to {ns}.dead with at-least-once
dead-lettering, which RabbitMQ only honours together with ``x-overflow: reject-publish``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bus.broker.connection import BrokerError, ChannelOps, FatalSetupError
from bus.broker.nodes import blocking_connection
from bus.delivery.retry import tier_name


@dataclass(frozen=True, slots=True)
class Names:
    """Exchange and queue names of one namespace."""

    namespace: str = "bus"

    @property
    def ingress_exchange(self) -> str:
        return f"{self.namespace}.ingress"

    @property
    def ingress_queue(self) -> str:
        return f"{self.namespace}.ingress"

    @property
    def deliver_exchange(self) -> str:
        return f"{self.namespace}.deliver"

    @property
    def unrouted_exchange(self) -> str:
        return f"{self.namespace}.unrouted"

    @property
    def dead_exchange(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.namespace}.dead"

    def delivery_queue(self, target: str) -> str:
        return f"{self.namespace}.deliver.{target}"

    def retry_tier(self, seconds: float) -> str:
        """Exchange and queue of the delay tier that holds messages for ``seconds``."""
        return tier_name(self.namespace, seconds)


@dataclass(frozen=True, slots=True)
class Exchange:
    name: str
    kind: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Binding:
    queue: str
    exchange: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class Topology:
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    bindings: tuple[Binding, ...]


def work_queue_arguments(names: Names, delivery_limit: int) -> dict[str, Any]:
    """Arguments of a queue whose messages must never be lost, even when they turn poison."""
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": names.dead_exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-delivery-limit": delivery_limit,
    }


def plan(
    names: Names,
    delivery_limits: dict[str, int],
    ingress_delivery_limit: int,
    retry_waits: list[float] | tuple[float, ...] = (),
) -> Topology:
    """The topology for a set of targets (name -> delivery limit) and retry waits (seconds)."""
    exchanges = (
        Exchange(names.ingress_exchange, "topic"),
        Exchange(names.dead_exchange, "fanout"),
        Exchange(names.unrouted_exchange, "fanout"),
        Exchange(names.deliver_exchange, "direct", {"alternate-exchange": names.unrouted_exchange}),
    )
    queues = [
        Queue(names.ingress_queue, work_queue_arguments(names, ingress_delivery_limit)),
        Queue(names.dead_queue, {"x-queue-type": "quorum"}),
    ]
    bindings = [
        Binding(names.ingress_queue, names.ingress_exchange, "#"),
        Binding(names.dead_queue, names.dead_exchange, ""),
        Binding(names.dead_queue, names.unrouted_exchange, ""),
    ]
    for target, limit in sorted(delivery_limits.items()):
        queue = names.delivery_queue(target)
        queues.append(Queue(queue, work_queue_arguments(names, limit)))
        bindings.append(Binding(queue, names.deliver_exchange, target))
    tiers = []
    for wait in sorted(set(retry_waits)):
        tier = names.retry_tier(wait)
        tiers.append(Exchange(tier, "fanout"))
        queues.append(
            Queue(
                tier,
                {
                    "x-queue-type": "quorum",
                    "x-message-ttl": int(wait * 1000),
                    "x-dead-letter-exchange": names.deliver_exchange,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
        )
        bindings.append(Binding(tier, tier, ""))
    return Topology((*exchanges, *tiers), tuple(queues), tuple(bindings))


async def declare(ops: ChannelOps, topology: Topology) -> None:
    """Declare everything; re-declaring the same topology is a no-op for the broker.

    An exchange or queue that already exists with other arguments cannot be fixed by
    retrying: that is a :class:`FatalSetupError` naming it, and the process stops.
    """
    ch = ops.channel
    for ex in topology.exchanges:
        await _declare(
            ops,
            f"exchange {ex.name}",
            ch.exchange_declare,
            exchange=ex.name,
            exchange_type=ex.kind,
            durable=True,
            arguments=ex.arguments or None,
        )
    for q in topology.queues:
        await _declare(
            ops,
            f"queue {q.name}",
            ch.queue_declare,
            queue=q.name,
            durable=True,
            arguments=q.arguments,
        )
    for b in topology.bindings:
        await ops.call(ch.queue_bind, queue=b.queue, exchange=b.exchange, routing_key=b.routing_key)


async def _declare(ops: ChannelOps, what: str, method: Any, **kwargs: Any) -> None:
    try:
        await ops.call(method, **kwargs)
    except BrokerError as exc:
        if "PRECONDITION_FAILED" in str(exc):
            raise FatalSetupError(
                f"{what} exists on the broker with other settings than the bus needs "
                f"({kwargs.get('arguments') or kwargs.get('exchange_type')}): {exc}. "
                "Delete it (after moving its messages) or use another namespace."
            ) from None
        raise


def delete(amqp_url: str, topology: Topology) -> None:
    """Remove every queue and exchange of a topology (demo and test namespaces), messages too."""
    conn = blocking_connection(amqp_url, "dvcbus-topology-delete")
    try:
        ch = conn.channel()
        for q in topology.queues:
            ch.queue_delete(q.name)
        for ex in topology.exchanges:
            ch.exchange_delete(ex.name)
    finally:
        conn.close()
