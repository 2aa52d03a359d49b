"""Nothing published around the router reaches an agency (issue 11, item 1).

A sender who may publish to the broker writes straight to the delivery exchange, routing key
= a target: a schema-invalid body from an unknown source. The dispatcher must dead-letter it
``unauthorised`` unread, whether it carries no stamp, a forged one, or a real stamp made for
another target; routed traffic is still delivered.
"""

from __future__ import annotations

import os

import orjson
import pika

from bus import app
from bus.broker.stamp import StampKey, stamp
from bus.settings import Settings
from tests.integration.harness import AMQP_URL, collect_dead, send, wait_until
from tests.integration.test_operator_cli import dvcbus
from tests.integration.test_recoverability import example


def forged_body(n: int) -> bytes:
    doc = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    doc["id"] = f"{doc['id'][:-1]}{n}"
    doc["source"] = "999.99.99.X99"  # no sender the routes know
    del doc["payload"]["applicant"]  # and no longer what the schema asks for
    return orjson.dumps(doc)


def publish_to_deliver(exchange: str, target: str, body: bytes, headers: dict) -> None:
    # as the administrator (guest): no user of the namespace but the bus's own may write the
    # internal exchanges, so only a user with rights no sender has can even try this
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        message_id = orjson.loads(body)["id"]
        props = pika.BasicProperties(
            content_type="application/json", delivery_mode=2, message_id=message_id,
            type="dossier.submitted", headers={"x-dvcbus-target": target, **headers},
        )  # fmt: skip
        channel.basic_publish(exchange, target, body, props, mandatory=True)
    finally:
        conn.close()


def test_a_forged_dead_letter_is_replayed_through_the_router_not_to_its_target(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    body = forged_body(4)
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))  # the administrator, as above
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        headers = {
            "x-dvcbus-target": "hanoi", "x-dvcbus-reason": "rejected",
            "x-dvcbus-stage": "dispatcher", "x-dvcbus-detail": "HTTP 400",
            "x-dvcbus-stamp": stamp(StampKey(os.urandom(32)), None, "hanoi", body),
        }  # fmt: skip
        props = pika.BasicProperties(message_id=orjson.loads(body)["id"], headers=headers)
        channel.basic_publish(bus.names.dead_exchange, "", body, props)
    finally:
        conn.close()
    (letter,) = collect_dead(bus.store, 1)
    replayed = dvcbus(bus, "dead", "replay", "--id", str(letter.id))
    assert "→ ingress (no router stamp for target hanoi)" in replayed.stdout, replayed.stderr
    assert wait_until(lambda: len(collect_dead(bus.store, 2, timeout=0.5)) == 2, 20)
    assert bus.receipts() == []


def test_copies_published_around_the_router_are_dead_lettered_and_never_delivered(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    exchange = bus.names.deliver_exchange
    real_key = app.stamp_key(Settings.load())  # what the bus processes of this test use
    unstamped, forged, elsewhere = forged_body(1), forged_body(2), forged_body(3)
    publish_to_deliver(exchange, "hanoi", unstamped, {})
    attacker_key = StampKey(os.urandom(32))
    publish_to_deliver(
        exchange, "hanoi", forged, {"x-dvcbus-stamp": stamp(attacker_key, None, "hanoi", forged)}
    )
    # A genuine stamp lifted from a copy for another target does not open this one.
    lifted = stamp(real_key, orjson.loads(elsewhere)["id"], "hcmc", elsewhere)
    publish_to_deliver(exchange, "hanoi", elsewhere, {"x-dvcbus-stamp": lifted})

    dead = collect_dead(bus.store, 3)
    by_body = {letter.body: letter for letter in dead}
    assert set(by_body) == {unstamped, forged, elsewhere}
    for letter in dead:
        where = (letter.reason, letter.stage, letter.target)
        assert where == ("unauthorised", "dispatcher", "hanoi")
    assert "no router stamp" in by_body[unstamped].detail
    assert "does not match" in by_body[forged].detail
    assert "does not match" in by_body[elsewhere].detail
    assert bus.receipts() == []  # the agency never heard of them

    # Replayed, they go through the router (they never did), which refuses them in its turn.
    replayed = dvcbus(bus, "dead", "replay", "--reason", "unauthorised")
    assert replayed.returncode == 0 and "3 replayed" in replayed.stdout, replayed.stderr
    assert replayed.stdout.count("ingress (no router stamp for target hanoi)") == 3
    again = collect_dead(bus.store, 6)
    assert sorted(d.stage for d in again if d.state == "parked") == ["router"] * 3
    assert bus.receipts() == []

    valid = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    assert all(r.ok for r in send(bus.names, [orjson.dumps(valid)]))
    assert wait_until(lambda: bus.receipts("hanoi"), 20)
    assert [orjson.loads(r.body)["id"] for r in bus.receipts()] == [valid["id"]]
