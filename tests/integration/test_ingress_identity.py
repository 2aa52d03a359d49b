"""Identities the router can trust (issue 12), on the real broker: a sender publishes as its
own RabbitMQ user with user_id set, or through the gateway's user; anything else is
dead-lettered ``unauthorised`` naming the sender and the claim.

Users are made by ``dvcbus broker users sync`` from the test's senders.yaml, named after the
test's namespace, and deleted at the end (RabbitMQ users are node-wide).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from typing import Any

import orjson
import pika
import pytest

from bus.broker.sending import send_bodies, user_of
from bus.broker.wire import ingress_properties
from bus.store import DeadLetter
from tests.integration import senders_file
from tests.integration.conftest import BusUnderTest
from tests.integration.harness import (
    AMQP_URL,
    blocking_channel,
    catch_all_senders,
    cli_user,
    collect_dead,
    publisher_user,
    send,
    wait_until,
)
from tests.integration.own_users import start_as_own_users, sync_users
from tests.integration.test_broker_permissions import (
    connect_as,
    delete_users,  # noqa: F401  (a fixture)
    dvcbus,
    url_of,
)
from tests.integration.test_gateway import _declare_topology, _hash, start_gateway
from tests.integration.test_recoverability import example

STATUS = "dossier.status_changed.v1/valid/received.json"  # Hà Nội's (000.00.00.H26)
DOSSIER = "dossier.submitted.v1/valid/citizen-hanoi-online.json"  # the portal's
PORTAL_TOKEN = "portal-identity-token"

SENDERS = (
    senders_file.HEAD
    + senders_file.portal("auth: {{ bearer: [{token}] }}")
    + senders_file.hanoi_igate("{ns}-hanoi")
)


@pytest.fixture
def identified_bus(bus: BusUnderTest, delete_users: list[str]) -> Iterator[BusUnderTest]:  # noqa: F811
    """The bus with the test's senders.yaml, its users synced, router and dispatcher running
    as their own users."""
    ns = bus.names.namespace
    text = SENDERS.format(ns=ns, token=_hash(PORTAL_TOKEN))
    bus.routes_file.with_name("senders.yaml").write_text(text, encoding="utf-8")
    synced = sync_users(bus, delete_users, "hanoi")
    assert f"created {ns}-hanoi (sender hanoi-igate)" in synced.stdout
    assert "pw-" not in synced.stdout + synced.stderr  # passwords are never printed
    start_as_own_users(bus)
    yield bus


def publish_as(
    bus: BusUnderTest, user: str | None, doc: dict[str, Any], **props: Any
) -> pika.BlockingConnection:
    """Publish ``doc`` (confirmed, mandatory) on a connection as ``user`` (None: AMQP_URL's)."""
    conn = connect_as(user) if user else pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        base = ingress_properties(doc["id"])
        for key, value in props.items():
            setattr(base, key, value)
        channel.basic_publish(
            bus.names.ingress_exchange, doc["type"], orjson.dumps(doc), base, mandatory=True
        )
    finally:
        if conn.is_open:
            conn.close()
    return conn


def delivered_ids(bus: BusUnderTest) -> set[str]:
    return {orjson.loads(r.body)["id"] for r in bus.receipts() if r.ok}


def dead_by_id(bus: BusUnderTest, count: int) -> dict[str | None, DeadLetter]:
    return {d.message_id: d for d in collect_dead(bus.store, count)}


def test_a_sender_publishing_as_its_own_user_is_routed_and_its_claims_are_checked(
    identified_bus: BusUnderTest,
) -> None:
    bus = identified_bus
    hanoi = f"{bus.names.namespace}-hanoi"
    own = example(STATUS)
    publish_as(bus, hanoi, own, user_id=hanoi)
    foreign = example(STATUS)
    foreign["source"] = "000.00.00.H29"  # Hồ Chí Minh City's, which hanoi-igate may not claim
    publish_as(bus, hanoi, foreign, user_id=hanoi)
    bare = example(STATUS)
    publish_as(bus, hanoi, bare)  # its own user, but no user_id: nothing the broker vouched

    assert wait_until(lambda: own["id"] in delivered_ids(bus), 20), bus.receipts()
    dead = dead_by_id(bus, 2)
    assert {foreign["id"], bare["id"]} <= set(dead)
    assert dead[foreign["id"]].reason == "unauthorised"
    assert dead[foreign["id"]].detail.startswith(
        "sender hanoi-igate may not claim source 000.00.00.H29"
    )
    assert dead[foreign["id"]].headers.get("x-dvcbus-sender") == "hanoi-igate"
    assert dead[bare["id"]].reason == "unauthorised"
    assert "no trusted identity: no user_id property" in dead[bare["id"]].detail
    assert delivered_ids(bus) == {own["id"]}


def test_the_broker_refuses_a_user_id_that_is_not_the_publishers(
    identified_bus: BusUnderTest,
) -> None:
    bus = identified_bus
    hanoi = f"{bus.names.namespace}-hanoi"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        publish_as(bus, hanoi, example(STATUS), user_id=f"{bus.names.namespace}-gateway")
    assert refused.value.reply_code == 406
    assert "PRECONDITION_FAILED" in refused.value.reply_text
    # and its topic permission lets it publish its own types only (the routing key)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as other_type:
        publish_as(bus, hanoi, example(DOSSIER), user_id=hanoi)
    assert other_type.value.reply_code == 403
    assert "ACCESS_REFUSED" in other_type.value.reply_text


def test_a_sender_header_from_a_user_other_than_the_gateway_is_not_trusted(
    identified_bus: BusUnderTest,
) -> None:
    bus = identified_bus
    doc = example(DOSSIER)  # the portal's own message and source, but not sent by the portal
    guest = user_of(AMQP_URL)  # the broker's administrator: no sender's user
    publish_as(bus, None, doc, user_id=guest, headers={"x-dvcbus-sender": "portal"})
    (letter,) = dead_by_id(bus, 1).values()
    assert (letter.message_id, letter.reason) == (doc["id"], "unauthorised")
    assert letter.detail == (
        f"no trusted identity: published by user {guest} without a registered sender"
    )
    assert "x-dvcbus-sender" not in letter.headers  # a replay will not trust it either
    assert delivered_ids(bus) == set()


def test_a_message_through_the_gateway_is_routed_and_delivered(
    identified_bus: BusUnderTest,
) -> None:
    bus = identified_bus
    gateway = f"{bus.names.namespace}-gateway"
    gw = start_gateway(bus, DVCBUS_AMQP_URL=url_of(gateway))
    assert wait_until(lambda: gw.request("GET", "/readyz", token=None).status == 200, 30)
    doc = example(DOSSIER)
    answer = gw.post(orjson.dumps(doc), token=PORTAL_TOKEN)
    assert answer.status == 202, answer.body
    assert wait_until(lambda: doc["id"] in delivered_ids(bus), 20), bus.receipts()
    assert collect_dead(bus.store, 1, timeout=1) == []


def test_senders_yaml_is_reloaded_with_the_routes(bus: BusUnderTest) -> None:
    senders = bus.routes_file.with_name("senders.yaml")
    senders.write_text(SENDERS.format(ns=bus.names.namespace, token=_hash(PORTAL_TOKEN)))
    router = bus.start_router()
    bus.start_dispatcher()
    before = example(DOSSIER)
    send(bus.names, [orjson.dumps(before)])  # as the test publisher: not registered yet
    (letter,) = dead_by_id(bus, 1).values()
    assert (letter.message_id, letter.reason) == (before["id"], "unauthorised")

    senders.write_text(catch_all_senders(bus.names), encoding="utf-8")  # now it is
    assert router.proc is not None
    router.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "routes.reloaded" in router.log_text(), 10), router.log_text()
    after = example(DOSSIER)
    send(bus.names, [orjson.dumps(after)])
    assert wait_until(lambda: after["id"] in delivered_ids(bus), 20), bus.receipts()
    assert before["id"] not in delivered_ids(bus)


