"""The measured phases: ceiling, router stage, end-to-end (fixed load and saturation), soak.

Each phase gets a namespace of its own on the broker, starts the processes it needs, and
deletes its queues and exchanges when it ends, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import (
    CpuMark,
    Procs,
    QueueWatch,
    broker_pid,
    bus_env,
    cpu_per_1k,
    declare_topology,
    helper_pids,
    memory_kb,
    new_namespace,
    percentile,
    port_open,
    wait_until,
)
from benchmarks.profiling import PySpy, top_entries
from benchmarks.workload import Batch, Workload
from bus import app
from bus.app import Loaded
from bus.broker import topology
from bus.broker.sending import SendResult, send_bodies
from bus.broker.topology import Names, plan
from bus.contract.envelope import STATUS_TYPE, dossier_no_of, status_of
from bus.demo.agencies import endpoints
from bus.settings import Settings

Say = Callable[[str], None]


@dataclass
class Context:
    """What every phase needs: broker, settings (bench routes), where to write, how to talk."""

    settings: Settings  # routes_file = the benchmark's copy (free ports)
    workdir: Path  # logs and profiles of this run
    say: Say
    prefetch: int = 1000
    namespaces: list[Loaded] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # every namespace used, for the record

    @property
    def url(self) -> str:
        return self.settings.amqp_url

    def load(self, tag: str) -> Loaded:
        """A fresh namespace with the bench routes; deleted by :meth:`cleanup`."""
        namespace = new_namespace(tag)
        self.created.append(namespace)
        update: dict[str, Any] = {"namespace": namespace, "log_format": "json"}
        if "store_url" in Settings.model_fields:  # a store of its own per phase
            update["store_url"] = f"sqlite:///{self.workdir / 'store' / namespace}.db"
            (self.workdir / "store").mkdir(parents=True, exist_ok=True)
        settings = self.settings.model_copy(update=update)
        _register_publisher(settings)
        loaded = app.load(settings)
        self.namespaces.append(loaded)
        if "store_url" in update:
            _create_store(update["store_url"])
        return loaded

    def procs(self, loaded: Loaded, phase: str) -> Procs:
        env = bus_env(self.url, loaded.names.namespace, loaded.settings.routes_file)
        env["DVCBUS_ROUTER_PREFETCH"] = str(self.prefetch)
        store_url = getattr(loaded.settings, "store_url", None)
        if store_url:
            env["DVCBUS_STORE_URL"] = store_url
        return Procs(self.workdir / "logs" / phase, env)

    def drop(self, loaded: Loaded) -> None:
        """Delete a namespace's queues and exchanges; retried for a while if the broker is
        away (restarted under us), so an interrupted run leaves nothing behind."""
        deadline = time.monotonic() + 60
        while True:
            try:
                topology.delete(self.url, loaded.topology)
                break
            except Exception:
                if time.monotonic() > deadline:
                    self.say(f"[red]could not delete namespace {loaded.names.namespace}[/]")
                    break
                time.sleep(2)
        if loaded in self.namespaces:
            self.namespaces.remove(loaded)

    def cleanup(self) -> None:
        for loaded in list(self.namespaces):
            self.drop(loaded)


def _register_publisher(settings: Settings) -> None:
    """senders.yaml beside the bench routes: the benchmark's broker user may send every type
    as any source, so the router checks identities as in production (ingress_identity)."""
    try:
        from bus.broker.sending import user_of
        from bus.ingress.senders import catch_all_registry
    except ImportError:  # a checkout from before identities
        return
    types = ("dossier.submitted", "dossier.status_changed", "payment.confirmed")
    text = catch_all_registry("bench", user_of(settings.amqp_url), types)
    settings.routes_file.with_name("senders.yaml").write_text(text, encoding="utf-8")


def _create_store(url: str) -> None:
    """Create and migrate the phase's store before any bus process starts: processes that
    create the same new SQLite file at the same moment can fail with "database is locked"."""
    try:
        from bus.store import open_store
    except ImportError:
        return
    open_store(url).close()


def publish(ctx: Context, names: Names, bodies: list[bytes], rate: float | None = None):
    results = asyncio.run(send_bodies(ctx.url, names, bodies, window=1000, rate=rate))
    refused = [r for r in results if not r.ok]
    if refused:
        raise RuntimeError(f"{len(refused)} publishes refused: {refused[0].explain()}")
    return results


# --------------------------------------------------------------------------- router stage


def ceiling_round(ctx: Context, batch: Batch) -> dict[str, Any]:
    """Bare consume → republish loop: pre-load a quorum queue, then time draining it."""
    loaded = ctx.load("c")
    names = loaded.names
    topo = plan(names, {"out": 20}, 20)  # same queue kinds and arguments as the bus's
    loaded_c = dataclasses.replace(loaded, topology=topo)
    ctx.namespaces[-1] = loaded_c
    declare_topology(ctx.url, topo)
    procs = ctx.procs(loaded_c, "ceiling")
    watch = QueueWatch(ctx.url)
    try:
        publish(ctx, names, batch.bodies)
        n = len(batch.bodies)
        wait_until(lambda: watch.depth(names.ingress_queue) >= n, 30, what="pre-load")
        proc = procs.start(
            "ceiling",
            [
                sys.executable,
                "-m",
                "benchmarks.ceiling",
                ctx.url,
                names.ingress_queue,
                names.deliver_exchange,
                "out",
                str(n),
                str(ctx.prefetch),
            ],
        )
        out_queue = names.delivery_queue("out")
        result = _drain(ctx, watch, proc, names.ingress_queue, [out_queue], n, n, {})

        def reported() -> bool:
            lines = proc.log_path.read_text().strip().splitlines()
            if lines and lines[-1].startswith("{"):
                result["self_reported"] = orjson.loads(lines[-1])
                return True
            return False

        with contextlib.suppress(TimeoutError):
            wait_until(reported, 30, 0.05, what="the ceiling's own figures")
        return result
    finally:
        procs.stop_all()
        watch.close()
        ctx.drop(loaded_c)


def router_round(
    ctx: Context, batch: Batch, routers: int = 1, profile: Path | None = None
) -> dict[str, Any]:
    """Pre-load ingress with no router running, start the router(s), time until every copy
    (or dead letter) is on its queue, confirmed, and ingress is empty. No dispatcher."""
    loaded = ctx.load("r")
    names = loaded.names
    declare_topology(ctx.url, loaded.topology)
    procs = ctx.procs(loaded, "router-stage")
    watch = QueueWatch(ctx.url)
    try:
        publish(ctx, names, batch.bodies)
        n = len(batch.bodies)
        wait_until(lambda: watch.depth(names.ingress_queue) >= n, 30, what="pre-load")
        started = [procs.bus(f"router-{i}", "run", "router") for i in range(routers)]
        outputs = [names.delivery_queue(t) for t in loaded.routes.targets] + [names.dead_queue]
        result = _drain(
            ctx, watch, started, names.ingress_queue, outputs, n, batch.copies, {}, profile
        )
        result["routers"] = routers
        result["copies_expected"] = batch.copies
        return result
    finally:
        procs.stop_all()
        watch.close()
        ctx.drop(loaded)


def _drain(
    ctx: Context,
    watch: QueueWatch,
    procs_: Any,
    source: str,
    outputs: list[str],
    messages: int,
    copies: int,
    extra_pids: dict[str, int],
    profile: Path | None = None,
) -> dict[str, Any]:
    """Time from the first consumer on ``source`` until ``outputs`` hold ``copies`` messages."""
    procs_list = procs_ if isinstance(procs_, list) else [procs_]

    def consuming() -> bool:
        if watch.consumers(source) > 0:
            return True
        for p in procs_list:
            p.check()
        return False

    wait_until(consuming, 60, 0.005, what=f"a consumer on {source}")
    pids = {p.name: p.pid for p in procs_list} | extra_pids
    pids |= helper_pids(pids)
    broker = broker_pid()
    if broker:
        pids["broker (beam.smp)"] = broker
    before = CpuMark.take(pids)
    spy = PySpy(procs_list[0].pid, profile) if profile else None
    try:

        def drained() -> bool:
            if watch.total(outputs) >= copies:
                return True
            for p in procs_list:
                p.check()
            return False

        wait_until(drained, 600, 0.02, what="every copy on its queue")
        after = CpuMark.take(pids)
    finally:
        if spy is not None:
            spy.stop()
    wait_until(lambda: watch.depth(source) == 0, 30, what=f"{source} empty")
    seconds = after.at - before.at
    result: dict[str, Any] = {
        "messages": messages,
        "copies": copies,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(messages / seconds, 1),
        "copies_per_s": round(copies / seconds, 1),
        "cpu": cpu_per_1k(before, after, messages),
        "peak_rss_mb": {
            name: round(memory_kb(pid).get("VmHWM", 0) / 1024, 1)
            for name, pid in pids.items()
            if name != "broker (beam.smp)" and pid not in extra_pids.values()
        },
    }
    if profile is not None:
        result["profile"] = {"raw": str(profile), **top_entries(profile)}
    return result


# --------------------------------------------------------------------------- end to end


class Receipts:
    """What the stand-in agencies received, read incrementally from their control API.

    Receipts not yet claimed by a batch's accounting wait in ``seen``, so batches whose
    deliveries overlap (the soak) each find theirs.
    """

    def __init__(self, control_url: str) -> None:
        self.url = control_url
        self.since = 0
        self.seen: dict[tuple[str, str], float] = {}

    def poll(self) -> list[tuple[str, str]]:
        """Fetch what arrived since the last poll; return the new (message id, target) keys."""
        import urllib.request

        with urllib.request.urlopen(f"{self.url}?since={self.since}", timeout=30) as resp:
            doc = orjson.loads(resp.read())
        self.since = doc["next"]
        new = []
        for item in doc["requests"]:
            if (item.get("answered") or 200) >= 400:
                continue  # refused by a fake API (an update of a record it lacks): no delivery
            key = (item["idempotency_key"], item["target"])
            self.seen[key] = item["received_at"]
            new.append(key)
        return new

    def reset(self) -> None:
        """Forget everything received (only when nothing is in flight)."""
        import urllib.request

        base = self.url.rsplit("/", 1)[0]
        req = urllib.request.Request(f"{base}/reset", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=30):
            pass
        self.since = 0
        self.seen.clear()


@dataclass
class Accounting:
    """A batch's fate as seen by the agencies and the dead-letter queue."""

    received_at: dict[tuple[str, str], float] = field(default_factory=dict)
    duplicates: int = 0
    dead: int = 0
    missing: int = 0
    complete: bool = False


