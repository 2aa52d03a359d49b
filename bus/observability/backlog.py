"""How old is the oldest message still waiting for a target: estimated from what a dispatcher sees.

An exact answer needs a record of every undelivered message; a component that has one (the
store, later) registers it with :meth:`bus.observability.metrics.Metrics.register_age_source`
and replaces this estimate. Until then a dispatcher process reasons from two facts: a
delivery queue is first-in first-out, and the router stamps every copy with the time it
routed it (the AMQP ``timestamp``, kept across retries).

* **Something in flight**: everything still queued was routed after the messages being
  delivered now, so the oldest waiting message is the oldest one in flight: the age is
  ``now - routed_at(oldest in flight)``, exact. A message retried for three hours shows
  three hours each time it is attempted.
* **Nothing in flight, the queue not empty** (circuit open, dispatcher stalled): the queue's
  head was routed after every message already taken from it, so the age is at most
  ``now - newest known time of a taken message`` — the routed-at of messages seen in flight
  at earlier samples, or the creation time carried by the ids of messages settled since
  (UUIDv7 and ULID ids carry it; a creation time is never later than the routing). This
  bound grows second by second while a target is stuck, which is what the alert needs.
* **Queue empty and nothing in flight**: 0.

When it cannot be told (nothing sampled or settled yet, ids without time, queue depth not
polled) the series is left out rather than guessed. Messages waiting in a retry delay tier
between two attempts are added by the dispatcher (``Metrics.add_age_floor``).
"""

from __future__ import annotations

from collections.abc import Iterable

# A creation time further in the future than clock skew, or older than this, is not used:
# an id is chosen by the sender and must not be able to raise an alert on its own.
MAX_SKEW = 300.0
MAX_AGE = 30 * 24 * 3600.0

_CROCKFORD = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}


def created_at(message_id: str | None) -> float | None:
    """Creation time (Unix seconds) carried by a UUIDv7 or ULID message id, else None."""
    if not message_id:
        return None
    try:
        if len(message_id) == 36 and message_id[14] == "7" and message_id[8] == "-":
            return int(message_id[0:8] + message_id[9:13], 16) / 1000.0
        if len(message_id) == 26:
            ms = 0
            for char in message_id[:10]:
                ms = ms * 32 + _CROCKFORD[char]
            return ms / 1000.0
    except (KeyError, ValueError):
        return None
    return None


class OldestWaitingEstimate:
    """Per target: waiting counts (queue depth + in flight) and the newest settled message."""

    def __init__(self) -> None:
        self.targets: set[str] = set()
        self.queue_depth: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}
        self.oldest_in_flight: dict[str, float | None] = {}  # routed-at, Unix seconds
        self.newest_taken: dict[str, float] = {}  # newest routed-at/created-at taken from queue

    def watch(self, targets: Iterable[str]) -> None:
        """Report ages for these targets (those this process delivers to)."""
        self.targets.update(targets)

    def forget(self, target: str) -> None:
        """Stop reporting ``target`` (no longer served after a routes reload)."""
        self.targets.discard(target)
        for known in (self.queue_depth, self.in_flight, self.oldest_in_flight, self.newest_taken):
            known.pop(target, None)

    def settled(self, target: str, message_id: str | None, at: float) -> None:
        """A message for ``target`` was taken from its queue and handled at ``at``."""
        created = created_at(message_id)
        if created is None or created > at + MAX_SKEW or at - created > MAX_AGE:
            return
        self.taken(target, created)

    def taken(self, target: str, routed_at: float | None) -> None:
        """A message routed (or created) at ``routed_at`` has left ``target``'s queue."""
        if routed_at is not None and routed_at > self.newest_taken.get(target, 0.0):
            self.newest_taken[target] = routed_at

    def sample_in_flight(
        self, target: str, count: int, oldest: float | None, newest: float | None
    ) -> None:
        """What the dispatcher's lane holds now: how many, oldest and newest routed-at."""
        self.in_flight[target] = count
        self.oldest_in_flight[target] = oldest
        self.taken(target, newest)

    def ages(self, now: float) -> dict[str, float | None]:
        """Seconds per watched target; None where it cannot be told."""
        out: dict[str, float | None] = {}
        for target in self.targets:
            depth = self.queue_depth.get(target)
            in_flight = self.in_flight.get(target, 0)
            oldest = self.oldest_in_flight.get(target)
            newest = self.newest_taken.get(target)
            if in_flight and oldest is not None and now - oldest < MAX_AGE:
                out[target] = max(0.0, now - oldest)
            elif depth:
                out[target] = max(0.0, now - newest) if newest is not None else None
            elif depth == 0 and not in_flight:
                out[target] = 0.0
            else:
                out[target] = None
        return out
