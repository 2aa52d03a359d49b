"""Harness for runs on the real broker: bus processes, example routes on free ports, dead letters.

Nothing here mocks anything: processes are real ``dvcbus`` subprocesses, agencies are real
HTTP servers on loopback, the broker is the local RabbitMQ.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pika

from bus.broker.nodes import blocking_connection, with_user
from bus.broker.permissions import bus_user_name
from bus.broker.sending import SendResult, routing_key_of, send_bodies
from bus.broker.topology import Names
from bus.ingress.senders import catch_all_registry
from bus.store import DeadFilter, DeadLetter, Store

ROOT = Path(__file__).resolve().parents[2]
# The broker's administrator (guest by default). Only for what needs one: declaring, purging
# and deleting test namespaces, probes of the broker and queue depths, and the users' own
# creation. Bus processes, the test publisher and the operators' commands each connect as
# the namespace's own user (see user_url).
AMQP_URL = os.environ.get("DVCBUS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
# The message types the tests' catch-all sender may publish (its user's topic permission).
TEST_TYPES = ("dossier.submitted", "dossier.status_changed", "payment.confirmed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def example_routes_on_free_ports(dest: Path) -> tuple[Path, dict[int, int]]:
    """The repository's routes.yaml with every loopback port moved to a free one."""
    text = (ROOT / "routes.yaml").read_text(encoding="utf-8")
    mapping: dict[int, int] = {}

    def move(m: re.Match[str]) -> str:
        old = int(m.group(1))
        mapping.setdefault(old, free_port())
        return f"127.0.0.1:{mapping[old]}"

    dest.write_text(re.sub(r"127\.0\.0\.1:(\d+)", move, text), encoding="utf-8")
    return dest, mapping


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@dataclass
class BusProcess:
    """A ``dvcbus run ...`` subprocess with its log file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BusProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bus.cli", *self.args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush — the crash we must survive."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def bus_env(namespace: str, routes_file: Path, store_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DVCBUS_NAMESPACE=namespace,
        DVCBUS_ROUTES_FILE=str(routes_file),
        DVCBUS_STORE_URL=store_url,
        # the administrator, for a namespace with no users of its own (the demo's, or none):
        # a test bus's processes and commands get its own users (BusUnderTest.env, .process)
        DVCBUS_AMQP_URL=AMQP_URL,
        DVCBUS_LOG_FORMAT="json",
        DVCBUS_RECONNECT_DELAY_MAX="1",
        DVCBUS_PORTAL_TOKEN="test-portal-token",
        # the other env: references of routes.yaml (tests sign payments with this secret)
        DVCBUS_DANANG_USER="test-danang",
        DVCBUS_DANANG_PASSWORD="test-danang-password",
        DVCBUS_ARCHIVE_USER="test-archive",
        DVCBUS_ARCHIVE_PASSWORD="test-archive-password",
        DVCBUS_PORTAL_SYNC_USER="test-portal-sync",
        DVCBUS_PORTAL_SYNC_PASSWORD="test-portal-sync-password",
        DVCBUS_PAYMENT_SECRET="demo-secret",
    )
    env.update(extra)
    return env


def user_password(user: str) -> str:
    return f"pw-{user}"


def user_url(user: str, url: str = AMQP_URL) -> str:
    """AMQP_URL (or ``url``, every node of it) as ``user`` (the tests' passwords are
    ``pw-<user>``)."""
    return with_user(url, user, user_password(user))


def publisher_user(names: Names) -> str:
    """The broker user of a test bus's catch-all sender "tests": the tests' publisher."""
    return f"{names.namespace}-tests"


def cli_user(names: Names) -> str:
    """The operators' user of a namespace: the operators' commands the tests run use it."""
    return bus_user_name(names, "cli")


def blocking_channel(
    url: str = AMQP_URL,
) -> tuple[pika.BlockingConnection, pika.adapters.blocking_connection.BlockingChannel]:
    """A channel as the administrator (AMQP_URL, or ``url``: the cluster's nodes): for
    fixtures and probes, never to send."""
    conn = blocking_connection(url, "dvcbus-tests")
    return conn, conn.channel()


def consumer_count(queue: str, url: str = AMQP_URL) -> int:
    conn, ch = blocking_channel(url)
    try:
        return ch.queue_declare(queue, passive=True).method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if conn.is_open:
            conn.close()


def queue_depth(queue: str, url: str = AMQP_URL) -> int:
    conn, ch = blocking_channel(url)
    try:
        return ch.queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def wait_for_consumers(queues: Iterable[str], timeout: float = 30, url: str = AMQP_URL) -> None:
    queues = list(queues)
    if not wait_until(lambda: all(consumer_count(q, url) > 0 for q in queues), timeout, 0.2):
        missing = [q for q in queues if consumer_count(q, url) == 0]
        raise AssertionError(f"no consumer on {missing} after {timeout}s")


def collect_dead(store: Store, count: int, timeout: float = 20) -> list[DeadLetter]:
    """Dead letters recorded in the store, once ``count`` are there or ``timeout`` passed."""
    found: list[DeadLetter] = []

    def enough() -> bool:
        found[:] = store.dead_letters(DeadFilter(state=None), with_body=True)
        return len(found) >= count

    wait_until(enough, timeout, 0.1)
    return found


def send(
    names: Names,
    bodies: Iterable[bytes],
    amqp_url: str = AMQP_URL,
    *,
    user: str | None = None,
    **kwargs: object,
) -> list[SendResult]:
    """Publish as the test bus's sender user (:func:`publisher_user`, with user_id), as a
    registered sender's system does; ``user``: every body as that user of the namespace;
    ``amqp_url``: another broker (the cluster's nodes), where the same users are made.

    That sender's user may publish its own types only (the routing key is the type: anything
    else closes the channel). A body with none of them (malformed, an unknown type) goes as
    the operators' user, as the operators' ``dvcbus send`` would: the router parses and
    validates before it asks who sent a message. Results are in the order of ``bodies``.
    """
    bodies = list(bodies)
    if user is not None:
        return asyncio.run(_send_as(user, names, bodies, kwargs, amqp_url))
    untyped = [i for i, b in enumerate(bodies) if routing_key_of(b) not in TEST_TYPES]
    if not untyped:
        return asyncio.run(_send_as(publisher_user(names), names, bodies, kwargs, amqp_url))
    typed = sorted(set(range(len(bodies))) - set(untyped))

    async def both() -> list[list[SendResult]]:
        return await asyncio.gather(
            _send_as(publisher_user(names), names, [bodies[i] for i in typed], kwargs, amqp_url),
            _send_as(cli_user(names), names, [bodies[i] for i in untyped], kwargs, amqp_url),
        )

    results: list[SendResult | None] = [None] * len(bodies)
    for indexes, sent in zip((typed, untyped), asyncio.run(both()), strict=True):
        for i, result in zip(indexes, sent, strict=True):
            results[i] = result
    return [r for r in results if r is not None]


async def _send_as(
    user: str,
    names: Names,
    bodies: list[bytes],
    kwargs: dict[str, object],
    amqp_url: str = AMQP_URL,
) -> list[SendResult]:
    if not bodies:
        return []
    return await send_bodies(user_url(user, amqp_url), names, bodies, **kwargs)  # type: ignore[arg-type]


def catch_all_senders(names: Names) -> str:
    """The senders.yaml every test bus starts with: its sender "tests", the broker user
    :func:`publisher_user`, may send every type as any source, so routes.yaml's `sources` decide,
    as the tests of routing expect. Tests of identities write their own."""
    return catch_all_registry("tests", publisher_user(names), TEST_TYPES)
