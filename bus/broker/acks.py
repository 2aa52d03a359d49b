"""Acknowledging consumed messages in as few frames as the order of their work allows.

The router (:class:`IngressAcks`) acks an ingress message only after every copy of it is
safely in a queue: copies are confirmed by the broker out of step with consumption, so it
keeps deliveries in arrival order and acks the longest settled prefix with one
``multiple=True`` frame. A delivery whose copy was refused is returned to its queue
(``nack`` with requeue): the broker's delivery limit then parks it as poison if it keeps
failing. Given a ``call_later``, that return waits first, longer at each redelivery (the
quorum queue's ``x-delivery-count``): a copy is refused while a delivery queue elects a
leader after a node's loss, or is full, and returning the message at once made the router
spend its 20 deliveries in a second and park a good message as poison. While a delivery
waits, later ones are acked one by one (a ``multiple`` ack would take the waiting one
too). The dispatcher (:class:`ChannelAcks`) settles deliveries that finish in any order.

Both call ``before_ack`` right before they send a batch of acks: there the hops of the work
being acked are written to the process's hop journal (``bus.observability.journal``), so
no acked work is without its audit record, whenever the process is killed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from pika.channel import Channel

CallLater = Callable[[float, Callable[[], None]], Any]


def requeue_wait(headers: dict[str, Any] | None) -> float:
    """Seconds before a failed delivery goes back to its queue: 0.25 s doubling with each
    redelivery up to 10 s, so a delivery limit of 20 lasts ~2.5 minutes, not a second."""
    count = (headers or {}).get("x-delivery-count", 0)
    return min(10.0, 0.25 * 2 ** min(int(count) if isinstance(count, int) else 0, 6))


class PendingDelivery:
    """One ingress delivery waiting for its copies' confirms."""

    __slots__ = ("failed", "headers", "owner", "remaining", "tag")

    def __init__(
        self, owner: IngressAcks, tag: int, copies: int, headers: dict[str, Any] | None = None
    ) -> None:
        self.owner = owner
        self.tag = tag
        self.remaining = copies
        self.failed = False
        self.headers = headers  # the delivery's, read only if it fails (x-delivery-count)

    def settle(self, ok: bool) -> None:
        """One copy confirmed (``ok``) or refused."""
        if not ok:
            self.failed = True
        self.remaining -= 1


class IngressAcks:
    """Acks (or requeues) ingress deliveries in order once their copies are settled."""

    def __init__(
        self,
        channel: Channel,
        before_ack: Callable[[], None] | None = None,
        call_later: CallLater | None = None,
    ) -> None:
        self.channel = channel
        self.before_ack = before_ack  # e.g. the hops journal written out: hops before acks
        self.call_later = call_later  # None: a failed delivery is returned at once
        self._queue: deque[PendingDelivery] = deque()
        self._held: set[int] = set()  # failed deliveries waiting to be returned
        self.acked = 0
        self.requeued = 0

    def track(
        self, tag: int, copies: int, headers: dict[str, Any] | None = None
    ) -> PendingDelivery:
        pending = PendingDelivery(self, tag, copies, headers)
        self._queue.append(pending)
        return pending

    def fail(self, tag: int, headers: dict[str, Any] | None = None) -> None:
        """Return a delivery to its queue without publishing anything for it."""
        pending = self.track(tag, 0, headers)
        pending.failed = True
        self.flush()

    @property
    def outstanding(self) -> int:
        return len(self._queue)

    def flush(self) -> None:
        """Ack the settled prefix in one frame; requeue failed deliveries individually."""
        queue = self._queue
        if not queue or queue[0].remaining or not self.channel.is_open:
            return
        if self.before_ack is not None:
            self.before_ack()
        last_ok = 0
        count = 0
        while queue and queue[0].remaining == 0:
            pending = queue.popleft()
            if pending.failed:
                if last_ok:
                    self.channel.basic_ack(last_ok, multiple=True)
                    self.acked += count
                    last_ok, count = 0, 0
                self._return(pending)
            elif self._held:  # a multiple ack would take a waiting delivery with it
                self.channel.basic_ack(pending.tag, multiple=False)
                self.acked += 1
            else:
                last_ok = pending.tag
                count += 1
        if last_ok:
            self.channel.basic_ack(last_ok, multiple=True)
            self.acked += count

    def _return(self, pending: PendingDelivery) -> None:
        """Requeue a failed delivery: at once, or after :func:`requeue_wait`."""
        if self.call_later is None:
            self.channel.basic_nack(pending.tag, multiple=False, requeue=True)
            self.requeued += 1
            return
        tag, channel = pending.tag, self.channel
        self._held.add(tag)

        def requeue() -> None:
            self._held.discard(tag)
            if channel is self.channel and channel.is_open:  # else the broker requeued it
                channel.basic_nack(tag, multiple=False, requeue=True)
                self.requeued += 1

        self.call_later(requeue_wait(pending.headers), requeue)


class ChannelAcks:
    """Acks and nacks of one consumer channel, sent once per event-loop turn, coalesced.

    Deliveries finish out of order (agencies answer at their own pace), so each is settled
    here and the settled tags go out together at the end of the loop's turn: the run of
    acks from the oldest unsettled tag as one ``multiple=True`` frame, the others one frame
    each, in tag order. Deliveries recorded by one store commit cost the broker one settle
    instead of one each. ``multiple`` never reaches past a tag settled in this turn, so it
    covers nothing that was not settled here.
    """

    def __init__(
        self,
        channel: Channel,
        call_soon: Callable[[Callable[[], None]], object],
        before_ack: Callable[[], None] | None = None,
    ) -> None:
        self.channel = channel
        self._call_soon = call_soon
        self.before_ack = before_ack  # e.g. the hops journal written out: hops before acks
        self._now: dict[int, bool] = {}  # settled this turn: tag -> ack (True) / nack (False)
        self._sent_alone: set[int] = set()  # sent above a gap of unsettled tags
        self._oldest = 1  # the oldest unsettled tag (a channel's tags start at 1)
        self._scheduled = False

    def ack(self, tag: int) -> None:
        self._settle(tag, True)

    def nack(self, tag: int) -> None:
        """Back to the queue (the broker counts it toward the delivery limit)."""
        self._settle(tag, False)

    def _settle(self, tag: int, ok: bool) -> None:
        self._now[tag] = ok
        if not self._scheduled:
            self._scheduled = True
            self._call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        channel = self.channel
        if self._now and channel.is_open and self.before_ack is not None:
            self.before_ack()  # if it fails, the settled tags wait for the next flush
        now, self._now = self._now, {}
        if not now or not channel.is_open:
            return
        run_end, tag = 0, self._oldest
        while now.get(tag) is True:
            del now[tag]
            run_end, tag = tag, tag + 1
        if run_end:
            channel.basic_ack(run_end, multiple=run_end > self._oldest)
            self._oldest = run_end + 1
        for alone in sorted(now):
            if now[alone]:
                channel.basic_ack(alone)
            else:
                channel.basic_nack(alone, requeue=True)
        self._sent_alone.update(now)
        while self._oldest in self._sent_alone:
            self._sent_alone.discard(self._oldest)
            self._oldest += 1
