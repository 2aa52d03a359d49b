"""Fixtures for tests on the real local RabbitMQ: they fail, never skip, without it."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest
import yaml

from adapters.testing.standin import Behaviour, Received, StandinState, StandinThread
from bus import app
from bus.broker import topology
from bus.broker.access import apply
from bus.broker.management import ManagementApi, ManagementUnavailable, quoted
from bus.broker.nodes import first_url
from bus.broker.sending import user_of
from bus.broker.topology import Names, Topology
from bus.demo.agencies import endpoints
from bus.ingress.broker_users import plan_registry_users
from bus.ingress.senders import load_senders
from bus.routes import RoutesConfig, load_routes
from bus.settings import Settings
from bus.store import Store, open_store
from tests.integration.harness import (
    AMQP_URL,
    BusProcess,
    bus_env,
    catch_all_senders,
    cli_user,
    example_routes_on_free_ports,
    user_password,
    user_url,
    wait_for_consumers,
)
from tests.integration.store_fixtures import postgres_schema_url, sqlite_url

_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def payment_secret_here() -> None:
    """The partner secret of routes.yaml in this process too (as ``bus_env`` gives the bus):
    tests that decide messages' fates in-process verify payments the way the router does."""
    os.environ.setdefault("DVCBUS_PAYMENT_SECRET", "demo-secret")


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
        _rabbitmqctl("stop_app", check=False)
        _start_app(check=False)
        if not _dead_lettering_works():
            pytest.fail(
                "RabbitMQ cannot start quorum queues with at-least-once dead-lettering "
                "(rabbitmq-server#16652); restart it: rabbitmqctl stop_app; rabbitmqctl start_app",
                pytrace=False,
            )
    return AMQP_URL


BROKER_TIMEOUT = 120  # seconds any one rabbitmqctl step may take


def _rabbitmqctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", *args], check=check, capture_output=True, timeout=BROKER_TIMEOUT)


def _start_app(check: bool = True) -> None:
    _rabbitmqctl("start_app", check=check)
    _rabbitmqctl("await_startup", check=check)


class BrokerControl:
    """Stops and starts the local RabbitMQ's app (the node stays up), each step bounded.

    Other test sessions may share the broker: a stop is always followed by a start, and a
    start repairs the 3.10 dead-lettering bug (rabbitmq-server#16652) if the restart
    triggered it, so the broker is left as usable as it was found.
    """

    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> float:
        """Stop the broker's app; returns when it is down (time.time())."""
        self.stopped = True
        _rabbitmqctl("stop_app")
        return time.time()

    def start(self) -> float:
        """Start it again and wait until it serves; returns when it is back (time.time())."""
        _start_app()
        self.stopped = False
        if not _dead_lettering_works():
            _rabbitmqctl("stop_app")
            _start_app()
        return time.time()


@pytest.fixture
def broker_control() -> Iterator[BrokerControl]:
    """Restart the broker inside a test; a test that fails midway still leaves it started."""
    control = BrokerControl()
    try:
        yield control
    finally:
        if control.stopped:
            _start_app(check=False)


def _dead_lettering_works() -> bool:
    """Can a quorum queue with at-least-once dead-lettering be created and consumed?"""
    name = f"probe.dlx.{os.getpid()}"  # outside any namespace: the administrator's probe
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


@dataclass(frozen=True, slots=True)
class Receipt:
    """One call a stand-in agency received, and whether it answered it with a 2xx."""

    seq: int
    target: str
    key: str | None  # the Idempotency-Key (per entry for a batch)
    method: str
    path: str
    at: float
    body: bytes
    status: int | None  # the HTTP status it was given; None for a misbehaviour (close, garbage …)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def call(self) -> tuple[str | None, str, str, str]:
        """What makes two calls the same call: key, target, method and path."""
        return (self.key, self.target, self.method, self.path.split("?")[0])


