"""Fixtures for tests on the real local RabbitMQ: they fail, never skip, without it."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest
import yaml

from bus import app, topology
from bus.demo.agencies import endpoints
from bus.routes import RoutesConfig, load_routes
from bus.settings import Settings
from bus.standin import StandinThread
from bus.store import Store, open_store
from bus.topology import Names, Topology
from tests.integration.harness import (
    AMQP_URL,
    BusProcess,
    bus_env,
    example_routes_on_free_ports,
    wait_for_consumers,
)
from tests.integration.store_fixtures import postgres_schema_url, sqlite_url

_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def broker() -> str:
    """The local RabbitMQ; a missing broker is a failure, not a skip."""
    try:
        pika.BlockingConnection(pika.URLParameters(AMQP_URL)).close()
    except pika.exceptions.AMQPError as exc:
        pytest.fail(
            f"RabbitMQ is required at {AMQP_URL} and is not reachable ({exc!r}); "
            "start it with `rabbitmq-server -detached`",
            pytrace=False,
        )
    if not _dead_lettering_works():
        # RabbitMQ 3.10 can lose the supervisor of at-least-once dead-lettering after a burst
        # of queue deletions or a restart with many such queues (rabbitmq-server#16652); every
        # new quorum queue of the bus then fails. Only restarting the broker's app repairs it.
        subprocess.run(["rabbitmqctl", "stop_app"], capture_output=True, timeout=120)
        subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=120)
        subprocess.run(["rabbitmqctl", "await_startup"], capture_output=True, timeout=120)
        if not _dead_lettering_works():
            pytest.fail(
                "RabbitMQ cannot start quorum queues with at-least-once dead-lettering "
                "(rabbitmq-server#16652); restart it: rabbitmqctl stop_app; rabbitmqctl start_app",
                pytrace=False,
            )
    return AMQP_URL


def _dead_lettering_works() -> bool:
    """Can a quorum queue with at-least-once dead-lettering be created and consumed?"""
    name = f"probe.dlx.{os.getpid()}"
    args = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "probe.none",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = conn.channel()
        channel.queue_declare(name, durable=True, arguments=args)
        channel.basic_consume(name, lambda *_: None)
        channel.close()
        return True
    except pika.exceptions.AMQPError:
        return False
    finally:
        with contextlib.suppress(pika.exceptions.AMQPError):
            if conn.is_open:
                conn.channel().queue_delete(name)
                conn.close()


@dataclass
class BusUnderTest:
    """A namespace on the broker, the example routes on free ports, stand-ins, processes."""

    names: Names
    routes_file: Path
    routes: RoutesConfig
    standins: StandinThread
    tmp: Path
    store_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[BusProcess] = field(default_factory=list)
    _store: Store | None = None

    @property
    def topology(self) -> Topology:
        settings = Settings.load(routes_file=self.routes_file, namespace=self.names.namespace)
        return app.topology_for(self.routes, settings)

    @property
    def store(self) -> Store:
        """The store the bus processes write (opened on first use, closed after the test)."""
        if self._store is None:
            self._store = open_store(self.store_url)
        return self._store

    def env(self, **extra: str) -> dict[str, str]:
        return bus_env(
            self.names.namespace, self.routes_file, self.store_url, **{**self.extra_env, **extra}
        )

    def process(self, *args: str, **extra_env: str) -> BusProcess:
        name = "-".join(args)
        proc = BusProcess(
            list(args), self.env(**extra_env), self.tmp / f"{name}-{len(self.processes)}.log"
        )
        self.processes.append(proc)
        return proc.start()

    def start_router(self) -> BusProcess:
        proc = self.process("run", "router")
        wait_for_consumers([self.names.ingress_queue])
        return proc

    def start_dispatcher(self) -> BusProcess:
        proc = self.process("run", "dispatcher")
        wait_for_consumers(self.names.delivery_queue(t) for t in self.routes.targets)
        return proc


RoutesTweak = Callable[[dict[str, Any]], None]


@contextmanager
def bus_under_test(
    tmp_path: Path,
    store_url: str,
    tweak: RoutesTweak | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[BusUnderTest]:
    """A fresh namespace with the example routes (``tweak`` may edit them as data) and a store.

    Processes are started by the test; everything is killed and deleted afterwards.
    """
    namespace = f"t{os.getpid()}x{next(_counter)}"
    routes_file, _ = example_routes_on_free_ports(tmp_path / "routes.yaml")
    if tweak is not None:
        doc = yaml.safe_load(routes_file.read_text(encoding="utf-8"))
        tweak(doc)
        routes_file.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    routes = load_routes(routes_file)
    with StandinThread(endpoints(routes)) as standins:
        under_test = BusUnderTest(
            Names(namespace), routes_file, routes, standins, tmp_path, store_url,
            extra_env=dict(extra_env or {}),
        )  # fmt: skip
        try:
            yield under_test
        finally:
            for proc in under_test.processes:
                if proc.alive:
                    proc.kill()
            topology.delete(AMQP_URL, under_test.topology)
            if under_test._store is not None:
                under_test._store.close()


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[BusUnderTest]:
    """The bus on the example routes with a SQLite store."""
    with bus_under_test(tmp_path, sqlite_url(tmp_path)) as under_test:
        yield under_test


@pytest.fixture
def make_bus(tmp_path: Path) -> Iterator[Callable[..., BusUnderTest]]:
    """``make_bus(tweak=..., store="sqlite"|"postgres", env={...})``: a bus built to order."""
    with ExitStack() as stack:

        def make(
            tweak: RoutesTweak | None = None,
            store: str = "sqlite",
            env: dict[str, str] | None = None,
        ) -> BusUnderTest:
            url = (
                sqlite_url(tmp_path)
                if store == "sqlite"
                else stack.enter_context(postgres_schema_url())
            )
            return stack.enter_context(bus_under_test(tmp_path, url, tweak, env))

        yield make
