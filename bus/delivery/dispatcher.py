"""The dispatcher process: delivery queues → checks → adapter → ack, retry or dead letter.

Nothing reaches an adapter without the router's stamp (``bus.broker.stamp``): a copy
published around the router is dead-lettered ``unauthorised`` on arrival, before it is even
parsed.

Each target is a lane with its own channel (prefetch twice the target's concurrency: the
calls in flight, plus as many messages waiting for their record or their turn), circuit
breaker and rate limit, so a slow or failing agency holds only its own messages and never
slows the others. One message at one target goes through named steps, each decided by a
pure function of ``bus.delivery.steps`` and carried out here:

    duplicate?   already delivered to this target (store) → ack, ``duplicate_suppressed``
    status       against the last status delivered for the dossier here (one store read):
                 late → history (flagged) where the target keeps history, else record,
                 ack, ``superseded``; a step the lifecycle does not allow (statuses.yaml)
                 → dead letter ``invalid_transition``, or flagged where the route or
                 target says ``on_invalid_transition: forward``
    circuit      open → defer to a delay tier untouched (no attempt used), ack
    rate limit   wait for a token
    deliver      the adapter's one outcome (it must not raise; if it does, the message goes
                 back to its queue and the broker's delivery limit parks it as ``poison``)
    record       delivered → hop → store (committed, the hop journaled first) → ack
    recover      transient → next delay tier with the attempt recorded, or give up;
                 permanent or given up → dead letter with reason and history → ack

Every ack follows the work it confirms (store commit, or the broker's confirm of a retry or
dead-letter publish), so a crash at any point redelivers instead of losing; and the hop of
that work is in the process's hop journal before the ack is sent (``ChannelAcks``'s
``before_ack``; a delivery's before its record is committed), so no acked work is without
its audit record.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from pika import BasicProperties
from pika.adapters.asyncio_connection import AsyncioConnection

from adapters.base import Adapter, Outcome
from adapters.watchdog import Watchdog, tick_for
from bus.broker import wire
from bus.broker.acks import ChannelAcks
from bus.broker.connection import ChannelOps, Supervisor
from bus.broker.publisher import ConfirmingPublisher
from bus.broker.stamp import StampKey, body_digest, verify_digest
from bus.broker.topology import Names, Topology, declare
from bus.contract.envelope import STATUS_TYPE, SUBMITTED_TYPE, Message, status_of
from bus.contract.rejections import Reason
from bus.delivery import ordering, payment_ordering, steps
from bus.delivery.circuit import CLOSED, OPEN, CircuitBreaker
from bus.delivery.keylocks import KeyLocks
from bus.delivery.ratelimit import TokenBucket
from bus.delivery.retry import AttemptRecord
from bus.delivery.steps import (
    DeadLetter,
    Decision,
    Defer,
    Flag,
    HandBack,
    Record,
    RetryLater,
    RetryPlan,
    Supersede,
    Suppress,
)
from bus.observability.hops import Event, Hop, Hops
from bus.routes.lifecycle import Lifecycle
from bus.store import DELIVERED, SUPERSEDED, PaymentState, StatusPosition, Store, TargetState
from bus.store import Outcome as StoreOutcome

log = structlog.get_logger("bus.dispatcher")
STATE_INTERVAL = 2.0

__all__ = ["Delivery", "Dispatcher", "RetryPlan", "TargetLane"]


@dataclass(slots=True)
class TargetLane:
    """One target's adapter, channel, breaker, limits and counters."""

    name: str
    adapter: Adapter
    concurrency: int
    deadline: float  # seconds an adapter call may take before it is abandoned as transient
    retry: RetryPlan
    breaker: CircuitBreaker
    bucket: TokenBucket | None = None
    config: Any = None  # the routes.yaml target it was built from (to see what a reload changes)
    keeps_history: bool = False  # `statuses: history`: a late status is delivered flagged
    forward_invalid: bool = False  # `on_invalid_transition: forward`
    slots: asyncio.Semaphore = field(init=False)  # at most `concurrency` calls at once
    watchdog: Watchdog = field(init=False)  # cuts calls past ``deadline``: one timer per lane
    ops: ChannelOps | None = None
    acks: ChannelAcks | None = None  # of ``ops``'s channel
    consumer_tag: str | None = None
    in_flight: int = 0
    delivered: int = 0
    failed: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    started: dict[int, float] = field(default_factory=dict)  # delivery tag -> routed-at
    # In a delay tier: id -> (routed-at, when it is due back). Another dispatcher process may
    # take it when it comes back, so an entry long past due is forgotten.
    waiting: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.concurrency)
        self.watchdog = Watchdog(tick_for(self.deadline))

    @property
    def prefetch(self) -> int:
        """Messages taken from the queue at once: the calls in flight and as many waiting.

        A delivery holds its message until the store has recorded it; with prefetch equal to
        concurrency, those milliseconds would keep the agency's slots idle.
        """
        return 2 * self.concurrency

    def oldest_in_flight(self) -> float | None:
        return min(self.started.values(), default=None)

    def note_error(self, error: str) -> None:
        """The last error, for ``dvcbus targets`` (reasons are masked by the adapters)."""
        self.last_error = error[:500]
        self.last_error_at = time.time()

    def oldest_waiting(self, now: float) -> float | None:
        """Routed-at of the oldest message this process sent to a delay tier (not yet back)."""
        for message_id in [m for m, (_, due) in self.waiting.items() if now > due + 300]:
            del self.waiting[message_id]
        return min((routed for routed, _ in self.waiting.values()), default=None)


