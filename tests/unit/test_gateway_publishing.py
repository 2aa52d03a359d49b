"""The gateway's publish outcomes without a broker: only a confirm that was not a return is
success; a return, a nack, a lost channel or a late confirm is a 503 with its reason."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from pika.spec import Basic

from bus.broker.publisher import ConfirmingPublisher
from bus.broker.topology import Names
from bus.ingress.publishing import BrokerUnavailable, IngressPublisher


class FakeChannel:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, Any, bool]] = []
        self.is_open = True

    def basic_publish(self, exchange, routing_key, body, properties=None, mandatory=False):  # type: ignore[no-untyped-def]
        self.published.append((exchange, routing_key, properties, mandatory))


def connected(timeout: float = 1.0) -> tuple[IngressPublisher, ConfirmingPublisher, FakeChannel]:
    gateway = IngressPublisher("amqp://localhost", Names("t"), confirm_timeout=timeout)
    channel = FakeChannel()
    ops = SimpleNamespace(channel=channel, closed_reason=None)
    publisher = ConfirmingPublisher(ops)  # type: ignore[arg-type]
    publisher.after_confirm = gateway._confirmed
    gateway._publisher = publisher
    gateway.supervisor.ready.set()
    return gateway, publisher, channel


def ack(publisher: ConfirmingPublisher, tag: int, kind: type = Basic.Ack) -> None:
    publisher._on_confirm(SimpleNamespace(method=kind(delivery_tag=tag, multiple=False)))


async def outcome(gateway: IngressPublisher, then: Any) -> str:
    task = asyncio.ensure_future(gateway.publish(b"{}", "m-1", "dossier.submitted", "portal"))
    await asyncio.sleep(0)
    then()
    try:
        await task
    except BrokerUnavailable as exc:
        return exc.why
    return "held"


def test_a_confirm_is_held_published_mandatory_with_the_sender() -> None:
    gateway, publisher, channel = connected()
    assert asyncio.run(outcome(gateway, lambda: ack(publisher, 1))) == "held"
    exchange, key, props, mandatory = channel.published[0]
    assert (exchange, key, mandatory) == ("t.ingress", "dossier.submitted", True)
    assert props.headers == {"x-dvcbus-sender": "portal"}
    assert props.message_id == "m-1"


def test_a_returned_message_is_not_held_even_though_confirmed() -> None:
    gateway, publisher, _ = connected()

    def returned_then_acked() -> None:
        gateway._on_return(None, None, SimpleNamespace(message_id="m-1"), b"{}")
        ack(publisher, 1)

    assert "no queue" in asyncio.run(outcome(gateway, returned_then_acked))
    assert not gateway._returned  # nothing left over for the next publish of the same id


def test_a_nack_is_a_full_ingress_queue() -> None:
    gateway, publisher, _ = connected()
    why = asyncio.run(outcome(gateway, lambda: ack(publisher, 1, Basic.Nack)))
    assert "ingress queue full" in why


def test_a_late_confirm_is_503_and_not_ready_until_confirms_flow_again() -> None:
    gateway, publisher, _ = connected(timeout=0.05)
    assert "did not confirm within" in asyncio.run(outcome(gateway, lambda: None))
    assert not gateway.ready
    ack(publisher, 1)
    assert gateway.ready


def test_no_channel_is_503_at_once() -> None:
    gateway = IngressPublisher("amqp://localhost", Names("t"))
    with pytest.raises(BrokerUnavailable, match="not connected"):
        asyncio.run(gateway.publish(b"{}", "m-1", "t.x", "portal"))
