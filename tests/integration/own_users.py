"""The bus run as its own broker users, the way the identity and status tests need it: the
namespace's users synced from the test's senders.yaml, then the router and the dispatcher
started as their own users. RabbitMQ users are node-wide, so each is deleted at the end."""

from __future__ import annotations

import subprocess

from tests.integration.conftest import BusUnderTest
from tests.integration.harness import wait_for_consumers
from tests.integration.test_broker_permissions import dvcbus, password_env, url_of

ROLES = ("router", "dispatcher", "cli", "gateway")


def sync_users(
    bus: BusUnderTest, delete_users: list[str], *senders: str
) -> subprocess.CompletedProcess[str]:
    """``dvcbus broker users sync`` from the senders.yaml already written: the bus's roles and
    ``senders`` (user suffixes, as ``hanoi`` in ``{ns}-hanoi``) get the tests' passwords and are
    put in ``delete_users``; the sync must succeed."""
    ns = bus.names.namespace
    users = [f"{ns}-{name}" for name in (*ROLES, *senders)]
    delete_users.extend(users)
    bus.extra_env.update(password_env(users))
    synced = dvcbus(bus, "broker", "users", "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    return synced


def start_as_own_users(bus: BusUnderTest) -> None:
    """Start the router and the dispatcher as their own users and wait until they consume."""
    ns = bus.names.namespace
    bus.process("run", "router", DVCBUS_AMQP_URL=url_of(f"{ns}-router"))
    bus.process("run", "dispatcher", DVCBUS_AMQP_URL=url_of(f"{ns}-dispatcher"))
    wait_for_consumers(
        [bus.names.ingress_queue, *map(bus.names.delivery_queue, bus.routes.targets)]
    )
