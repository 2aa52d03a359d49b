"""``dvcbus demo``: the whole bus on this machine, with realistic traffic, and what happened to it.

Starts stand-in agencies (one HTTP server per target, as in routes.yaml), a router, a
dispatcher and a gateway as separate processes in a namespace of their own, each as the
namespace's own broker user; sends a mixed batch as the real senders would (the portal over
HTTP, the payment platform over its callback, the provinces' systems over SOAP, AMQP as
their own users, or HTTP: :mod:`bus.demo.ways_in`); waits until every message is accounted
for (delivered to every target it was routed to, dead-lettered, or refused by the gateway
with a reason), then prints a summary and removes the namespace and its users.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pika
from rich.console import Console
from rich.table import Table

from bus import app
from bus.broker import topology
from bus.broker.nodes import blocking_connection
from bus.broker.topology import Names
from bus.cli.as_sender import send_for_claimants
from bus.demo import traffic, ways_in
from bus.demo.agencies import endpoints
from bus.demo.journeys import journey
from bus.demo.payment_platform import PaymentPlatformStandin
from bus.demo.send_as_senders import Outcome, SendAsSenders, send_planned
from bus.demo.senders import DemoSenders, broker_users
from bus.demo.traffic import TrafficGenerator
from bus.demo.ways_summary import gateway_counts, print_gateway, print_ways_in
from bus.observability.trace import print_journey
from bus.routing.pipeline import Forward, RouterPipeline
from bus.settings import Settings
from bus.store import SUPERSEDED, DeadFilter, Store

WAIT_LIMIT = 90.0
# Credentials routes.yaml refers to (env:NAME), for the stand-ins; the payment secret is the
# one the demo traffic signs payment confirmations with.
DEMO_CREDENTIALS = {
    "DVCBUS_DANANG_USER": "demo-danang",
    "DVCBUS_DANANG_PASSWORD": "demo-danang-password",
    "DVCBUS_ARCHIVE_USER": "demo-archive",
    "DVCBUS_ARCHIVE_PASSWORD": "demo-archive-password",
    "DVCBUS_PORTAL_SYNC_USER": "demo-portal-sync",
    "DVCBUS_PORTAL_SYNC_PASSWORD": "demo-portal-sync-password",
    "DVCBUS_PAYMENT_SECRET": "demo-secret",
}


@dataclass
class Tally:
    """What the stand-ins and the dead-letter queue saw."""

    deliveries: dict[str, set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )  # id -> targets
    received_at: dict[tuple[str, str], float] = field(default_factory=dict)
    duplicates: int = 0
    calls: set[tuple[str, str, str, str]] = field(default_factory=set)
    dead: dict[str, str] = field(default_factory=dict)  # id -> reason
    dead_details: dict[str, str] = field(default_factory=dict)
    superseded: set[tuple[str, str]] = field(default_factory=set)  # (id, target) not delivered
    next_seq: int = 0


def run_demo(
    settings: Settings,
    *,
    messages: int,
    seed: int,
    keep: bool,
    console: Console,
    rate: float | None = None,
    gateways: int = 2,
) -> int:
    """Run the demo; return the process exit code (0 when every message is accounted for)."""
    # Unique on a shared broker: two demos started in the same second do not meet.
    namespace = f"demo{int(time.time())}p{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="dvcbus-demo-"))
    store_url = f"sqlite:///{workdir / 'bus.db'}"
    names = Names(namespace)
    # The senders of the demo's traffic, with credentials made up for this run only.
    senders = DemoSenders(names)
    senders_file, passwords = senders.write(workdir)
    settings = settings.model_copy(
        update={
            "namespace": namespace,
            "log_format": "json",
            "store_url": store_url,
            "senders_file": senders_file,
            "broker_passwords": passwords,
            "gateway_broker_user": "",
        }
    )
    loaded = app.load(settings, check_adapter_options=True)
    eps = endpoints(loaded.routes)
    console.print(
        f"[bold]dvc-bus demo[/] — namespace [cyan]{namespace}[/], "
        f"{len(loaded.routes.targets)} targets, {len(loaded.routes.routes)} routes, "
        f"logs in {workdir}"
    )

    for name, value in DEMO_CREDENTIALS.items():  # the partner secret, for the pipeline below
        os.environ.setdefault(name, value)
    pipeline = RouterPipeline(loaded.schemas, loaded.table, settings.max_message_bytes)

    env = dict(os.environ)
    env.update(
        DVCBUS_NAMESPACE=namespace,
        DVCBUS_ROUTES_FILE=str(settings.routes_file),
        DVCBUS_AMQP_URL=settings.amqp_url,
        DVCBUS_LOG_FORMAT="json",
        DVCBUS_STORE_URL=store_url,
        DVCBUS_SENDERS_FILE=str(senders_file),
    )
    env.setdefault(
        "DVCBUS_PORTAL_TOKEN", "demo-portal-token"
    )  # routes.yaml: env:DVCBUS_PORTAL_TOKEN
    for name, value in DEMO_CREDENTIALS.items():  # the other env: references of routes.yaml
        env.setdefault(name, value)
    env.pop("DVCBUS_GATEWAY_BROKER_USER", None)  # the gateway is the namespace's own user
    # Gateways scale out by running more of them (behind a load balancer; here the senders
    # take them in turn).
    gateway_ports = [_free_port() for _ in range(gateways)]
    gateway_urls = [f"http://127.0.0.1:{port}" for port in gateway_ports]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stack = ExitStack()
    users = broker_users(
        settings.management_url,
        settings.amqp_url,
        senders,
        senders_file,
        passwords,
        settings.gateway_user,
    )
    try:
        stack.enter_context(users)
        gateway_args = [
            (f"gateway-{n + 1}", ["run", "gateway", "--http-port", str(port)])
            for n, port in enumerate(gateway_ports)
        ]
        for name, args in (
            ("standin", ["standin"]),
            # Free ports for /metrics: a demo beside another bus on this host still starts.
            ("router", ["run", "router", "--http-port", str(_free_port())]),
            ("dispatcher", ["run", "dispatcher", "--http-port", str(_free_port())]),
            *gateway_args,
        ):
            log = (workdir / f"{name}.log").open("wb")
            role = name.split("-")[0]
            own = {} if name == "standin" else {"DVCBUS_AMQP_URL": _url_of(senders, settings, role)}
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "bus.cli", *args],
                env={**env, **own},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # Made while the processes start (their imports take seconds).
        generated = traffic.generate(messages, seed=seed, loaded=loaded, status_edges=True)
        # A few whole dossier journeys (submitted → statuses → payment → result) among the rest.
        walker = TrafficGenerator(seed + 1, loaded)
        journeys = [journey(walker, province) for province in ("01", "79", "40")]
        planned = ways_in.plan(generated, senders, journeys)
        _wait_ready(settings.amqp_url, names, loaded, eps, procs, workdir, gateway_urls)
        pace = f"at {rate:,.0f} msg/s" if rate else "as fast as the gateway and broker answer"
        console.print(
            f"bus, gateway and stand-ins are up; sending {len(planned)} messages as their "
            f"senders would, {pace} …"
        )

        started = time.time()
        outcomes = asyncio.run(
            _send(planned, gateway_urls, senders, settings.amqp_url, names, rate)
        )
        publish_seconds = time.time() - started
        accepted = [o for o in outcomes if o.accepted]
        published_at = {o.message_id: o.started for o in accepted}
        # What the bus must do with each message it holds, by the same rules, decided here.
        expected = {o.message_id: pipeline.decide(o.envelope) for o in accepted}
        try:
            metric = sum((gateway_counts(f"{url}/metrics") for url in gateway_urls), Counter())
        except OSError:
            metric = None

        tally = Tally()
        control = eps[0].url.split("/", 3)[:3]
        control_url = "/".join(control) + "/_standin/requests"
        store = app.open_store(loaded)
        try:
            done_at = _collect(store, control_url, expected, tally, procs)
            operators = dataclasses.replace(
                loaded,
                settings=settings.model_copy(
                    update={"amqp_url": senders.bus_url(settings.amqp_url, "cli")}
                ),
            )
            reconciled = _reconcile(operators, store, generated, console)
            time.sleep(0.5)  # the processes write their audit trail every 100 ms
            dossier_no = orjson.loads(journeys[0][0].body)["payload"]["dossier_no"]
            trail = store.audit_records(dossier_no=dossier_no)
        finally:
            store.close()
        _print_summary(
            console, outcomes, expected, tally, published_at, started, publish_seconds, done_at
        )
        print_ways_in(console, outcomes)
        print_gateway(console, outcomes, metric)
        refused = len(outcomes) - len(accepted)
        console.print(f"[bold]The journey of one dossier[/] (dvcbus trace {dossier_no}):")
        print_journey(console, trail)
        missing = _missing(expected, tally)
        if not reconciled:
            console.print("[red]pending payments were not reconciled within 30s[/]")
            return 1
        if missing:
            console.print(
                f"[red]{len(missing)} message(s) not accounted for within {WAIT_LIMIT:.0f}s[/]"
            )
            for mid in missing[:10]:
                console.print(f"  {mid}: expected {expected[mid]}")
            return 1
        console.print(
            f"[green]every message was delivered to all its targets or dead-lettered with a "
            f"reason, or refused at the way in with a reason ({refused}): 0 missing[/]"
        )
        return 0
    finally:
        for proc in reversed(procs.values()):  # the gateways first, the stand-ins last
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not keep:
            topology.delete(settings.amqp_url, loaded.topology)
        stack.close()


async def _send(
    planned: list[ways_in.Planned],
    gateway_urls: list[str],
    senders: DemoSenders,
    amqp_url: str,
    names: Names,
    rate: float | None,
) -> list[Outcome]:
    async with SendAsSenders(gateway_urls, lambda user: senders.url(amqp_url, user), names) as c:
        return await send_planned(c, planned, rate=rate)


def _url_of(senders: DemoSenders, settings: Settings, process: str) -> str:
    """The process's own broker user (``run all`` would be the router's)."""
    return senders.bus_url(settings.amqp_url, process)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reconcile(
    loaded: app.Loaded, store: Store, generated: list[traffic.Generated], console: Console
) -> bool:
    """Settle the demo's pending payments at a stand-in platform and reconcile them: each
    final result goes through the router (checksum verified) to the portal and the agency."""
    from bus.recovery.payment_reconciliation import Reconciler
    from bus.routes.model import Reconciliation
    from bus.routing.payment_checksum import PaymentChecksum

    pending = [orjson.loads(g.body) for g in generated if g.kind == traffic.PENDING_KIND]
    if not pending:
        return True
    platform = PaymentPlatformStandin(traffic.DEMO_SECRET)
    try:
        for doc in pending:
            platform.settle(doc)

        def publish(bodies: list[bytes]) -> list[bool]:
            return [r.ok for r in send_for_claimants(loaded, bodies)]

        reconciler = Reconciler(
            store,
            PaymentChecksum.from_config(loaded.routes.payments),
            Reconciliation(status_query=platform.url, after="15m"),
            publish,
        )
        waiting = {p.reference for p in store.pending_payments()}
        verdicts = reconciler.run_once(after=0.0)  # the demo does not wait 15 minutes
        published = sum(v.outcome.startswith("published") for v in verdicts)
        settled = _wait_until(
            lambda: not {p.reference for p in store.pending_payments()} & waiting, 30
        )
        console.print(
            f"[bold]Reconciliation[/] (dvcbus payments reconcile): {len(waiting)} pending "
            f"payment(s) asked of the platform's status query, {published} final result(s) "
            f"published through the router, {'all' if settled else 'not all'} delivered"
        )
        return settled
    finally:
        platform.close()


def _wait_until(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def _wait_ready(
    url: str,
    names: Names,
    loaded: app.Loaded,
    eps: list,
    procs: dict,
    workdir: Path,
    gateway_urls: list[str],
) -> None:
    queues = [names.ingress_queue] + [names.delivery_queue(t) for t in loaded.routes.targets]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited early; see {workdir / (name + '.log')}")
        if _all_consumed(url, queues) and _standins_up(eps) and all(map(_ready, gateway_urls)):
            return
        time.sleep(0.2)
    raise SystemExit(f"the bus did not become ready in 30s; see logs in {workdir}")


def _ready(base_url: str) -> bool:
    """The gateway answers /readyz 200: connected, the ingress exchange there."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _all_consumed(url: str, queues: list[str]) -> bool:
    try:
        conn = blocking_connection(url, "dvcbus-demo")
    except pika.exceptions.AMQPError:
        return False
    try:
        ch = conn.channel()
        return all(ch.queue_declare(q, passive=True).method.consumer_count for q in queues)
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if conn.is_open:
            conn.close()