def account(
    batch: Batch,
    results: list[SendResult],
    receipts: Receipts,
    procs: list[Any],
    *,
    dead_count: Callable[[], int | None] | None = None,
    stall: float = 30.0,
) -> Accounting:
    """Wait until every copy reached its agency, then (``dead_count``) until the messages the
    router refuses are dead letters. A copy that never arrives stops the wait after ``stall``
    seconds without progress and is reported as missing."""
    want: set[tuple[str, str]] = set()
    for mid, targets in batch.expected.items():
        want.update((mid, t) for t in targets)
    acc = Accounting()
    seen = receipts.seen
    for key in [k for k in want if k in seen]:
        acc.received_at[key] = seen.pop(key)
    last_progress = time.monotonic()
    while len(acc.received_at) < len(want):
        progressed = False
        for key in receipts.poll():
            if key in want:
                received = seen.pop(key, 0.0)  # 0.0: a second receipt in one poll
                if key in acc.received_at:
                    acc.duplicates += 1
                else:
                    acc.received_at[key] = received
                    progressed = True
        if len(acc.received_at) >= len(want):
            break
        if progressed:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > stall:
            break
        for p in procs:
            p.check()
        time.sleep(0.1)
    acc.missing = len(want) - len(acc.received_at)
    acc.complete = acc.missing == 0
    if dead_count is not None:
        deadline = time.monotonic() + 15
        while True:
            dead = dead_count()
            acc.dead = -1 if dead is None else dead
            if dead is None or dead >= batch.parked or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        acc.complete = acc.complete and acc.dead >= batch.parked
    return acc


