"""The baseline: what a Python team would otherwise build — Celery doing validate-and-forward.

The worker side (this module is the Celery app, ``-A benchmarks.celery_baseline``):

* broker: the same RabbitMQ (``pyamqp://``), a queue and exchange of its own (unique
  name per run, deleted afterwards); no result backend (``task_ignore_result``);
* ``worker --pool prefork --concurrency 2`` with ``task_acks_late=True`` (the message is
  acked after the task ran, as the bus acks after delivery) and the default
  ``worker_prefetch_multiplier`` of 4; gossip, mingle, heartbeat, events and remote
  control are off (they only add broker chatter and exchanges);
* the task does what a typical team writes: ``json.loads``, validation with ``jsonschema``
  (Draft 7 validators built once per worker process from the same ``schemas/`` files,
  ``$ref`` resolved through a ``referencing`` registry — a team would use jsonschema
  directly, not a compiled validator), authorisation and target choice by the bus's own
  ``RoutingTable`` (same rules, same cost), then one call per target: a POST with a pooled
  ``requests.Session`` carrying the same headers as the REST adapter for plain JSON
  targets; for SOAP, mapped or authenticated targets the bus's own adapter (run on one
  event loop per worker process), so both systems make the same calls to the agencies;
  a Celery retry on any transient failure. Invalid, unauthorised or unroutable messages
  are dropped with a return value (a typical team logs them; there is no dead-letter
  queue to publish to).

The queue is a classic durable queue (Celery's default; Celery's quorum-queue support
needs its native delayed delivery, which declares shared exchanges on the broker).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from celery import Celery

QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "dvcbus-bench-celery")
BROKER = os.environ.get("BENCH_CELERY_BROKER", "pyamqp://guest:guest@127.0.0.1:5672//")

app = Celery("dvcbus_bench_celery", broker=BROKER)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=4,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    worker_send_task_events=False,
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_reject_on_worker_lost=True,
)

_state: dict[str, Any] = {}


def _setup() -> dict[str, Any]:
    """Per worker process: validators, routing table, HTTP session (built on first task)."""
    if _state:
        return _state
    import requests
    from jsonschema import Draft7Validator
    from referencing import Registry
    from referencing.jsonschema import DRAFT7

    from bus import app as bus_app
    from bus.delivery import adapter_registry
    from bus.settings import Settings

    loaded = bus_app.load(Settings.load())
    docs = {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(loaded.schemas.directory.glob("*.json"))
    }
    registry = Registry().with_resources(
        (name, DRAFT7.create_resource(doc)) for name, doc in docs.items()
    )
    payloads = {}
    for name, doc in docs.items():
        m = re.match(r"^([a-z]+(?:\.[a-z_]+)+)\.v([1-9][0-9]*)\.json$", name)
        if m:
            payloads[(m[1], int(m[2]))] = Draft7Validator(doc, registry=registry)
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=16)
    session.mount("http://", adapter)
    targets: dict[str, Any] = {}
    for name, target in loaded.routes.targets.items():
        spec = target.spec()
        if _plain_rest(spec):
            headers = {"Content-Type": "application/json; charset=utf-8"}
            extra = spec.options.get("headers") or {}
            headers.update({str(k): str(v) for k, v in extra.items()})
            if spec.credentials.get("token"):
                headers["Authorization"] = f"Bearer {spec.credentials['token']}"
            targets[name] = (
                spec.endpoint,
                str(spec.options.get("method", "POST")).upper(),
                headers,
                (spec.connect_timeout, spec.read_timeout),
            )
        else:  # SOAP, mapped or authenticated kinds: the bus's own adapter, on a private loop
            targets[name] = _adapter_without_batching(adapter_registry.load(spec.adapter), spec)
    _state.update(
        envelope=Draft7Validator(docs["envelope.v1.json"], registry=registry),
        payloads=payloads,
        schemas=loaded.schemas,
        table=loaded.table,
        session=session,
        targets=targets,
    )
    return _state


@app.task(bind=True, max_retries=5, default_retry_delay=1)
def validate_and_forward(self: Any, body: str) -> str:
    from jsonschema import ValidationError

    from bus.contract.rejections import Rejection

    s = _setup()
    try:
        doc = json.loads(body)
        s["envelope"].validate(doc)
        validator = s["payloads"].get((doc["type"], doc["version"]))
        if validator is None:
            return "rejected: unknown type"
        validator.validate(doc["payload"])
        s["table"].authorise(doc["type"], doc["source"])
        resolution = s["table"].resolve(
            doc["type"], doc["source"], s["schemas"].route_attributes(doc)
        )
    except (ValueError, ValidationError, Rejection, KeyError, TypeError) as exc:
        return f"rejected: {type(exc).__name__}"
    data = body.encode("utf-8")
    for name in resolution.targets:
        target = s["targets"][name]
        if isinstance(target, tuple):
            endpoint, method, headers, timeout = target
            headers = dict(headers)
            headers["Idempotency-Key"] = doc["id"]
            headers["X-Message-Type"] = doc["type"]
            if doc.get("traceparent"):
                headers["traceparent"] = doc["traceparent"]
            try:
                resp = s["session"].request(
                    method, endpoint, data=data, headers=headers, timeout=timeout
                )
            except Exception as exc:
                raise self.retry(exc=exc) from None
            if resp.status_code >= 300:
                raise self.retry(exc=RuntimeError(f"HTTP {resp.status_code}"))
        else:
            outcome = _run_adapter(target, doc, data)
            if type(outcome).__name__ == "TransientFailure":
                raise self.retry(exc=RuntimeError(outcome.reason))
            if type(outcome).__name__ == "PermanentFailure":
                return f"rejected by {name}: {outcome.reason}"
    return "delivered"


def _plain_rest(spec: Any) -> bool:
    """A target a team would reach with ``requests`` in three lines: JSON POST/PUT, at most
    a bearer token. Anything else (SOAP, field mapping, basic auth, token endpoints …) goes
    through the bus's own adapter in the baseline too, so both call the agency the same way."""
    simple = {"method", "headers"}
    return (
        spec.adapter == "rest"
        and set(spec.options) <= simple
        and set(spec.credentials) <= {"token"}
    )