def test_an_operators_replay_keeps_the_sender_the_router_established_and_no_other(
    identified_bus: BusUnderTest,
) -> None:
    bus = identified_bus
    ns = bus.names.namespace
    hanoi = f"{ns}-hanoi"
    foreign = example(STATUS)
    foreign["source"] = "000.00.00.H29"
    publish_as(bus, hanoi, foreign, user_id=hanoi)  # identified, then refused by its claim
    forged = example(STATUS)
    publish_as(
        bus, None, forged, user_id=user_of(AMQP_URL), headers={"x-dvcbus-sender": "hanoi-igate"}
    )
    first = dead_by_id(bus, 2)
    assert {foreign["id"], forged["id"]} <= set(first)

    for message in (foreign, forged):
        letter = first[message["id"]]
        replayed = dvcbus(
            bus, "dead", "replay", "--id", str(letter.id), DVCBUS_AMQP_URL=url_of(f"{ns}-cli")
        )
        assert replayed.returncode == 0 and "1 replayed" in replayed.stdout, replayed.stderr

    def again() -> dict[str, str]:
        letters = collect_dead(bus.store, 4, timeout=0.5)
        return {
            d.message_id: d.detail for d in letters if d.id not in {f.id for f in first.values()}
        }

    assert wait_until(lambda: len(again()) == 2, 20), again()
    details = again()
    # the header the router wrote is trusted from the operators' user: the sender is known
    assert details[foreign["id"]].startswith(
        "sender hanoi-igate may not claim source 000.00.00.H29"
    )
    assert "identified by a replay by the operators" in details[foreign["id"]]
    # the forged header was dropped from the dead letter: the replay has no sender to trust
    assert details[forged["id"]] == (
        f"no trusted identity: published by a replay by the operators (user {ns}-cli) "
        "without x-dvcbus-sender"
    )
    assert delivered_ids(bus) == set()


