"""The agency systems' Python client (``dvcbus_client``) against the real bus: HTTP to a real
``dvcbus run gateway`` process, and AMQP as a real per-sender RabbitMQ user made by
``dvcbus broker users sync``, its messages routed by a real router."""

# ruff: noqa: F811  (the fixtures imported from the gateway and identity tests)

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bus.broker.management import ManagementApi, quoted
from bus.settings import Settings
from dvcbus_client import (
    AmqpPublisher,
    GatewayClient,
    GatewayUnavailable,
    PublishRefused,
    Refused,
)
from tests.integration.conftest import BusUnderTest
from tests.integration.harness import blocking_channel, free_port, wait_until
from tests.integration.test_broker_permissions import delete_users, url_of  # noqa: F401
from tests.integration.test_gateway import (  # noqa: F401  (gateway: a fixture)
    STATUS,
    TOKENS,
    GatewayUnderTest,
    gateway,
    message,
    start_gateway,
)
from tests.integration.test_ingress_identity import (  # noqa: F401  (a fixture)
    DOSSIER,
    delivered_ids,
    identified_bus,
)
from tests.integration.test_recoverability import example

pytestmark = pytest.mark.integration


def ids_on(queue: str) -> list[str]:
    """The message ids waiting on ``queue``; every message stays there (requeued on close)."""
    conn, ch = blocking_channel()
    ids = []
    try:
        while True:
            method, props, _body = ch.basic_get(queue, auto_ack=False)
            if method is None:
                return ids
            ids.append(props.message_id)
    finally:
        conn.close()


class Recording(httpx.BaseTransport):
    """The real HTTP transport, noting each request's Idempotency-Key."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.keys.append(request.headers.get("Idempotency-Key"))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def client_of(gw: GatewayUnderTest, **kwargs: Any) -> GatewayClient:
    return GatewayClient(f"http://127.0.0.1:{gw.port}", TOKENS["portal"], **kwargs)


# --- HTTP ---------------------------------------------------------------------------------


def test_http_send_returns_the_202s_id_once_the_broker_holds_it(
    gateway: GatewayUnderTest,
) -> None:
    doc = message()
    with client_of(gateway) as client:
        accepted = client.send(doc)
        assert accepted.id == doc["id"]
        assert accepted.location == f"/v1/messages/{doc['id']}"
        assert accepted.attempts == 1
        assert client.status(doc["id"])["id"] == doc["id"]
    assert ids_on(gateway.ingress).count(doc["id"]) == 1


def test_http_send_retries_a_503_after_its_retry_after_with_the_same_idempotency_key(
    gateway: GatewayUnderTest,
) -> None:
    """Nothing bound behind the ingress exchange: the gateway answers 503 (Retry-After: 1).
    The client waits what it was asked, then sends the same body with the same key."""
    gw = start_gateway(gateway.bus, DVCBUS_GATEWAY_RETRY_AFTER="1")
    names = gateway.bus.names
    conn, ch = blocking_channel()
    ch.queue_unbind(names.ingress_queue, names.ingress_exchange, routing_key="#")
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the queue is bound again while the client waits
        waits.append(seconds)
        if len(waits) == 1:
            ch.queue_bind(names.ingress_queue, names.ingress_exchange, routing_key="#")
        time.sleep(seconds)

    transport = Recording()
    doc = message()
    try:
        with client_of(gw, sleep=sleep, transport=transport) as client:
            accepted = client.send(doc)
    finally:
        ch.queue_bind(names.ingress_queue, names.ingress_exchange, routing_key="#")
        conn.close()
        gw.process.terminate()
    assert accepted.id == doc["id"] and accepted.attempts == 2
    assert waits == [1.0]  # the gateway's Retry-After, not the client's own backoff
    assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
    assert transport.keys[0] == accepted.idempotency_key
    assert ids_on(gateway.ingress).count(doc["id"]) == 1


def test_http_send_gives_up_with_the_key_to_send_again_later(gateway: GatewayUnderTest) -> None:
    closed = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    cut_off = start_gateway(gateway.bus, DVCBUS_AMQP_URL=closed, DVCBUS_GATEWAY_RETRY_AFTER="1")
    waits: list[float] = []
    try:
        with (
            client_of(cut_off, attempts=3, sleep=waits.append) as client,
            pytest.raises(GatewayUnavailable) as gave_up,
        ):
            client.send(message(), idempotency_key="order-17")
    finally:
        cut_off.process.terminate()
    assert gave_up.value.attempts == 3 and waits == [1.0, 1.0]
    assert gave_up.value.idempotency_key == "order-17"
    assert "503 broker_unavailable" in gave_up.value.last


def test_http_send_raises_the_gateways_refusal_with_its_code(gateway: GatewayUnderTest) -> None:
    waits: list[float] = []
    with client_of(gateway, sleep=waits.append) as client:
        with pytest.raises(Refused) as not_its_source:
            client.send(message(source="000.00.00.G22/payment"))
        bad = message()
        del bad["payload"]["dossier_no"]
        with pytest.raises(Refused) as invalid:
            client.send(bad)
    stranger = GatewayClient(f"http://127.0.0.1:{gateway.port}", "no-such-token")
    with stranger, pytest.raises(Refused) as unknown:
        stranger.send(message())
    assert (not_its_source.value.status, not_its_source.value.reason) == (
        403,
        "source_not_allowed",
    )
    assert "may not claim source 000.00.00.G22/payment" in not_its_source.value.detail
    assert (invalid.value.status, invalid.value.reason) == (422, "invalid")
    assert any("dossier_no" in e["expected"] + e["path"] for e in invalid.value.errors)
    assert (unknown.value.status, unknown.value.reason) == (401, "unauthenticated")
    assert waits == []  # a refusal is not retried


# --- AMQP ---------------------------------------------------------------------------------


@pytest.fixture
def hanoi(identified_bus: BusUnderTest) -> Iterator[AmqpPublisher]:
    """Hà Nội's publisher, as its own user (senders.yaml amqp_user, synced by the CLI)."""
    bus = identified_bus
    url = url_of(f"{bus.names.namespace}-hanoi")
    with AmqpPublisher(url, exchange=bus.names.ingress_exchange) as publisher:
        yield publisher


