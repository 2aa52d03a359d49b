"""Fixtures for tests on the real local RabbitMQ: they fail, never skip, without it."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from bus import topology
from bus.demo.agencies import endpoints
from bus.routes import RoutesConfig, load_routes
from bus.standin import StandinThread
from bus.topology import Names, Topology, plan
from tests.integration.harness import (
    AMQP_URL,
    BusProcess,
    bus_env,
    example_routes_on_free_ports,
    wait_for_consumers,
)

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
    return AMQP_URL


@dataclass
class BusUnderTest:
    """A namespace on the broker, the example routes on free ports, stand-ins, processes."""

    names: Names
    routes_file: Path
    routes: RoutesConfig
    standins: StandinThread
    tmp: Path
    processes: list[BusProcess]

    @property
    def topology(self) -> Topology:
        limits = {name: t.delivery_limit for name, t in self.routes.targets.items()}
        return plan(self.names, limits, 20)

    def env(self, **extra: str) -> dict[str, str]:
        return bus_env(self.names.namespace, self.routes_file, **extra)

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


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[BusUnderTest]:
    """A fresh namespace with the example routes; processes are started by the test."""
    namespace = f"t{os.getpid()}x{next(_counter)}"
    routes_file, _ = example_routes_on_free_ports(tmp_path / "routes.yaml")
    routes = load_routes(routes_file)
    with StandinThread(endpoints(routes)) as standins:
        under_test = BusUnderTest(Names(namespace), routes_file, routes, standins, tmp_path, [])
        try:
            yield under_test
        finally:
            for proc in under_test.processes:
                if proc.alive:
                    proc.kill()
            topology.delete(AMQP_URL, under_test.topology)