# --- the tests' own publishers (issue 12 §1: the tests run as the bus's users, not guest) ------


def test_a_message_published_as_the_administrator_guest_is_refused_by_a_test_bus(bus) -> None:
    """A test bus registers no sender for guest: only its own sender user is trusted."""
    bus.start_router()
    bus.start_dispatcher()
    guest = user_of(AMQP_URL)
    as_guest = example(DOSSIER)
    (sent,) = asyncio.run(send_bodies(AMQP_URL, bus.names, [orjson.dumps(as_guest)]))
    assert sent.ok, sent.explain()
    as_tests = example(DOSSIER)
    assert all(r.ok for r in send(bus.names, [orjson.dumps(as_tests)]))

    assert wait_until(lambda: as_tests["id"] in delivered_ids(bus), 20), bus.receipts()
    (letter,) = dead_by_id(bus, 1).values()
    assert (letter.message_id, letter.reason, letter.stage) == (
        as_guest["id"], "unauthorised", "router",
    )  # fmt: skip
    assert letter.detail == (
        f"no trusted identity: published by user {guest} without a registered sender"
    )
    assert delivered_ids(bus) == {as_tests["id"]}


def test_the_harness_and_the_operators_commands_publish_as_the_namespaces_own_users(
    bus,
) -> None:
    """What reaches the ingress queue carries the user the broker vouched for: the test
    bus's sender user for :func:`send` (the operators' for a body of no type it may send),
    the operators' user for ``dvcbus send``."""
    _declare_topology(bus)  # as the administrator; no router runs
    typed = orjson.dumps(example(DOSSIER))
    untyped = b'{"id": "broken", "type": '
    assert all(r.ok for r in send(bus.names, [typed, untyped]))
    operators = orjson.dumps(example(STATUS))
    path = bus.tmp / "operators.json"
    path.write_bytes(operators)
    done = dvcbus(bus, "send", str(path))
    assert done.returncode == 0, done.stdout + done.stderr

    conn, channel = blocking_channel()  # the administrator reads the queue
    try:
        got = [channel.basic_get(bus.names.ingress_queue, auto_ack=True) for _ in range(3)]
    finally:
        conn.close()
    users = {body: props.user_id for _method, props, body in got if props is not None}
    assert users == {
        typed: publisher_user(bus.names),
        untyped: cli_user(bus.names),
        operators: cli_user(bus.names),
    }