def _adapter_without_batching(kind: Any, spec: Any) -> Any:
    """The adapter, told not to wait for company: a task carries one message, so a batching
    window (portal-sync waits up to 50 ms for more progress entries) would only add idle
    time that no Celery team would write."""
    import dataclasses

    try:
        unbatched = dict(spec.options)
        unbatched["batch"] = {**(spec.options.get("batch") or {}), "size": 1, "wait": 0}
        return kind(dataclasses.replace(spec, options=unbatched))
    except Exception:
        return kind(spec)


def _run_adapter(adapter: Any, doc: dict[str, Any], data: bytes) -> Any:
    """Deliver through an async adapter from a synchronous task: one event loop per process."""
    import asyncio

    from bus.contract.envelope import Message

    loop = _state.get("loop")
    if loop is None:
        loop = _state["loop"] = asyncio.new_event_loop()
    if adapter not in _state.setdefault("started", set()):
        loop.run_until_complete(adapter.start())
        _state["started"].add(adapter)
    return loop.run_until_complete(adapter.deliver(Message.from_doc(doc, data)))


# --------------------------------------------------------------------------- the driver


def run(
    ctx: Any, workload: Any, *, messages: int, concurrency: int = 2
) -> dict[str, Any]:  # pragma: no cover - exercised by the smoke test as a whole
    """Start stand-ins and a Celery worker, send ``messages`` tasks, time until delivered."""
    from benchmarks.common import CpuMark, broker_pid, children, cpu_per_1k, memory_kb
    from benchmarks.stages import account, latency_figures, start_bus

    bus = start_bus(ctx, "celery", with_bus=False)
    queue = f"{bus.loaded.names.namespace}.celery"
    env = dict(bus.procs.env)
    env.update(BENCH_CELERY_QUEUE=queue, BENCH_CELERY_BROKER=_pyamqp(ctx.url))
    worker = bus.procs.start(
        "celery-worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks.celery_baseline",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
            "-Q",
            queue,
        ],
        env=env,
    )
    producer_app = Celery("dvcbus_bench_producer", broker=_pyamqp(ctx.url))
    producer_app.conf.update(
        task_default_queue=queue,
        task_default_exchange=queue,
        task_default_routing_key=queue,
        task_serializer="json",
    )
    try:
        from benchmarks.common import wait_until

        def ready() -> bool:
            worker.check()
            return bus.watch.consumers(queue) > 0 and len(children(worker.pid)) >= concurrency

        wait_until(ready, 60, 0.1, what="the Celery worker consuming")
        pool = children(worker.pid)
        pids = {"celery worker (main)": worker.pid, "stand-ins": bus.standin.pid}
        for i, pid in enumerate(pool):
            pids[f"celery pool process {i + 1}"] = pid
        broker = broker_pid()
        if broker:
            pids["broker (beam.smp)"] = broker
        live = [worker, bus.standin]

        # Warm-up: first task per process loads schemas and opens connections.
        warm = workload.batch(200)
        bus.portal_knows(warm)  # as for the bus (benchmarks/README.md): one call per update
        _send(producer_app, warm, queue)
        account(warm, _results(warm), bus.receipts, live)

        batch = workload.batch(messages)
        bus.portal_knows(batch)
        before = CpuMark.take(pids)
        t = time.monotonic()
        results = _send(producer_app, batch, queue)
        published_s = time.monotonic() - t
        acc = account(batch, results, bus.receipts, live, stall=60)
        after = CpuMark.take(pids)
        out = latency_figures(batch, results, acc, published_s)
        out["cpu"] = cpu_per_1k(before, after, messages)
        out["peak_rss_mb"] = {
            name: round(memory_kb(pid).get("VmHWM", 0) / 1024, 1)
            for name, pid in pids.items()
            if not name.startswith("broker")
        }
        out["setup"] = {
            "pool": "prefork",
            "concurrency": concurrency,
            "task_acks_late": True,
            "worker_prefetch_multiplier": 4,
            "validation": "jsonschema Draft7Validator (not compiled), per message",
            "queue": "classic durable",
            "http": "requests.Session, pooled, for plain REST targets; the bus's adapter "
            "(on one event loop per process) for SOAP, mapped or authenticated targets",
        }
        return out
    finally:
        bus.stop()
        with _channel(ctx.url) as ch:
            ch.queue_delete(queue)
            ch.exchange_delete(queue)
        producer_app.close()
        ctx.drop(bus.loaded)


