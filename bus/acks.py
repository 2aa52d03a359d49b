"""Acknowledging ingress messages only after every copy of them is safely in a queue.

Copies are confirmed by the broker out of step with consumption; this keeps deliveries in
arrival order and acks the longest settled prefix with one ``multiple=True`` frame. A
delivery whose copy was refused is returned to its queue (``nack`` with requeue): the
broker's delivery limit then parks it as poison if it keeps failing.
"""

from __future__ import annotations

from collections import deque

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

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
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
