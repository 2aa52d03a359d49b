"""Broker permissions (issue 11, item 1): a sender's user may publish to the ingress and
nowhere else; ``broker check`` and the start check name anyone else who could.

RabbitMQ users are node-wide: each test names its users after its own namespace and deletes
them at the end. guest's permissions are never touched.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import orjson
import pika
import pytest

from adapters.testing.standin import Behaviour
from bus.broker.management import ManagementApi, quoted
from bus.broker.wire import ingress_properties
from bus.ingress.senders import catch_all_registry
from bus.settings import Settings
from bus.store import DeadFilter
from tests.integration import senders_file
from tests.integration.harness import (
    AMQP_URL,
    ROOT,
    collect_dead,
    queue_depth,
    wait_for_consumers,
    wait_until,
)
from tests.integration.test_recoverability import example

API = ManagementApi(Settings().management_url)
PORTAL_SENDER = senders_file.HEAD + senders_file.portal("amqp_user: {user}")


def dvcbus(bus, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bus.cli", *args],
        env=bus.env(COLUMNS="250", **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def password_env(users: list[str]) -> dict[str, str]:
    return {f"DVCBUS_BROKER_PASSWORD_{u.upper().replace('-', '_')}": f"pw-{u}" for u in users}


@pytest.fixture
def delete_users() -> Iterator[list[str]]:
    """Users a test creates: deleted at the end whatever happens."""
    created: list[str] = []
    yield created
    for user in created:
        API.delete(f"users/{quoted(user)}")


def url_of(user: str) -> str:
    return AMQP_URL.replace("guest:guest@", f"{user}:pw-{user}@")


def connect_as(user: str) -> pika.BlockingConnection:
    params = pika.URLParameters(AMQP_URL)
    params.credentials = pika.PlainCredentials(user, f"pw-{user}")
    return pika.BlockingConnection(params)


def test_a_senders_user_may_publish_to_the_ingress_and_nowhere_else(
    bus, delete_users: list[str]
) -> None:
    ns = bus.names.namespace
    sender = f"{ns}-sender"
    users = [f"{ns}-router", f"{ns}-dispatcher", f"{ns}-cli", f"{ns}-gateway", sender]
    delete_users.extend(users)
    # The router knows the sender by its user (user_id): a registered sender of its own.
    types = ("dossier.submitted", "dossier.status_changed", "payment.confirmed")
    (bus.routes_file.with_name("senders.yaml")).write_text(
        catch_all_registry("tests", sender, types), encoding="utf-8"
    )
    setup = dvcbus(bus, "broker", "setup", "--sender", sender, **password_env(users))
    assert setup.returncode == 0, setup.stdout + setup.stderr
    for user in users:  # the bus's own exist already: every test bus runs as them
        assert f"created {user} " in setup.stdout or f"updated {user} " in setup.stdout
    assert "pw-" not in setup.stdout + setup.stderr  # passwords are never printed
    again = dvcbus(bus, "broker", "setup", "--sender", sender, **password_env(users))
    assert again.returncode == 0 and f"updated {sender} (sender)" in again.stdout

    # The bus's own users are enough to run it: both declare the topology as they start.
    bus.process("run", "router", DVCBUS_AMQP_URL=url_of(f"{ns}-router"))
    bus.process("run", "dispatcher", DVCBUS_AMQP_URL=url_of(f"{ns}-dispatcher"))
    wait_for_consumers(
        [bus.names.ingress_queue, *map(bus.names.delivery_queue, bus.routes.targets)]
    )
    valid = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    forged = orjson.dumps({**valid, "id": valid["id"][:-1] + "0", "source": "999.99.99.X99"})
    conn = connect_as(sender)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        body, props = orjson.dumps(valid), ingress_properties(valid["id"], sender)
        channel.basic_publish(
            bus.names.ingress_exchange, valid["type"], body, props, mandatory=True
        )
        internal = [
            (bus.names.deliver_exchange, "hanoi"),
            *((e.name, "hanoi") for e in bus.topology.exchanges if ".retry." in e.name),
            (bus.names.dead_exchange, ""),
            (bus.names.unrouted_exchange, ""),
            ("", bus.names.delivery_queue("hanoi")),  # the default exchange: a queue by name
        ]
        assert len(internal) >= 6
        for exchange, key in internal:
            channel = conn.channel()
            channel.confirm_delivery()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                channel.basic_publish(exchange, key, forged, ingress_properties("x"))
            assert refused.value.reply_code == 403, (exchange, refused.value)
            assert "ACCESS_REFUSED" in refused.value.reply_text
    finally:
        conn.close()

    assert wait_until(lambda: bus.receipts("hanoi"), 20)
    time.sleep(1)  # anything else that got through would reach its agency by now
    assert [orjson.loads(r.body)["id"] for r in bus.receipts()] == [valid["id"]]
    assert (
        queue_depth(bus.names.dead_queue) == 0
        and bus.store.dead_letters(DeadFilter(state=None)) == []
    )


def test_broker_check_and_the_start_check_name_a_user_that_may_write_internal_exchanges(
    bus, delete_users: list[str]
) -> None:
    ns = bus.names.namespace
    wide = f"{ns}-wide"
    delete_users.append(wide)
    API.put(f"users/{quoted(wide)}", {"password": f"pw-{wide}", "tags": ""})
    pattern = rf"^{ns}\."  # everything of this namespace: of no other test's
    API.put(f"permissions/%2F/{quoted(wide)}", {"configure": "^$", "write": pattern, "read": "^$"})

    check = dvcbus(bus, "broker", "check")
    assert check.returncode == 1, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    (mine,) = [line for line in lines if wide in line]
    assert mine.startswith(f"too wide: {wide}: may write ")
    assert f"{ns}.deliver," in mine and f"{ns}.dead" in mine and f"{ns}.retry.*" in mine
    assert any(line.startswith("warning: guest (administrator)") for line in lines)

    refused = dvcbus(bus, "run", "router", DVCBUS_PERMISSION_CHECK="refuse")
    assert refused.returncode == 2
    assert wide in refused.stderr and "refusing to start" in refused.stderr

    narrow = {"configure": "^$", "write": rf"^{ns}\.ingress$", "read": "^$"}
    API.put(f"permissions/%2F/{quoted(wide)}", narrow)
    narrowed = dvcbus(bus, "broker", "check")
    assert wide not in narrowed.stdout


def test_the_bus_runs_and_is_operated_with_its_own_users(
    bus, delete_users: list[str], tmp_path
) -> None:
    ns = bus.names.namespace
    portal = f"{ns}-portal"  # the portal's own broker user, from senders.yaml
    users = [f"{ns}-router", f"{ns}-dispatcher", f"{ns}-cli", f"{ns}-gateway", portal]
    delete_users.extend(users)
    (bus.routes_file.with_name("senders.yaml")).write_text(
        PORTAL_SENDER.format(user=portal), encoding="utf-8"
    )
    synced = dvcbus(bus, "broker", "users", "sync", **password_env(users))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    bus.process("run", "router", DVCBUS_AMQP_URL=url_of(f"{ns}-router"))
    bus.process("run", "dispatcher", DVCBUS_AMQP_URL=url_of(f"{ns}-dispatcher"))
    wait_for_consumers([bus.names.ingress_queue, bus.names.delivery_queue("hanoi")])
    bus.standins.program("hanoi", Behaviour(status=400, times=1))

    cli = url_of(f"{ns}-cli")
    doc = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    path = tmp_path / "dossier.json"
    path.write_bytes(orjson.dumps(doc))
    # An operator sends as the portal would: as its user, with user_id (the CLI's own user
    # is no sender: the router would refuse it unauthorised).
    sent = dvcbus(bus, "send", "--as", "portal", str(path), **password_env(users))
    assert sent.returncode == 0, sent.stdout + sent.stderr
    (letter,) = collect_dead(bus.store, 1)
    assert (letter.reason, letter.target) == ("rejected", "hanoi")

    # The operators' user replays straight to the target, with a fresh stamp of its own.
    replayed = dvcbus(bus, "dead", "replay", "--id", str(letter.id), DVCBUS_AMQP_URL=cli)
    assert replayed.returncode == 0 and "1 replayed" in replayed.stdout, replayed.stderr
    assert wait_until(lambda: any(r.ok for r in bus.receipts("hanoi")), 20)
    assert len(collect_dead(bus.store, 2, timeout=1)) == 1  # not refused as unstamped
