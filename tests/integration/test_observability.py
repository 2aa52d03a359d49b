"""Metrics and health of real bus processes on the real broker, scraped over HTTP."""

from __future__ import annotations

import hashlib
import json
import signal
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import yaml
from prometheus_client.parser import text_string_to_metric_families

from adapters.testing.standin import Behaviour
from bus import app
from bus.routing.pipeline import Forward, Park, RouterPipeline
from bus.settings import Settings
from tests.integration.harness import ROOT, free_port, send, wait_for_consumers, wait_until

EXAMPLES = ROOT / "schemas" / "examples"
INVALID = [
    "dossier.submitted.v1/invalid/id-number-10-digits.json",
    "dossier.submitted.v1/invalid/phone-landline-with-dots.json",
    "payment.confirmed.v1/invalid/amount-negative.json",
    "dossier.status_changed.v1/invalid/status-11.json",
    "envelope/invalid/unknown-type.json",
]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def scrape(port: int) -> Samples:
    status, text = get(port, "/metrics")
    assert status == 200, f"/metrics on {port} answered {status}"
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def by(samples: Samples, name: str, *keys: str) -> Counter[tuple[str, ...]]:
    out: Counter[tuple[str, ...]] = Counter()
    for (n, ls), v in samples.items():
        if n == name and v:
            labels = dict(ls)
            out[tuple(labels[k] for k in keys)] += int(v)
    return out


def ready(port: int) -> bool:
    return get(port, "/readyz")[0] == 200


def decisions(bus, bodies: list[bytes]) -> list[Forward | Park]:
    settings = Settings.load(routes_file=bus.routes_file, namespace=bus.names.namespace)
    loaded = app.load(settings)
    pipeline = RouterPipeline(loaded.schemas, loaded.table, settings.max_message_bytes)
    return [pipeline.decide(b) for b in bodies]


def test_scraped_metrics_count_what_router_and_dispatcher_did(bus) -> None:
    router_port, dispatcher_port = free_port(), free_port()
    bus.process("run", "router", "--http-port", str(router_port))
    bus.process("run", "dispatcher", "--http-port", str(dispatcher_port))
    wait_for_consumers(
        [bus.names.ingress_queue, *(bus.names.delivery_queue(t) for t in bus.routes.targets)]
    )
    assert wait_until(lambda: ready(router_port) and ready(dispatcher_port), 20)

    valid = [p.read_bytes() for p in sorted(EXAMPLES.glob("*/valid/*.json"))]
    invalid = [(EXAMPLES / name).read_bytes() for name in INVALID] + [b'{"id": "broken", ']
    bodies = valid + invalid
    assert all(r.ok for r in send(bus.names, bodies))
    expected = decisions(bus, bodies)
    copies = Counter(
        (d.message_type, t) for d in expected if isinstance(d, Forward) for t in d.targets
    )
    parked = Counter((d.reason.value,) for d in expected if isinstance(d, Park))
    assert sum(copies.values()) > 10 and parked[("invalid",)] >= 3  # the run exercises both paths

    def settled() -> Counter[tuple[str, ...]]:
        """Copies each target's adapter finished with: delivered, or refused and parked."""
        samples = scrape(dispatcher_port)
        return by(samples, "dvcbus_messages_delivered_total", "type", "target") + by(
            samples, "dvcbus_messages_dead_lettered_total", "type", "target"
        )

    assert wait_until(lambda: settled() == copies, 30), (settled(), copies)
    router = scrape(router_port)
    dispatcher = scrape(dispatcher_port)
    delivered = by(dispatcher, "dvcbus_messages_delivered_total", "target")
    assert sum(delivered.values()) >= len(valid)  # most copies reach their agency

    assert total(router, "dvcbus_messages_consumed_total") == len(bodies)
    assert by(router, "dvcbus_messages_routed_total", "type", "target") == copies
    assert by(router, "dvcbus_messages_dead_lettered_total", "reason") == parked
    failures = by(router, "dvcbus_validation_failures_total", "type", "reason")
    assert failures[("dossier.submitted", "invalid")] == 2
    assert failures[("unknown", "malformed")] == 1
    assert failures[("unknown", "unknown_type")] == 1  # an unknown type never becomes a label

    for (target,), n in delivered.items():
        assert (
            total(
                dispatcher,
                "dvcbus_delivery_duration_seconds_count",
                target=target,
                outcome="delivered",
            )
            == n
        )
    for target in bus.routes.targets:
        assert ("dvcbus_adapter_in_flight", frozenset({("target", target)})) in dispatcher
        assert total(dispatcher, "dvcbus_circuit_state", target=target) == 0
    assert total(router, "dvcbus_routes_info", digest=bus.routes.digest) == 1
    assert total(dispatcher, "dvcbus_ready", component="dispatcher") == 1
    assert total(router, "dvcbus_ready", component="router") == 1

    def queues_polled() -> bool:
        samples = scrape(router_port)
        return total(samples, "dvcbus_queue_poll_timestamp_seconds") > 0 and all(
            total(samples, "dvcbus_queue_consumers", queue=f"deliver.{t}", target=t) >= 1
            for t in bus.routes.targets
        )

    assert wait_until(queues_polled, 15)
    samples = scrape(router_port)
    assert total(samples, "dvcbus_queue_messages", queue="ingress") == 0
    assert total(samples, "dvcbus_queue_consumers", queue="ingress") == 1
    assert ("dvcbus_queue_messages", frozenset({("queue", "dead"), ("target", "")})) in samples