class Answers:
    """Notes how the stand-ins answered each call they recorded.

    A stand-in records a call before it picks the behaviour that answers it (a programmed
    503, or the normal answer), so what it received says nothing about success. Both steps
    run on the stand-ins' event loop with no await between them, so the calls recorded since
    the previous pick are exactly those the current pick answers (several for a batch).
    """

    def __init__(self, state: StandinState) -> None:
        self._state = state
        self._next = 0
        self._status: dict[int, int | None] = {}
        pick = state.behaviour_for

        def behaviour_for(target: str) -> Behaviour:
            behaviour = pick(target)
            if "#" not in target:  # "T#auth": a token or login call, never recorded
                received = state.received
                if len(received) < self._next:  # the stand-ins were reset
                    self._next = 0
                status = behaviour.status if behaviour.act == "answer" else None
                for r in received[self._next :]:
                    self._status[r.seq] = status
                self._next = len(received)
            return behaviour

        state.behaviour_for = behaviour_for  # type: ignore[method-assign]

    def receipts(self, received: list[Received]) -> list[Receipt]:
        return [
            Receipt(
                r.seq,
                r.target,
                r.idempotency_key,
                r.method,
                r.path,
                r.received_at,
                r.body,
                self._state.answered.get(r.seq, self._status.get(r.seq)),
            )
            for r in received
        ]


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
    amqp_url: str = AMQP_URL  # the broker (a cluster's nodes, comma-separated) it runs on
    processes: list[BusProcess] = field(default_factory=list)
    _store: Store | None = None
    answers: Answers | None = None

    def receipts(self, target: str | None = None) -> list[Receipt]:
        """The calls the stand-ins received (``target``'s only), each with how it was answered."""
        assert self.answers is not None
        return self.answers.receipts(self.standins.received(target))

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
        """The env of ``dvcbus`` run for this bus: an operators' command connects as the
        namespace's operators' user (``{namespace}-cli``); ``extra`` may say otherwise."""
        operators = {"DVCBUS_AMQP_URL": user_url(cli_user(self.names), self.amqp_url)}
        return bus_env(
            self.names.namespace,
            self.routes_file,
            self.store_url,
            **{**operators, **self.extra_env, **extra},
        )

    def process(self, *args: str, **extra_env: str) -> BusProcess:
        """``dvcbus ARGS`` as a subprocess; a bus process (``run X``) connects as its own
        broker user (the namespace's, see :func:`bus_users_for`) unless ``extra_env`` says."""
        name = "-".join(args)
        role = RUN_AS.get(args[1]) if len(args) > 1 and args[0] == "run" else None
        if role is not None:
            extra_env = {
                "DVCBUS_AMQP_URL": user_url(f"{self.names.namespace}-{role}", self.amqp_url),
                **extra_env,
            }
        proc = BusProcess(
            list(args), self.env(**extra_env), self.tmp / f"{name}-{len(self.processes)}.log"
        )
        self.processes.append(proc)
        return proc.start()

    def start_router(self) -> BusProcess:
        proc = self.process("run", "router")
        wait_for_consumers([self.names.ingress_queue], url=self.amqp_url)
        return proc

    def start_dispatcher(self) -> BusProcess:
        proc = self.process("run", "dispatcher")
        wait_for_consumers(
            (self.names.delivery_queue(t) for t in self.routes.targets), url=self.amqp_url
        )
        return proc


RoutesTweak = Callable[[dict[str, Any]], None]
# `dvcbus run X` connects as the namespace's user for this role (`all` as the router: both
# declare the whole namespace).
RUN_AS = {"router": "router", "dispatcher": "dispatcher", "all": "router", "gateway": "gateway"}


def password_env(users: Iterable[str]) -> dict[str, str]:
    """The broker_passwords references (default template) of ``users``."""
    return {
        f"DVCBUS_BROKER_PASSWORD_{re.sub(r'[^A-Z0-9]', '_', u.upper())}": user_password(u)
        for u in users
    }


@contextmanager
def bus_users_for(
    names: Names,
    routes_file: Path,
    tmp: Path,
    amqp_url: str = AMQP_URL,
    management_url: str | None = None,
) -> Iterator[list[str]]:
    """The namespace's own broker users, made by `broker users sync`'s code from the
    senders.yaml beside ``routes_file`` (router, dispatcher, operators' CLI, gateway and
    each amqp_user: the tests' publisher {namespace}-tests among them), deleted afterwards:
    users are node-wide. Created through the management API as the administrator."""
    administrator = user_of(AMQP_URL)
    registry = load_senders(routes_file.with_name("senders.yaml"))
    users = plan_registry_users(names, registry, f"{names.namespace}-gateway")
    assert administrator not in {u.name for u in users}, "the administrator is never touched"
    folder = tmp / "broker-passwords"
    folder.mkdir(exist_ok=True)
    for user in users:
        (folder / user.name).write_text(user_password(user.name), encoding="utf-8")
    api = ManagementApi(management_url or Settings().management_url)
    try:
        _retried(lambda: apply(api, vhost_of(amqp_url), users, f"file:{folder}/{{user}}"))
        yield [u.name for u in users]
    finally:
        for user in users:
            _retried(lambda name=user.name: api.delete(f"users/{quoted(name)}"))


