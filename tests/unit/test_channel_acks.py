"""Dispatcher acks: settled in any order, sent once per loop turn, never over-acking."""

import random

import pytest

from bus.broker.acks import ChannelAcks


class Broker:
    """A channel as RabbitMQ judges its acks: unknown tags are a channel error."""

    def __init__(self, delivered: int) -> None:
        self.is_open = True
        self.unacked = set(range(1, delivered + 1))
        self.acked: set[int] = set()
        self.requeued: set[int] = set()
        self.frames = 0

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.frames += 1
        covered = {t for t in self.unacked if t <= tag} if multiple else {tag}
        if tag not in self.unacked:
            raise AssertionError(f"PRECONDITION_FAILED - unknown delivery tag {tag}")
        self.unacked -= covered
        self.acked |= covered

    def basic_nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self.frames += 1
        assert not multiple and tag in self.unacked, f"unknown delivery tag {tag}"
        self.unacked.discard(tag)
        self.requeued.add(tag)


def turns() -> tuple[list, ChannelAcks, Broker]:
    soon: list = []
    broker = Broker(100)
    return soon, ChannelAcks(broker, soon.append), broker


def test_acks_of_one_turn_go_out_as_one_frame() -> None:
    soon, acks, broker = turns()
    for tag in (3, 1, 2):
        acks.ack(tag)
    assert broker.frames == 0 and len(soon) == 1  # nothing sent before the turn ends
    soon.pop()()
    assert broker.acked == {1, 2, 3} and broker.frames == 1


def test_a_delivery_still_in_flight_is_never_covered_by_a_multiple_ack() -> None:
    soon, acks, broker = turns()
    for tag in (1, 3, 4):  # 2 is still at the agency
        acks.ack(tag)
    soon.pop()()
    assert broker.acked == {1, 3, 4} and 2 in broker.unacked
    acks.ack(2)
    acks.ack(5)
    soon.pop()()
    assert broker.acked == {1, 2, 3, 4, 5}


def test_nacks_are_sent_alone_and_in_order() -> None:
    soon, acks, broker = turns()
    acks.ack(1)
    acks.nack(2)
    acks.ack(3)
    soon.pop()()
    assert broker.acked == {1, 3} and broker.requeued == {2}


def test_nothing_is_sent_on_a_closed_channel() -> None:
    soon, acks, broker = turns()
    broker.is_open = False
    acks.ack(1)
    soon.pop()()
    assert broker.frames == 0


@pytest.mark.parametrize("seed", range(20))
def test_any_order_of_settling_settles_each_delivery_exactly_once(seed: int) -> None:
    rng = random.Random(seed)
    soon, acks, broker = turns()
    outcome = {tag: rng.random() > 0.1 for tag in range(1, 101)}
    order = list(outcome)
    rng.shuffle(order)
    while order:
        for _ in range(rng.randint(1, 8)):  # deliveries finishing within one loop turn
            if order:
                tag = order.pop()
                (acks.ack if outcome[tag] else acks.nack)(tag)
        while soon:
            soon.pop()()
    assert broker.acked == {t for t, ok in outcome.items() if ok}
    assert broker.requeued == {t for t, ok in outcome.items() if not ok}
    assert broker.frames <= 100  # never more than a frame per delivery


def test_deliveries_finishing_roughly_in_order_take_few_frames() -> None:
    soon, acks, broker = turns()
    for start in range(1, 101, 10):  # ten commits of ten deliveries, finishing shuffled
        batch = list(range(start, start + 10))
        random.Random(start).shuffle(batch)
        for tag in batch:
            acks.ack(tag)
        soon.pop()()
    assert broker.acked == set(range(1, 101)) and broker.frames == 10
