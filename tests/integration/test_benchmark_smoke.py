"""The benchmark runs end to end on a small N and reports every figure (values are not judged).

Throughput is never asserted here: CI machines differ and a timed assertion would be noise.
This only proves that ``python -m benchmarks run`` still works against the real broker,
stand-ins, router, dispatcher and Celery, and that its JSON carries every figure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pika
import pytest

from tests.integration.harness import AMQP_URL, ROOT

PROCESS_FIGURES = ("cpu_s_per_1k_msgs", "cores_busy")


@pytest.mark.timeout(240)
def test_benchmark_runs_on_a_small_n_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "run",
            "--messages",
            "500",
            "--rounds",
            "1",
            "--latency-rate",
            "500",
            "--latency-seconds",
            "2",
            "--gateway-seconds",
            "1",
            "--amqp-url",
            AMQP_URL,  # the administrator: the benchmark declares and deletes its namespaces
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = orjson.loads(out.read_bytes())

    for phase in ("ceiling", "router_stage"):
        assert doc[phase]["msgs_per_s"] > 0
        assert doc[phase]["rounds"]
        for figures in doc[phase]["cpu"].values():
            assert set(PROCESS_FIGURES) <= set(figures)
        assert all(mb > 0 for mb in doc[phase]["peak_rss_mb"].values())

    e2e = doc["end_to_end"]
    for part in ("fixed_load", "saturation"):
        figures = e2e[part]
        assert figures["complete"], figures
        assert figures["missing"] == 0
        assert figures["msgs_per_s"] > 0
        assert set(figures["latency_ms"]) == {"p50", "p95", "p99", "max"}
        assert all(v is not None for v in figures["latency_ms"].values())
        assert {"router", "dispatcher", "stand-ins"} <= set(figures["cpu"])
    assert {"router", "dispatcher", "stand-ins"} <= set(e2e["peak_rss_mb"])

    assert doc["gateway"]["saturation"]["statuses"] == {"202": 500}  # a default phase now

    celery = doc["celery"]
    assert celery["complete"] and celery["missing"] == 0
    assert celery["msgs_per_s"] > 0
    assert any(name.startswith("celery pool process") for name in celery["cpu"])

    assert set(doc["ratios"]) == {"router_stage_over_ceiling", "end_to_end_over_celery"}
    assert all(v is not None for v in doc["ratios"].values())
    for name in (
        "router_stage_msgs_per_s",
        "router_stage_over_ceiling",
        "end_to_end_msgs_per_s",
        "end_to_end_over_celery",
        "p99_ms_at_fixed_load",
    ):
        assert doc["targets"][name]["value"] is not None
    assert "ratio router stage / ceiling" in proc.stdout

    # The benchmark cleans up after itself: no queue of its namespaces is left behind.
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        ch = conn.channel()
        leftovers = []
        for ns in _namespaces(doc):
            try:
                ch.queue_declare(f"{ns}.ingress", passive=True)
                leftovers.append(ns)
            except pika.exceptions.ChannelClosedByBroker:
                ch = conn.channel()
        assert leftovers == []
    finally:
        conn.close()


def _namespaces(doc: dict) -> list[str]:
    return list(doc["meta"].get("namespaces", []))


@pytest.mark.timeout(180)
def test_the_gateway_phase_reports_every_figure_beside_the_amqp_ingress(tmp_path: Path) -> None:
    """A real gateway under a real load generator: every request answered 202 and on the
    ingress queue, latency percentiles, CPU per request of the gateway and of the load
    generator, and the AMQP ingress figures of the same run (values are not judged)."""
    out = tmp_path / "gateway.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "benchmarks", "run", "--phases", "gateway",
            "--messages", "300", "--gateway-rate", "200", "--gateway-seconds", "1",
            "--amqp-url", AMQP_URL, "--json", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = orjson.loads(out.read_bytes())
    gateway = doc["gateway"]
    for part, requests in (("fixed_load", 200), ("saturation", 300)):
        figures = gateway[part]
        assert figures["statuses"] == {"202": requests}, figures["statuses"]
        assert figures["on_ingress_queue"] == requests
        assert figures["requests_per_s"] > 0
        assert all(v is not None for v in figures["latency_ms"].values())
        assert {"gateway", "load generator"} <= set(figures["cpu_us_per_request"])
    assert gateway["fixed_load"]["offered_per_s"] == 200
    for part in ("fixed_load", "saturation"):
        amqp = gateway["amqp_ingress"][part]
        assert amqp["confirmed"] == amqp["messages"] > 0
        assert amqp["msgs_per_s"] > 0
    assert (
        doc["targets"]["gateway_requests_per_s"]["value"] == gateway["saturation"]["requests_per_s"]
    )