def _pyamqp(url: str) -> str:
    """Celery's broker URL; a cluster's nodes as kombu's failover list (``;``)."""
    from bus.broker.nodes import node_urls

    return ";".join(
        "py" + u.replace("%2F", "/") if u.startswith("amqp://") else u for u in node_urls(url)
    )


def _send(producer_app: Celery, batch: Any, queue: str) -> list[Any]:
    """Publish one task per message (as ``task.delay`` would), recording when each left."""
    from bus.broker.sending import SendResult

    ids = list(batch.expected)
    results = []
    with producer_app.producer_or_acquire() as producer:
        for mid, body in zip(ids, batch.bodies, strict=True):
            results.append(SendResult(message_id=mid, ok=True, published_at=time.time()))
            producer_app.send_task(
                "benchmarks.celery_baseline.validate_and_forward",
                args=(body.decode("utf-8"),),
                queue=queue,
                producer=producer,
            )
    return results


def _results(batch: Any) -> list[Any]:
    from bus.broker.sending import SendResult

    return [SendResult(message_id=m, ok=True, published_at=time.time()) for m in batch.expected]


class _channel:
    def __init__(self, url: str) -> None:
        from bus.broker.nodes import blocking_connection

        self.conn = blocking_connection(url, "dvcbus-bench-celery")

    def __enter__(self) -> Any:
        return self.conn.channel()

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


if __name__ == "__main__":  # pragma: no cover
    print(Path(__file__).name, "is a Celery app: run it through `python -m benchmarks run`")