def test_amqp_publish_as_the_senders_own_user_is_routed(
    identified_bus: BusUnderTest, hanoi: AmqpPublisher
) -> None:
    doc = example(STATUS)
    published = hanoi.publish(doc)
    assert (published.id, published.type) == (doc["id"], "dossier.status_changed")
    assert wait_until(lambda: doc["id"] in delivered_ids(identified_bus), 20)


def test_amqp_publish_with_another_users_user_id_is_refused_by_the_broker(
    identified_bus: BusUnderTest, hanoi: AmqpPublisher
) -> None:
    bus = identified_bus
    ns = bus.names.namespace
    url = url_of(f"{ns}-hanoi")
    forger = AmqpPublisher(url, exchange=bus.names.ingress_exchange, user_id=f"{ns}-gateway")
    with forger, pytest.raises(PublishRefused) as forged:
        forger.publish(example(STATUS))
    assert forged.value.reply_code == 406 and "PRECONDITION_FAILED" in forged.value.reply_text
    with pytest.raises(PublishRefused) as other_type:  # its topic permission: its own types
        hanoi.publish(example(DOSSIER))
    assert other_type.value.reply_code == 403 and "ACCESS_REFUSED" in other_type.value.reply_text
    after = example(STATUS)  # a refusal closes a channel, not the publisher
    hanoi.publish(after)
    assert wait_until(lambda: after["id"] in delivered_ids(bus), 20)


def test_amqp_publish_with_nothing_bound_for_its_type_is_returned_not_lost(
    identified_bus: BusUnderTest, hanoi: AmqpPublisher
) -> None:
    names = identified_bus.names
    conn, ch = blocking_channel()
    ch.queue_unbind(names.ingress_queue, names.ingress_exchange, routing_key="#")
    try:
        with pytest.raises(PublishRefused) as returned:
            hanoi.publish(example(STATUS))
    finally:
        ch.queue_bind(names.ingress_queue, names.ingress_exchange, routing_key="#")
        conn.close()
    assert returned.value.reply_code == 312 and "NO_ROUTE" in returned.value.reply_text


def test_amqp_publish_reconnects_after_the_broker_closes_its_connection(
    identified_bus: BusUnderTest, hanoi: AmqpPublisher
) -> None:
    """kombu's ensure: the connection the pool holds is closed by the broker (an operator's
    force-close, a failover); the next publish opens another and is confirmed."""
    first = example(STATUS)
    hanoi.publish(first)
    user = f"{identified_bus.names.namespace}-hanoi"
    api = ManagementApi(Settings().management_url)

    def ours() -> list[str]:  # open ones (a forced-closed one is listed until its client goes)
        conns = api.get("connections")
        return [c["name"] for c in conns if c.get("user") == user and c.get("state") != "closed"]

    assert wait_until(lambda: len(ours()) >= 1, 10)  # the management API lags a little
    for name in ours():
        api.delete(f"connections/{quoted(name)}")
    assert wait_until(lambda: not ours(), 10)
    second = example(STATUS)
    assert hanoi.publish(second).id == second["id"]
    assert wait_until(lambda: {first["id"], second["id"]} <= delivered_ids(identified_bus), 20)