@dataclass(slots=True)
class Delivery:
    """One message taken from one target's queue, until it is acked or handed back."""

    lane: TargetLane
    acks: ChannelAcks | None  # None: its channel is gone (the broker requeued it)
    tag: int
    props: BasicProperties
    body: bytes
    record: AttemptRecord  # attempts so far; counts this one once it has failed
    message: Message | None = None
    digest: bytes | None = None  # the body's SHA-256: checked by the stamp, kept for the audit

    def ack(self) -> None:
        if self.acks is not None:
            self.acks.ack(self.tag)

    def nack(self) -> None:
        """Back to the queue (the broker counts it toward the delivery limit)."""
        if self.acks is not None:
            self.acks.nack(self.tag)

    def hop(self, event: Event, **fields: Any) -> Hop:
        message = self.message
        assert message is not None
        fields.setdefault("attempt", self.record.attempt)
        if message.type == STATUS_TYPE:
            fields.setdefault("status", status_of(message.doc))
        return Hop(
            event,
            "dispatcher",
            message.id,
            message.type,
            message.dossier_no,
            target=self.lane.name,
            body=message.body,
            body_sha256=self.digest,
            **fields,
        )


def receiving_agency_of(message: Message) -> str | None:
    """A delivered dossier's receiving agency, recorded so its status updates can be checked
    against it (``bus.routing.reporting``); None for other types."""
    if message.type != SUBMITTED_TYPE:
        return None
    agency = message.payload.get("receiving_agency")
    return agency if isinstance(agency, str) else None