def test_readyz_is_503_until_the_broker_is_reached_and_livez_answers_meanwhile(bus) -> None:
    port = free_port()
    dead_broker = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    bus.process("run", "router", "--http-port", str(port), DVCBUS_AMQP_URL=dead_broker)
    assert wait_until(lambda: get(port, "/livez")[0] == 200, 20)
    status, body = get(port, "/readyz")
    assert status == 503
    assert json.loads(body)["components"] == {"router": "connecting"}
    assert "dvcbus_ready" in get(port, "/metrics")[1]


def test_processes_sharing_one_port_report_the_sum_of_all(bus, tmp_path: Path) -> None:
    port = free_port()
    shared = tmp_path / "prometheus-multiproc"
    shared.mkdir()
    for _ in range(2):
        bus.process("run", "router", "--http-port", str(port), PROMETHEUS_MULTIPROC_DIR=str(shared))
    assert wait_until(
        lambda: sum("http.listening" in p.log_text() for p in bus.processes) == 2, 20
    ), [p.log_text()[-4000:] for p in bus.processes]
    wait_for_consumers([bus.names.ingress_queue])

    body = (EXAMPLES / "dossier.status_changed.v1/valid/received.json").read_bytes()
    assert all(r.ok for r in send(bus.names, [body] * 40))

    def consumed() -> float:
        return total(scrape(port), "dvcbus_messages_consumed_total")

    assert wait_until(lambda: consumed() == 40, 20), consumed()
    assert {consumed() for _ in range(6)} == {40}  # whichever process answers
    pids = {dict(ls).get("pid") for (n, ls) in scrape(port) if n == "dvcbus_ready"}
    assert len(pids) == 2


def test_a_sighup_reload_is_seen_in_metrics_readyz_and_masked_logs(bus) -> None:
    token = "tayninh-token-5d81e0"  # the new target's credential (env:DVCBUS_TAYNINH_TOKEN)
    router_port, dispatcher_port = free_port(), free_port()
    router = bus.process(
        "run", "router", "--http-port", str(router_port), DVCBUS_TAYNINH_TOKEN=token
    )
    dispatcher = bus.process(
        "run", "dispatcher", "--http-port", str(dispatcher_port), DVCBUS_TAYNINH_TOKEN=token
    )
    wait_for_consumers(
        [bus.names.ingress_queue, *(bus.names.delivery_queue(t) for t in bus.routes.targets)]
    )
    assert wait_until(lambda: ready(router_port) and ready(dispatcher_port), 20)
    old = bus.routes.digest
    loaded_before = total(scrape(router_port), "dvcbus_routes_loaded_timestamp_seconds")

    doc = yaml.safe_load(bus.routes_file.read_text(encoding="utf-8"))
    # Tây Ninh: a new target on the hcmc stand-in's address, with a credential of its own.
    doc["targets"]["tayninh"] = {
        **doc["targets"]["hcmc"],
        "agency": "000.00.00.H72",
        "credentials": {"token": "env:DVCBUS_TAYNINH_TOKEN"},
        "options": {"response": {"error_code": {"field": "error_code", "success": ["0"]}}},
    }
    for route in doc["routes"]:
        if route["name"] == "hanoi":
            route["to"] = "tayninh"
    bus.routes_file.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    new = hashlib.sha256(bus.routes_file.read_bytes()).hexdigest()
    for proc in (router, dispatcher):
        proc.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "routes.reloaded" in router.log_text(), 15)
    assert wait_until(lambda: "routes.reloaded" in dispatcher.log_text(), 15)

    for port in (router_port, dispatcher_port):
        samples = scrape(port)
        assert total(samples, "dvcbus_routes_info", digest=new) == 1
        assert ("dvcbus_routes_info", frozenset({("digest", old)})) not in samples
        status, body = get(port, "/readyz")
        assert status == 200 and json.loads(body)["routes"]["digest"] == new
    assert total(scrape(router_port), "dvcbus_routes_loaded_timestamp_seconds") > loaded_before

    # The agency behind the new target refuses, quoting the credential it was sent.
    answer = {"error_code": "7", "message": f"bad key {token}"}
    bus.standins.program("hcmc", Behaviour(status=422, body=answer))
    dossier = orjson.loads(
        (EXAMPLES / "dossier.submitted.v1/valid/citizen-hanoi-online.json").read_bytes()
    )
    assert all(r.ok for r in send(bus.names, [orjson.dumps(dossier)]))

    def refused() -> float:
        return total(scrape(dispatcher_port), "dvcbus_messages_dead_lettered_total",
                     target="tayninh")  # fmt: skip

    assert wait_until(lambda: refused() == 1, 20), scrape(dispatcher_port)
    router_samples = scrape(router_port)
    assert total(router_samples, "dvcbus_messages_routed_total", target="tayninh") == 1
    assert total(router_samples, "dvcbus_messages_routed_total", target="unknown") == 0
    assert total(scrape(dispatcher_port), "dvcbus_adapter_concurrency", target="tayninh") > 0
    router.terminate()
    dispatcher.terminate()
    assert "bad key" in dispatcher.log_text()  # the refusal is logged …
    assert token not in dispatcher.log_text() + router.log_text()  # … its credential is not
    trail = str(
        [r.fields() for r in bus.store.audit_records(dossier_no=dossier["payload"]["dossier_no"])]
    )
    assert "bad key" in trail and token not in trail