def _retried(call: Callable[[], Any], within: float = BROKER_TIMEOUT) -> Any:
    """``call``, again while the management API is away: another session sharing the broker
    may be restarting it (its tests do), and it comes back within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            return call()
        except ManagementUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def vhost_of(url: str) -> str:
    return str(pika.URLParameters(first_url(url)).virtual_host)


@contextmanager
def bus_under_test(
    tmp_path: Path,
    store_url: str,
    tweak: RoutesTweak | None = None,
    extra_env: dict[str, str] | None = None,
    cluster: tuple[str, str] | None = None,
) -> Iterator[BusUnderTest]:
    """A fresh namespace with the example routes (``tweak`` may edit them as data) and a store.

    Processes are started by the test; everything is killed and deleted afterwards.
    ``cluster``: (amqp_url, management_url) of another broker than the local node.
    """
    amqp_url, management_url = cluster or (AMQP_URL, None)
    namespace = f"t{os.getpid()}x{next(_counter)}"
    routes_file, _ = example_routes_on_free_ports(tmp_path / "routes.yaml")
    if tweak is not None:
        doc = yaml.safe_load(routes_file.read_text(encoding="utf-8"))
        tweak(doc)
        routes_file.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    routes = load_routes(routes_file)
    names = Names(namespace)
    routes_file.with_name("senders.yaml").write_text(catch_all_senders(names), encoding="utf-8")
    with (
        bus_users_for(names, routes_file, tmp_path, amqp_url, management_url) as users,
        StandinThread(endpoints(routes)) as standins,
    ):
        # Each bus its own hop journals: a journal is drained into the store of whoever finds it.
        journal = {"DVCBUS_AUDIT_JOURNAL_DIR": str(tmp_path / f"journal-{namespace}")}
        env = {**journal, **password_env(users), **(extra_env or {})}
        if cluster is not None:
            operators = user_url(cli_user(names), amqp_url)  # the cluster's nodes, as -cli
            env.update(DVCBUS_AMQP_URL=operators, DVCBUS_MANAGEMENT_URL=management_url or "")
        under_test = BusUnderTest(
            names, routes_file, routes, standins, tmp_path, store_url,
            extra_env=env, answers=Answers(standins.state), amqp_url=amqp_url,
        )  # fmt: skip
        try:
            yield under_test
        finally:
            for proc in under_test.processes:
                if proc.alive:
                    proc.kill()
            topology.delete(amqp_url, under_test.topology)  # the administrator's job
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
            cluster: tuple[str, str] | None = None,
        ) -> BusUnderTest:
            url = (
                sqlite_url(tmp_path)
                if store == "sqlite"
                else stack.enter_context(postgres_schema_url())
            )
            return stack.enter_context(bus_under_test(tmp_path, url, tweak, env, cluster))

        yield make


# --- figures the proofs report ---------------------------------------------------------------

_FIGURES: dict[str, dict[str, Any]] = {}
_FIGURES_FILE: list[Path] = []  # where they were written (pytest's base temporary directory)


@pytest.fixture
def figures(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, dict[str, Any]], None]:
    """``figures(name, {...})``: a proof's figures, shown at the end of the pytest output.

    They are also kept as the test's ``record_property`` values (JUnit XML) and written to
    ``figures.json`` in pytest's base temporary directory. Record before asserting, so a
    failing proof still shows its figures.
    """
    path = tmp_path_factory.getbasetemp() / "figures.json"

    def record(name: str, values: dict[str, Any]) -> None:
        _FIGURES[name] = {"test": request.node.nodeid, **values}
        request.node.user_properties.append((name, values))
        path.write_text(json.dumps(_FIGURES, indent=2, default=str) + "\n", encoding="utf-8")
        _FIGURES_FILE[:] = [path]

    return record


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("recoverability figures")
    for name, values in _FIGURES.items():
        shown = ", ".join(f"{k} {v}" for k, v in values.items() if k != "test")
        terminalreporter.write_line(f"{name}: {shown}")
    for path in _FIGURES_FILE:
        terminalreporter.write_line(f"(also in {path})")