class Dispatcher:
    """Delivers each target's queue through that target's adapter."""

    def __init__(
        self,
        lanes: dict[str, TargetLane],
        names: Names,
        topology: Topology,
        *,
        hops: Hops,
        store: Store,
        stamp_key: StampKey,
        amqp_url: str,
        reconnect_delay_max: float = 10.0,
        shutdown_grace: float = 20.0,
        name: str = "dvcbus-dispatcher",
        lifecycle: Lifecycle | None = None,
        forwarding_routes: frozenset[str] = frozenset(),
    ) -> None:
        self.lanes = lanes
        self.lifecycle = lifecycle  # statuses.yaml; None: transitions are not checked
        # Routes that say `on_invalid_transition: forward` (read from a copy's routes header
        # only when a transition is refused: the rare path).
        self.forwarding_routes = forwarding_routes
        self.hops = hops
        self.store = store
        self.stamp_key = stamp_key
        self.names = names
        self.topology = topology
        self.shutdown_grace = shutdown_grace
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self.supervisor = Supervisor(
            amqp_url, name, self._setup, self._teardown, max_delay=reconnect_delay_max
        )
        self.circuit_listeners: list[Callable[[str, str], None]] = []
        self._publisher: ConfirmingPublisher | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks = KeyLocks()
        self._stopping = False
        self._circuit_open = steps.circuit_open(lane.retry for lane in lanes.values())
        for lane in lanes.values():
            lane.breaker.on_change = self._circuit_changed(lane)

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        for lane in self.lanes.values():
            await lane.adapter.start()
        saver = asyncio.ensure_future(self._save_states_forever())
        try:
            await self.supervisor.run()
        finally:
            saver.cancel()
            for lane in self.lanes.values():
                await lane.adapter.close()

    async def _setup(self, conn: AsyncioConnection) -> None:
        setup_ops = await ChannelOps.open(conn)
        await declare(setup_ops, self.topology)
        await setup_ops.close()
        self._publisher = await ConfirmingPublisher.open(await ChannelOps.open(conn))
        for lane in self.lanes.values():
            self._open_lane_channel(lane, await ChannelOps.open(conn))
            if lane.breaker.state == CLOSED:
                await self._consume(lane, lane.prefetch)
            elif lane.breaker.state == OPEN:
                self._schedule_probe(lane)
            else:
                await self._consume(lane, 1)
        log.info("dispatcher.ready", targets=sorted(self.lanes))

    def _open_lane_channel(self, lane: TargetLane, ops: ChannelOps) -> None:
        lane.ops = ops
        loop = asyncio.get_running_loop()
        lane.acks = ChannelAcks(ops.channel, loop.call_soon, before_ack=self.hops.sync)

    def _teardown(self) -> None:
        self._publisher = None
        for lane in self.lanes.values():
            lane.ops = None
            lane.acks = None
            lane.consumer_tag = None
            lane.started.clear()

    async def _consume(self, lane: TargetLane, prefetch: int) -> None:
        ops = lane.ops
        if ops is None or self._stopping or not ops.channel.is_open:
            return
        await ops.qos(prefetch)
        if lane.consumer_tag is None:
            frame = await ops.call(
                ops.channel.basic_consume,
                self.names.delivery_queue(lane.name),
                self._consumer_for(lane),
            )
            lane.consumer_tag = frame.method.consumer_tag

    def _cancel(self, lane: TargetLane) -> None:
        ops = lane.ops
        if ops is not None and ops.channel.is_open and lane.consumer_tag is not None:
            ops.channel.basic_cancel(lane.consumer_tag)
        lane.consumer_tag = None

    def _consumer_for(self, lane: TargetLane) -> Any:
        def on_message(ch: Any, method: Any, props: BasicProperties, body: bytes) -> None:
            acks = lane.acks if lane.acks is not None and lane.acks.channel is ch else None
            self._spawn(self._handle(lane, acks, method.delivery_tag, props, body))

        return on_message

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- circuit -------------------------------------------------------------------------

    def _circuit_changed(self, lane: TargetLane) -> Callable[[str, str], None]:
        def changed(old: str, new: str) -> None:
            log.warning("dispatcher.circuit", target=lane.name, old=old, new=new)
            for listener in self.circuit_listeners:
                listener(lane.name, new)
            if new == OPEN:
                self._cancel(lane)
                self._schedule_probe(lane)
            elif new == CLOSED:
                self._spawn(self._consume(lane, lane.prefetch))

        return changed

    def _schedule_probe(self, lane: TargetLane) -> None:
        """After the cool-down, take messages one at a time: the first is the probe."""

        def probe() -> None:
            if lane.breaker.state != CLOSED:
                self._spawn(self._consume(lane, 1))

        asyncio.get_running_loop().call_later(lane.breaker.seconds_until_probe + 0.01, probe)

    # --- one message at one target -------------------------------------------------------

    async def _handle(
        self,
        lane: TargetLane,
        acks: ChannelAcks | None,
        tag: int,
        props: BasicProperties,
        body: bytes,
    ) -> None:
        d = Delivery(
            lane, acks, tag, props, body, AttemptRecord.from_headers(props.headers, time.time())
        )
        lane.in_flight += 1
        lane.started[tag] = float(props.timestamp or time.time())
        try:
            presented = wire.stamp_of(props.headers)
            d.digest = body_digest(body)
            if presented is None or not verify_digest(
                self.stamp_key, props.message_id, lane.name, d.digest, presented
            ):
                await self._perform(d, steps.unstamped(presented, d.record))
                return
            try:
                d.message = Message.from_doc(orjson.loads(body), body)
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                await self._perform(d, steps.unreadable(exc, d.record))
                return
            message = d.message
            lane.waiting.pop(message.id, None)  # back from a delay tier, if it was in one
            replay_of = wire.replay_of(props.headers)
            if replay_of is not None and d.record.attempt == 1:  # not again at each retry
                self.hops.emit(
                    d.hop(Event.REPLAYED, detail=f"replay of dead letter {replay_of} taken up")
                )
            position = ordering.position(message)
            payment = payment_ordering.state_of(message)
            key = (lane.name, message.dossier_no if position else message.id)
            if payment is not None:
                key = (lane.name, payment_ordering.lock_key(payment))
            async with self._locks.hold(key):
                await self._steps(d, message, position, payment)
        except Exception:
            # A bug of ours, not the agency's: back to the queue; the delivery limit ends loops.
            log.exception("dispatcher.step_failed", target=lane.name, message_id=props.message_id)
            d.nack()
        finally:
            lane.in_flight -= 1
            lane.started.pop(tag, None)

    async def _steps(
        self,
        d: Delivery,
        message: Message,
        position: StatusPosition | None,
        payment: PaymentState | None = None,
    ) -> None:
        lane = d.lane
        delivered_already = self.store.delivered_already(message.id, lane.name)
        screened: Decision | None = steps.SUPPRESS if delivered_already else None
        note = None
        if screened is None and position is not None and message.dossier_no:
            # One read serves both the ordering and the lifecycle check.
            current = self.store.status_position(message.dossier_no, lane.name)
            screened = steps.screen_status(
                position, current, self.lifecycle, lane.keeps_history, lane.forward_invalid,
                d.record,
            )  # fmt: skip
            if type(screened) is DeadLetter and self._route_forwards(d.props.headers):
                screened = steps.forward_instead(screened, "its route")  # the rare path
            if type(screened) is Flag:
                message.flags, note, screened = screened.flags, screened.note, None
        if screened is None and payment is not None:
            held = self.store.payment_state(payment.reference, lane.name)
            screened = steps.screen_payment(payment, held)
        if screened is not None:
            await self._perform(d, screened)
            return
        async with lane.slots:  # at most `concurrency` calls to the agency at once
            # Asked once a slot is free: the circuit may have opened while this one waited.
            if not lane.breaker.allow():
                await self._perform(d, self._circuit_open)
                return
            started = time.perf_counter()
            try:
                if lane.bucket is not None:
                    await lane.bucket.acquire()
                started = time.perf_counter()
                with lane.watchdog.bound(lane.deadline):  # no timer per call, no task
                    outcome: Outcome = await lane.adapter.deliver(message)
            except TimeoutError:
                outcome = steps.timed_out(lane.deadline)
            except Exception as exc:
                await self._perform(d, steps.adapter_raised(exc))  # logs ``exc`` with its trace
                return
        elapsed = time.perf_counter() - started
        now = time.time()
        decision = steps.after_call(outcome, d.record, lane.retry, lane.name, now)
        if isinstance(decision, Record):  # the common case, carried out inline: no extra await
            lane.breaker.success()
            # The hop first: the store's commit writes it to the journal (before_commit), so
            # a kill between the commit and the ack cannot leave the record without its hop.
            self.hops.emit(
                d.hop(Event.DELIVERED, duration=elapsed, reference=decision.reference, detail=note)
            )
            await self.store.record(
                StoreOutcome(
                    message.id, lane.name, DELIVERED, now, d.record.attempt,
                    decision.reference, message.dossier_no, position, payment,
                    receiving_agency_of(message),
                )
            )  # fmt: skip
            lane.delivered += 1
            d.ack()
            return
        await self._perform(d, decision, elapsed)

    async def _perform(self, d: Delivery, decision: Decision, elapsed: float | None = None) -> None:
        """Carry out ``decision`` for ``d``: each ack only after the work it confirms."""
        lane = d.lane
        match decision:
            case RetryLater():
                self._count_failure(lane, decision.failure, agency_answered=False)
                tried, d.record = d.record, decision.record
                if await self._delay(d, decision.wait):
                    self.hops.emit(
                        d.hop(
                            Event.RETRIED,
                            attempt=tried.attempt,
                            reason=decision.failure,
                            detail=f"attempt {d.record.attempt} in {decision.wait:g}s",
                            duration=elapsed,
                        )
                    )
            case DeadLetter():
                if decision.failure is not None:
                    self._count_failure(lane, decision.failure, decision.agency_answered)
                d.record = decision.record
                await self._dead_letter(d, decision.reason, decision.detail, elapsed)
            case Suppress():
                d.ack()
                self.hops.emit(d.hop(Event.DUPLICATE_SUPPRESSED))
            case Supersede():
                assert d.message is not None
                await self.store.record(
                    StoreOutcome(d.message.id, lane.name, SUPERSEDED, time.time(), d.record.attempt)
                )
                d.ack()
                self.hops.emit(d.hop(Event.SUPERSEDED, detail=decision.detail))
            case Defer():
                if await self._delay(d, decision.wait):
                    self.hops.emit(
                        d.hop(
                            Event.DEFERRED,
                            reason=decision.why,
                            detail=f"back in {decision.wait:g}s",
                        )
                    )
            case HandBack():
                lane.breaker.release()
                lane.note_error(decision.note)
                assert d.message is not None
                log.exception(
                    "dispatcher.adapter_crashed", target=lane.name, message_id=d.message.id
                )
                d.nack()  # the broker's delivery limit ends a loop

    def _route_forwards(self, headers: dict[str, Any] | None) -> bool:
        """Whether a route that sent this copy says ``on_invalid_transition: forward``."""
        if not self.forwarding_routes or not headers:
            return False
        routes = wire.header_text(headers.get(wire.Header.ROUTES.value)).split(",")
        return not self.forwarding_routes.isdisjoint(routes)

    @staticmethod
    def _count_failure(lane: TargetLane, failure: str, agency_answered: bool) -> None:
        """A call failed: the target's counters, last error and circuit hear of it."""
        lane.failed += 1
        lane.note_error(failure)
        if agency_answered:
            lane.breaker.success()  # it answered: the agency is up, the message is wrong
        else:
            lane.breaker.failure()

    async def _delay(self, d: Delivery, seconds: float) -> bool:
        """Send the message to the delay tier of ``seconds`` and ack it; False if refused."""
        props = d.props
        copy = wire.retry_properties(props, d.record.headers(props.headers))
        if not await self._publish(self.names.retry_tier(seconds), d.lane.name, d.body, copy):
            d.nack()
            return False
        d.ack()
        now = time.time()
        assert d.message is not None
        d.lane.waiting[d.message.id] = (float(props.timestamp or now), now + seconds)
        return True

    async def _dead_letter(
        self, d: Delivery, reason: Reason, detail: str, duration: float | None = None
    ) -> None:
        props = d.props
        dl_props = wire.dead_letter_properties(
            reason,
            detail,
            stage="dispatcher",
            original=props,
            headers=d.record.headers(props.headers),
            target=d.lane.name,
        )
        if not await self._publish(self.names.dead_exchange, "", d.body, dl_props):
            d.nack()
            return
        d.ack()
        self.hops.emit(
            Hop(
                Event.DEAD_LETTERED,
                "dispatcher",
                props.message_id,
                props.type,
                d.message.dossier_no if d.message else None,
                target=d.lane.name,
                reason=reason.value,
                detail=detail,
                attempt=max(d.record.attempt - 1, 1),
                duration=duration,
                body=d.body,
                status=status_of(d.message.doc) if d.message else None,
            )
        )

    async def _publish(self, exchange: str, key: str, body: bytes, props: BasicProperties) -> bool:
        """Publish and wait for the broker's confirm; False when it refused or is gone."""
        publisher = self._publisher
        if publisher is None:
            return False
        return await publisher.publish_and_wait(exchange, key, body, props)

    # --- routes reload -------------------------------------------------------------------

    async def apply(
        self,
        targets: dict[str, Any],
        topology: Topology,
        make_lane: Callable[[str, Any], TargetLane],
        serves: set[str] | None = None,
        lifecycle: Lifecycle | None = None,
        forwarding_routes: frozenset[str] | None = None,
    ) -> None:
        """Take new routes without dropping traffic: add, change and retire lanes in place.

        A changed target gets a new adapter for its next calls (calls in flight finish on the
        old one); removed targets stop consuming (their queue keeps what is left in it).
        """
        conn = self.supervisor.connection
        if conn is not None and conn.is_open:
            ops = await ChannelOps.open(conn)
            await declare(ops, topology)
            await ops.close()
        self.topology = topology
        if lifecycle is not None:
            self.lifecycle = lifecycle
        if forwarding_routes is not None:
            self.forwarding_routes = forwarding_routes
        wanted = {n: t for n, t in targets.items() if serves is None or n in serves}
        for name in sorted(set(self.lanes) - set(wanted)):
            lane = self.lanes.pop(name)
            self._cancel(lane)
            self._spawn(self._retire(lane.adapter, lane.deadline))
            log.info("dispatcher.target_removed", target=name)
        for name, target in sorted(wanted.items()):
            old = self.lanes.get(name)
            if old is not None and old.config == target:
                continue
            try:
                new = make_lane(name, target)
                await new.adapter.start()
            except Exception as exc:
                log.error("dispatcher.target_not_changed", target=name, error=str(exc))
                continue
            if old is None:
                new.breaker.on_change = self._circuit_changed(new)
                self.lanes[name] = new
                if conn is not None and conn.is_open:
                    self._open_lane_channel(new, await ChannelOps.open(conn))
                    await self._consume(new, new.prefetch)
                log.info("dispatcher.target_added", target=name)
                continue
            retired, old.adapter = old.adapter, new.adapter
            old.config, old.retry, old.bucket, old.deadline = (
                new.config,
                new.retry,
                new.bucket,
                new.deadline,
            )
            old.keeps_history, old.forward_invalid = new.keeps_history, new.forward_invalid
            old.breaker.threshold, old.breaker.cooldown = (
                new.breaker.threshold,
                new.breaker.cooldown,
            )
            old.concurrency, old.slots = new.concurrency, new.slots
            old.watchdog.tick = new.watchdog.tick  # calls under way keep their bound
            if old.consumer_tag is not None and old.breaker.state == CLOSED:
                await self._consume(old, old.prefetch)  # new prefetch
            self._spawn(self._retire(retired, old.deadline))
            log.info("dispatcher.target_changed", target=name)

    @staticmethod
    async def _retire(adapter: Adapter, after: float) -> None:
        """Close an adapter once the calls it may still be making are over."""
        await asyncio.sleep(after)
        await adapter.close()

    def waiting_ages(self, now: float) -> dict[str, float]:
        """Per target, how long the oldest message in a delay tier has been waiting."""
        ages = {}
        for name, lane in self.lanes.items():
            oldest = lane.oldest_waiting(now)
            if oldest is not None:
                ages[name] = now - oldest
        return ages

    # --- target states and shutdown ------------------------------------------------------

    def target_states(self) -> list[TargetState]:
        now = time.time()
        return [
            TargetState(
                lane.name,
                self.process,
                lane.breaker.state,
                lane.in_flight,
                lane.last_error,
                lane.last_error_at,
                lane.oldest_in_flight(),
                now,
            )
            for lane in self.lanes.values()
        ]

    async def _save_states_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.store.save_target_states, self.target_states())
            except Exception as exc:
                log.warning("dispatcher.state_save_failed", error=str(exc))
            await asyncio.sleep(STATE_INTERVAL)

    async def stop(self) -> None:
        """Stop taking messages, finish those in flight (bounded), then disconnect."""
        self._stopping = True
        self.supervisor.stop()
        for lane in self.lanes.values():
            self._cancel(lane)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.shutdown_grace)
        for lane in self.lanes.values():
            if lane.acks is not None:
                lane.acks.flush()  # acks not yet sent go out before the connection closes
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.store.save_target_states, self.target_states())
        await self.supervisor.close()
        log.info(
            "dispatcher.stopped",
            delivered={n: lane.delivered for n, lane in self.lanes.items()},
            failed={n: lane.failed for n, lane in self.lanes.items()},
        )
