"""Pipelined confirms: every publish is settled exactly once, in whatever order confirms arrive."""

from types import SimpleNamespace

from pika.spec import Basic

from bus.broker.publisher import ConfirmingPublisher


class FakeChannel:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, bytes]] = []
        self.is_open = True

    def basic_publish(self, exchange, routing_key, body, properties=None, mandatory=False):
        self.published.append((exchange, routing_key, body))


def make() -> tuple[ConfirmingPublisher, list[tuple[int, bool]]]:
    ops = SimpleNamespace(channel=FakeChannel())
    publisher = ConfirmingPublisher(ops)  # type: ignore[arg-type]
    settled: list[tuple[int, bool]] = []
    for i in range(1, 6):
        publisher.publish("ex", "key", b"x", None, lambda ok, i=i: settled.append((i, ok)))  # type: ignore[arg-type]
    return publisher, settled


def frame(method: object) -> SimpleNamespace:
    return SimpleNamespace(method=method)


def test_multiple_ack_settles_every_publish_up_to_the_tag() -> None:
    publisher, settled = make()
    publisher._on_confirm(frame(Basic.Ack(delivery_tag=3, multiple=True)))
    assert settled == [(1, True), (2, True), (3, True)]
    assert publisher.in_flight == 2


def test_out_of_order_single_acks_settle_each_once() -> None:
    publisher, settled = make()
    publisher._on_confirm(frame(Basic.Ack(delivery_tag=4, multiple=False)))
    publisher._on_confirm(frame(Basic.Ack(delivery_tag=2, multiple=False)))
    publisher._on_confirm(frame(Basic.Ack(delivery_tag=5, multiple=True)))
    assert sorted(settled) == [(1, True), (2, True), (3, True), (4, True), (5, True)]
    assert len(settled) == 5
    assert publisher.in_flight == 0


def test_nack_settles_as_refused() -> None:
    publisher, settled = make()
    publisher._on_confirm(frame(Basic.Nack(delivery_tag=2, multiple=True)))
    assert settled == [(1, False), (2, False)]


def test_a_dead_channel_refuses_everything_pending() -> None:
    publisher, settled = make()
    publisher._on_confirm(frame(Basic.Ack(delivery_tag=1, multiple=False)))
    publisher.fail_all()
    assert settled == [(1, True), (2, False), (3, False), (4, False), (5, False)]


def test_after_confirm_runs_once_per_frame() -> None:
    publisher, _ = make()
    calls = []
    publisher.after_confirm = lambda: calls.append(1)
    publisher._on_confirm(frame(Basic.Ack(delivery_tag=5, multiple=True)))
    assert calls == [1]