def _standins_up(eps: list) -> bool:
    import socket

    for ep in eps:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((ep.host, ep.port)) != 0:
                return False
    return True


def _collect(store: Store, control_url: str, expected: dict, tally: Tally, procs: dict) -> float:
    """Poll stand-ins and the store's dead letters until every message is accounted for."""
    import urllib.request

    deadline = time.monotonic() + WAIT_LIMIT
    last_change = time.time()
    seen_dead = 0
    while time.monotonic() < deadline:
        changed = False
        with urllib.request.urlopen(f"{control_url}?since={tally.next_seq}", timeout=10) as resp:
            doc = orjson.loads(resp.read())
        for item in doc["requests"]:
            mid, target = item["idempotency_key"], item["target"]
            call = (mid, target, item["method"], item["path"].split("?")[0])
            if call in tally.calls:  # the same call again (an insert then its update is not)
                tally.duplicates += 1
            tally.calls.add(call)
            if (item.get("answered") or 200) < 400:  # a fake API's refusal is no delivery
                tally.deliveries[mid].add(target)
                tally.received_at.setdefault((mid, target), item["received_at"])
            changed = True
        tally.next_seq = doc["next"]
        for dead in store.dead_letters(DeadFilter(state=None))[seen_dead:]:
            tally.dead[dead.message_id or "?"] = dead.reason
            tally.dead_details[dead.reason] = dead.detail
            seen_dead += 1
            changed = True
        if changed:
            last_change = time.time()
        missing = _missing(expected, tally)
        if not missing:
            return last_change
        if len(missing) <= 100:  # the last few: superseded copies reach no agency
            for mid, target, outcome in store.outcomes(missing):
                if outcome == SUPERSEDED and (mid, target) not in tally.superseded:
                    tally.superseded.add((mid, target))
                    last_change = time.time()
        if any(procs[n].poll() is not None for n in ("router", "dispatcher")):
            break
        time.sleep(0.2)
    return last_change