def dead_counter(ctx: Context, loaded: Loaded, watch: QueueWatch) -> Callable[[], int | None]:
    """Dead letters of a namespace so far: on the dead-letter queue, plus those a recorder
    already moved into the store (when the bus has one). ``None`` when it cannot tell."""
    offset = {"n": 0}

    def count() -> int | None:
        total = watch.depth(loaded.names.dead_queue)
        url = getattr(loaded.settings, "store_url", None)
        if url:
            try:
                from bus.store import DeadFilter, open_store

                store = open_store(url, migrate=False)
                try:
                    total += len(store.dead_letters(DeadFilter(state=None)))
                finally:
                    store.close()
            except Exception:
                return None
        return total - offset["n"]

    def reset() -> None:
        offset["n"] += count() or 0

    count.reset = reset  # type: ignore[attr-defined]
    return count


def latency_figures(
    batch: Batch, results: list[SendResult], acc: Accounting, published_seconds: float
) -> dict[str, Any]:
    published = {r.message_id: r.published_at for r in results}
    lat = sorted(
        (received - published[mid]) * 1000
        for (mid, _t), received in acc.received_at.items()
        if mid in published
    )
    first = min(r.published_at for r in results)
    last = max(acc.received_at.values(), default=first)
    seconds = max(last - first, 1e-9)
    n = len(results)
    return {
        "messages": n,
        "copies_delivered": len(acc.received_at),
        "dead_lettered": acc.dead,
        "missing": acc.missing,
        "duplicates": acc.duplicates,
        "complete": acc.complete,
        "publish_msgs_per_s": round(n / max(published_seconds, 1e-9), 1),
        "seconds": round(seconds, 3),
        "msgs_per_s": round(n / seconds, 1),
        "deliveries_per_s": round(len(acc.received_at) / seconds, 1),
        "latency_ms": {
            "p50": _r(percentile(lat, 50)),
            "p95": _r(percentile(lat, 95)),
            "p99": _r(percentile(lat, 99)),
            "max": _r(lat[-1] if lat else None),
        },
        "per_target": per_target_figures(published, acc, first),
    }


