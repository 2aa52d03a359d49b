"""Ingress acks: only after every copy is confirmed, in order, batched with multiple=True."""

from bus.broker.acks import IngressAcks


class FakeChannel:
    def __init__(self) -> None:
        self.is_open = True
        self.calls: list[tuple[str, int, bool]] = []

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.calls.append(("ack", tag, multiple))

    def basic_nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self.calls.append(("nack", tag, requeue))


def test_nothing_is_acked_until_every_copy_is_confirmed() -> None:
    ch = FakeChannel()
    acks = IngressAcks(ch)
    first = acks.track(1, copies=2)
    first.settle(True)
    acks.flush()
    assert ch.calls == []
    first.settle(True)
    acks.flush()
    assert ch.calls == [("ack", 1, True)]


def test_settled_prefix_is_acked_in_one_frame() -> None:
    ch = FakeChannel()
    acks = IngressAcks(ch)
    pending = [acks.track(tag, copies=1) for tag in (1, 2, 3, 4)]
    for p in pending[:3]:
        p.settle(True)
    acks.flush()
    assert ch.calls == [("ack", 3, True)]
    assert acks.outstanding == 1


def test_a_later_delivery_waits_for_an_earlier_one() -> None:
    ch = FakeChannel()
    acks = IngressAcks(ch)
    early, late = acks.track(1, 1), acks.track(2, 1)
    late.settle(True)
    acks.flush()
    assert ch.calls == []
    early.settle(True)
    acks.flush()
    assert ch.calls == [("ack", 2, True)]


def test_a_refused_copy_returns_its_delivery_to_the_queue() -> None:
    ch = FakeChannel()
    acks = IngressAcks(ch)
    a, b, c = acks.track(1, 1), acks.track(2, 2), acks.track(3, 1)
    a.settle(True)
    b.settle(True)
    b.settle(False)
    c.settle(True)
    acks.flush()
    assert ch.calls == [("ack", 1, True), ("nack", 2, True), ("ack", 3, True)]
    assert (acks.acked, acks.requeued) == (2, 1)


def test_fail_requeues_immediately_when_nothing_is_ahead() -> None:
    ch = FakeChannel()
    acks = IngressAcks(ch)
    acks.fail(7)
    assert ch.calls == [("nack", 7, True)]


def test_closed_channel_is_left_alone() -> None:
    ch = FakeChannel()
    acks = IngressAcks(ch)
    acks.track(1, 1).settle(True)
    ch.is_open = False
    acks.flush()
    assert ch.calls == []


class Timers:
    """call_later that runs nothing until told."""

    def __init__(self) -> None:
        self.waiting: list[tuple[float, object]] = []

    def __call__(self, delay: float, callback) -> None:
        self.waiting.append((delay, callback))

    def fire(self) -> None:
        waiting, self.waiting = self.waiting, []
        for _, callback in waiting:
            callback()


def test_a_refused_copy_returns_its_delivery_only_after_a_wait() -> None:
    ch, timers = FakeChannel(), Timers()
    acks = IngressAcks(ch, call_later=timers)
    a, b = acks.track(1, 1), acks.track(2, 1)
    a.settle(False)  # its delivery queue has no leader for a moment
    b.settle(True)
    acks.flush()
    assert ch.calls == [("ack", 2, False)]  # not multiple: that would ack 1 as well
    assert [delay for delay, _ in timers.waiting] == [0.25]
    timers.fire()
    assert ch.calls == [("ack", 2, False), ("nack", 1, True)]
    c = acks.track(3, 1)
    c.settle(True)
    acks.flush()
    assert ch.calls[-1] == ("ack", 3, True)  # nothing waits: one multiple ack again
    assert (acks.acked, acks.requeued) == (2, 1)


def test_the_wait_doubles_with_each_redelivery_up_to_ten_seconds() -> None:
    ch, timers = FakeChannel(), Timers()
    acks = IngressAcks(ch, call_later=timers)
    for tag, count in enumerate((1, 3, 19), start=1):
        acks.fail(tag, {"x-delivery-count": count})
    assert [delay for delay, _ in timers.waiting] == [0.5, 2.0, 10.0]


def test_a_waiting_delivery_is_left_to_the_broker_once_its_channel_closed() -> None:
    ch, timers = FakeChannel(), Timers()
    acks = IngressAcks(ch, call_later=timers)
    acks.fail(1)
    ch.is_open = False  # the connection was lost: the broker requeued it already
    timers.fire()
    assert ch.calls == []