def _missing(expected: dict, tally: Tally) -> list[str]:
    missing = []
    for mid, decision in expected.items():
        if isinstance(decision, Forward):
            reached = tally.deliveries.get(mid, set()) | {
                t for t in decision.targets if (mid, t) in tally.superseded
            }
            if not set(decision.targets) <= reached and mid not in tally.dead:
                missing.append(mid)
        elif mid not in tally.dead:
            missing.append(mid)
    return missing


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def _print_summary(
    console: Console,
    outcomes: list[Outcome],
    expected: dict,
    tally: Tally,
    published_at: dict[str, float],
    started: float,
    publish_seconds: float,
    done_at: float,
) -> None:
    kinds = Counter(o.planned.kind for o in outcomes)
    table = Table(title="Published (per kind of message, each by its sender)", show_lines=False)
    table.add_column("kind of message")
    table.add_column("count", justify="right")
    for kind, count in sorted(kinds.items()):
        table.add_row(kind, str(count))
    table.add_row("[bold]total[/]", f"[bold]{len(outcomes)}[/]")
    console.print(table)

    per_target: Counter[str] = Counter()
    latencies: dict[str, list[float]] = defaultdict(list)
    by_way: dict[str, list[float]] = defaultdict(list)
    way_of = {o.message_id: o.planned.way for o in outcomes if o.accepted}
    all_latencies: list[float] = []
    for (mid, target), received in tally.received_at.items():
        per_target[target] += 1
        if mid in published_at:
            ms = (received - published_at[mid]) * 1000
            latencies[target].append(ms)
            by_way[way_of[mid]].append(ms)
            all_latencies.append(ms)
    table = Table(title="Delivered per target (the sender's request or publish → agency receipt)")
    for col, justify in (
        ("target", "left"),
        ("delivered", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for target, count in sorted(per_target.items()):
        table.add_row(
            target,
            str(count),
            f"{_percentile(latencies[target], 50):.0f}",
            f"{_percentile(latencies[target], 99):.0f}",
        )
    table.add_row("[bold]all copies[/]", f"[bold]{sum(per_target.values())}[/]", "", "")
    console.print(table)

    reasons = Counter(tally.dead.values())
    table = Table(title="Dead-lettered per reason (with one example detail)")
    table.add_column("reason")
    table.add_column("count", justify="right")
    table.add_column("example detail", overflow="fold")
    for reason, count in sorted(reasons.items()):
        table.add_row(reason, str(count), tally.dead_details.get(reason, ""))
    console.print(table)

    elapsed = max(done_at - started, 1e-9)
    table = Table(title="Figures")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(
        "messages the bus took (202, SOAP result, 00, AMQP confirm)", str(len(published_at))
    )
    table.add_row("messages refused at the way in", str(len(outcomes) - len(published_at)))
    table.add_row(
        "send rate (answered or confirmed)",
        f"{len(outcomes) / max(publish_seconds, 1e-9):,.0f} msg/s",
    )
    table.add_row("all accounted for after", f"{elapsed:.2f} s")
    table.add_row("end-to-end throughput", f"{len(published_at) / elapsed:,.0f} msg/s")
    for q in (50, 95, 99):
        table.add_row(
            f"latency p{q} (request or publish → agency)", f"{_percentile(all_latencies, q):.1f} ms"
        )
    for way, values in sorted(by_way.items()):
        table.add_row(
            f"  via {way}: p50 / p99",
            f"{_percentile(values, 50):.0f} / {_percentile(values, 99):.0f} ms",
        )
    dead = sum(1 for mid in expected if mid in tally.dead)
    missing = len(_missing(expected, tally))
    table.add_row(
        "ended: delivered / dead-lettered / refused at the way in / missing",
        f"{len(expected) - dead - missing} / {dead} / {len(outcomes) - len(expected)} / {missing}",
    )
    table.add_row("duplicate deliveries seen by agencies", str(tally.duplicates))
    table.add_row(
        "superseded (a late status or payment result, not delivered)", str(len(tally.superseded))
    )
    console.print(table)
