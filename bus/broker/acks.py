"""Acknowledging consumed messages in as few frames as the order of their work allows.

The router (:class:`IngressAcks`) acks an ingress message only after every copy of it is
safely in a queue: copies are confirmed by the broker out of step with consumption, so it
keeps deliveries in arrival order and acks the longest settled prefix with one
``multiple=True`` frame. A delivery whose copy was refused is returned to its queue
(``nack`` with requeue): the broker's delivery limit then parks it as poison if it keeps
failing. The dispatcher (:class:`ChannelAcks`) settles deliveries that finish in any order.

Both call ``before_ack`` right before they send a batch of acks: there the hops of the work
being acked are written to the process's hop journal (``bus.observability.journal``), so
no acked work is without its audit record, whenever the process is killed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from pika.channel import Channel


class PendingDelivery:
    """One ingress delivery waiting for its copies' confirms."""

    __slots__ = ("failed", "owner", "remaining", "tag")

    def __init__(self, owner: IngressAcks, tag: int, copies: int) -> None:
        self.owner = owner
        self.tag = tag
        self.remaining = copies
        self.failed = False

    def settle(self, ok: bool) -> None:
        """One copy confirmed (``ok``) or refused."""
        if not ok:
            self.failed = True
        self.remaining -= 1


class IngressAcks:
    """Acks (or requeues) ingress deliveries in order once their copies are settled."""

    def __init__(self, channel: Channel, before_ack: Callable[[], None] | None = None) -> None:
        self.channel = channel
        self.before_ack = before_ack  # e.g. the hops journal written out: hops before acks
        self._queue: deque[PendingDelivery] = deque()
        self.acked = 0
        self.requeued = 0

    def track(self, tag: int, copies: int) -> PendingDelivery:
        pending = PendingDelivery(self, tag, copies)
        self._queue.append(pending)
        return pending

    def fail(self, tag: int) -> None:
        """Return a delivery to its queue without publishing anything for it."""
        pending = self.track(tag, 0)
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
                self.channel.basic_nack(pending.tag, multiple=False, requeue=True)
                self.requeued += 1
            else:
                last_ok = pending.tag
                count += 1
        if last_ok:
            self.channel.basic_ack(last_ok, multiple=True)
            self.acked += count


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