def per_target_figures(
    published: dict[str, float], acc: Accounting, first: float
) -> dict[str, dict[str, Any]]:
    """Per target: copies, when its last copy arrived, latency: which lane finished last."""
    by_target: dict[str, list[tuple[float, float]]] = {}
    for (mid, target), received in acc.received_at.items():
        if mid in published:
            by_target.setdefault(target, []).append((received, received - published[mid]))
    figures = {}
    for target, pairs in sorted(by_target.items()):
        lat = sorted(1000 * latency for _, latency in pairs)
        figures[target] = {
            "copies": len(pairs),
            "last_at_s": round(max(received for received, _ in pairs) - first, 3),
            "p50_ms": _r(percentile(lat, 50)),
            "p99_ms": _r(percentile(lat, 99)),
        }
    return figures


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass
class RunningBus:
    """Stand-ins, router and dispatcher(s) running in one namespace."""

    loaded: Loaded
    procs: Procs
    standin: Any
    router: Any
    dispatchers: list[Any]
    receipts: Receipts
    watch: QueueWatch
    missing_consumers: list[str]

    @property
    def dispatcher(self) -> Any:
        """The first dispatcher (the one profiled)."""
        return self.dispatchers[0] if self.dispatchers else None

    @property
    def live(self) -> list[Any]:
        return [p for p in (self.router, *self.dispatchers, self.standin) if p is not None]

    @property
    def pids(self) -> dict[str, int]:
        pids = {"router": self.router.pid, "stand-ins": self.standin.pid}
        for i, proc in enumerate(self.dispatchers):
            pids["dispatcher" if len(self.dispatchers) == 1 else f"dispatcher-{i}"] = proc.pid
        pids |= helper_pids(pids)
        broker = broker_pid()
        if broker:
            pids["broker (beam.smp)"] = broker
        return pids

    def portal_knows(self, batch: Batch) -> None:
        """The portal-sync targets hold the dossiers the batch's status updates are about, as
        the portal holds the dossiers it received: an update is one call, not a refused update
        and an insert (the fallback for a counter dossier the portal has never seen)."""
        import urllib.request

        statuses = []
        for body in batch.bodies:
            with contextlib.suppress(orjson.JSONDecodeError):
                doc = orjson.loads(body)
                if isinstance(doc, dict) and doc.get("type") == STATUS_TYPE:
                    statuses.append((dossier_no_of(doc), status_of(doc)))
        base = self.receipts.url.rsplit("/", 1)[0]
        for name, target in self.loaded.routes.targets.items():
            if target.adapter != "portal-sync":
                continue
            inserts = set(target.options.get("insert_statuses", (1, 2)))  # inserted, not known
            numbers = {n: {"MaHoSo": n} for n, code in statuses if n and code not in inserts}
            if not numbers:
                continue
            doc = {"target": name, "key": "records", "entries": numbers}
            req = urllib.request.Request(
                f"{base}/memory", data=orjson.dumps(doc), method="POST",
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(req, timeout=30):
                pass

    def stop(self) -> None:
        self.procs.stop_all()
        self.watch.close()


def split_targets(weights: dict[str, int], targets: list[str], parts: int) -> list[list[str]]:
    """Targets shared among ``parts`` dispatcher processes, heaviest first to the lightest
    share (each target served by one process: a dossier's statuses stay in one process)."""
    shares: list[list[str]] = [[] for _ in range(parts)]
    load = [0] * parts
    for target in sorted(targets, key=lambda t: (-weights.get(t, 0), t)):
        i = load.index(min(load))
        shares[i].append(target)
        load[i] += weights.get(target, 0)
    return [share for share in shares if share]


def start_bus(
    ctx: Context,
    tag: str,
    with_bus: bool = True,
    dispatchers: int = 1,
    weights: dict[str, int] | None = None,
) -> RunningBus:
    loaded = ctx.load(tag)
    names = loaded.names
    procs = ctx.procs(loaded, f"end-to-end-{tag}")
    eps = endpoints(loaded.routes)
    if not eps:
        raise RuntimeError("routes.yaml has no loopback targets to stand in for")
    watch = QueueWatch(ctx.url)
    try:
        standin = procs.bus("stand-ins", "standin")
        wait_until(
            lambda: standin.check() or all(port_open(e.host, e.port) for e in eps),
            30,
            0.1,
            what="stand-in agencies listening",
        )
        router = None
        running: list[Any] = []
        missing: list[str] = []
        if with_bus:
            # One after the other: both open the phase's new store file at start, and two
            # processes creating the same SQLite file at once can fail ("database is locked").
            router = procs.bus("router", "run", "router")
            wait_until(
                lambda: router.check() or watch.consumers(names.ingress_queue) > 0,
                30,
                0.1,
                what="the router consuming",
            )
            if dispatchers <= 1:
                running.append(procs.bus("dispatcher", "run", "dispatcher"))
            else:
                shares = split_targets(weights or {}, list(loaded.routes.targets), dispatchers)
                for i, share in enumerate(shares):
                    args = ("run", "dispatcher", "--targets", ",".join(share))
                    running.append(procs.bus(f"dispatcher-{i}", *args))
            queues = [names.ingress_queue] + [
                names.delivery_queue(t) for t in loaded.routes.targets
            ]

            def ready() -> bool:
                router.check()
                for proc in running:
                    proc.check()
                return watch.consumers(names.ingress_queue) > 0 and all(
                    watch.consumers(q) > 0 for q in queues[1:]
                )

            try:
                wait_until(ready, 30, 0.1, what="router and dispatcher consuming")
            except TimeoutError:
                missing = [q for q in queues if watch.consumers(q) == 0]
                if names.ingress_queue in missing or len(missing) == len(queues) - 1:
                    raise
                ctx.say(f"[yellow]no consumer on {missing}: those targets are not served[/]")
        control = eps[0].url.split("/", 3)[:3]
        receipts = Receipts("/".join(control) + "/_standin/requests")
        return RunningBus(loaded, procs, standin, router, running, receipts, watch, missing)
    except BaseException:
        procs.stop_all()
        watch.close()
        raise


def end_to_end(
    ctx: Context,
    workload: Workload,
    *,
    messages: int,
    latency_rate: float,
    latency_seconds: float,
    profile: Path | None = None,
    dispatchers: int = 1,
) -> dict[str, Any]:
    """The bus with stand-ins: warm-up, fixed offered load (latency), then saturation."""
    bus = start_bus(ctx, "e", dispatchers=dispatchers, weights=workload.weights())
    names = bus.loaded.names
    live = bus.live
    out: dict[str, Any] = {}
    try:
        dead = dead_counter(ctx, bus.loaded, bus.watch)
        warm = workload.batch(500)
        bus.portal_knows(warm)
        results = publish(ctx, names, warm.bodies)
        account(warm, results, bus.receipts, live, dead_count=dead)
        dead.reset()  # type: ignore[attr-defined]

        n_fixed = int(latency_rate * latency_seconds)
        if n_fixed > 0:
            ctx.say(f"  fixed load: {n_fixed:,} messages at {latency_rate:,.0f} msg/s …")
            fixed = workload.batch(n_fixed)
            bus.portal_knows(fixed)
            before = CpuMark.take(bus.pids)
            t = time.monotonic()
            results = publish(ctx, names, fixed.bodies, rate=latency_rate)
            published_s = time.monotonic() - t
            acc = account(fixed, results, bus.receipts, live, dead_count=dead)
            after = CpuMark.take(bus.pids)
            out["fixed_load"] = latency_figures(fixed, results, acc, published_s)
            out["fixed_load"]["offered_msgs_per_s"] = latency_rate
            out["fixed_load"]["cpu"] = cpu_per_1k(before, after, n_fixed)
            dead.reset()  # type: ignore[attr-defined]

        ctx.say(f"  saturation: {messages:,} messages as fast as the broker confirms …")
        sat = workload.batch(messages)
        bus.portal_knows(sat)
        before = CpuMark.take(bus.pids)
        spies = []
        if profile is not None:
            spies = [
                PySpy(bus.dispatcher.pid, profile.with_name("dispatcher.raw")),
                PySpy(bus.router.pid, profile.with_name("router-e2e.raw")),
            ]
        try:
            t = time.monotonic()
            results = publish(ctx, names, sat.bodies)
            published_s = time.monotonic() - t
            acc = account(sat, results, bus.receipts, live, dead_count=dead)
            after = CpuMark.take(bus.pids)
        finally:
            for spy in spies:
                spy.stop()
        out["saturation"] = latency_figures(sat, results, acc, published_s)
        out["saturation"]["cpu"] = cpu_per_1k(before, after, messages)
        if profile is not None:
            out["profile"] = {
                "dispatcher": {"raw": str(spies[0].out), **top_entries(spies[0].out)},
                "router": {"raw": str(spies[1].out), **top_entries(spies[1].out)},
            }
        out["peak_rss_mb"] = {
            name: round(memory_kb(pid).get("VmHWM", 0) / 1024, 1)
            for name, pid in bus.pids.items()
            if not name.startswith("broker")
        }
        out["mean_message_bytes"] = round(sat.mean_bytes)
        out["kinds"] = dict(sat.kinds)
        out["targets_without_consumer"] = bus.missing_consumers
        out["dispatcher_processes"] = len(bus.dispatchers)
        return out
    finally:
        bus.stop()
        ctx.drop(bus.loaded)


# --------------------------------------------------------------------------- soak


def soak(
    ctx: Context,
    workload: Workload,
    *,
    messages: int,
    chunk: int = 50_000,
    sample_every: int = 100_000,
) -> dict[str, Any]:
    """≥ 1,000,000 messages end to end; RSS of each process at every ``sample_every``.

    Publishing runs at most two chunks ahead of delivery (the broker is not the thing being
    soaked); at each sample point everything published so far is accounted for, the
    stand-ins' records and the dead-letter queue are cleared, and RSS is read.
    """
    bus = start_bus(ctx, "s")
    names = bus.loaded.names
    live = bus.live
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    sent = delivered = dead = 0
    missing = 0
    before = CpuMark.take(bus.pids)
    try:
        pending: list[tuple[Batch, list[SendResult]]] = []
        while sent < messages:
            size = min(chunk, messages - sent)
            batch = workload.batch(size)
            bus.portal_knows(batch)
            results = publish(ctx, names, batch.bodies)
            sent += size
            pending.append((batch, results))
            at_sample = sent % sample_every == 0 or sent >= messages
            while pending and (len(pending) > 1 or at_sample):
                b, r = pending.pop(0)
                acc = account(b, r, bus.receipts, live, stall=60)
                delivered += len(acc.received_at)
                missing += max(acc.missing, 0)
            if at_sample:
                dead += bus.watch.purge(names.dead_queue)  # when no recorder drains it
                bus.receipts.reset()
                sample = {
                    "messages": sent,
                    "elapsed_s": round(time.monotonic() - started, 1),
                    "rss_mb": {},
                    "peak_rss_mb": {},
                }
                for name, pid in bus.pids.items():
                    if name.startswith("broker"):
                        continue
                    mem = memory_kb(pid)
                    sample["rss_mb"][name] = round(mem.get("VmRSS", 0) / 1024, 1)
                    sample["peak_rss_mb"][name] = round(mem.get("VmHWM", 0) / 1024, 1)
                samples.append(sample)
                ctx.say(
                    f"  soak {sent:>9,}: router {sample['rss_mb']['router']} MB, "
                    f"dispatcher {sample['rss_mb']['dispatcher']} MB "
                    f"({sent / (time.monotonic() - started):,.0f} msg/s)"
                )
        after = CpuMark.take(bus.pids)
        dead += bus.watch.purge(names.dead_queue)
        dead += dead_counter(ctx, bus.loaded, bus.watch)() or 0  # moved into the store
    finally:
        bus.stop()
        ctx.drop(bus.loaded)
    elapsed = time.monotonic() - started
    growth: dict[str, float | None] = {}
    base = next((s for s in samples if s["messages"] >= 100_000), samples[0] if samples else None)
    if base is not None and samples:
        for name in ("router", "dispatcher"):
            first, last = base["rss_mb"].get(name), samples[-1]["rss_mb"].get(name)
            growth[name] = round(100 * (last - first) / first, 1) if first else None
    return {
        "messages": sent,
        "seconds": round(elapsed, 1),
        "msgs_per_s": round(sent / elapsed, 1),
        "copies_delivered": delivered,
        "dead_lettered": dead,
        "missing": missing,
        "rss_growth_percent_from_100k": growth,
        "samples": samples,
        "cpu": cpu_per_1k(before, after, sent),
    }
