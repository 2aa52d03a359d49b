"""Shared-port (multiprocess) mode: series that the normal mode removes read 0, never stale.

prometheus-client keeps each process's values in files under PROMETHEUS_MULTIPROC_DIR and a
scrape reads the files, so ``remove()``/``clear()`` in a process changes nothing a scrape
sees. These tests put the metrics in that mode and read them as a scrape does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, multiprocess, values

from bus.observability.metrics import Metrics

TARGETS = ["hanoi", "hcmc"]
PER_TARGET = (
    "dvcbus_circuit_state",
    "dvcbus_adapter_in_flight",
    "dvcbus_adapter_concurrency",
    "dvcbus_oldest_undelivered_age_seconds",
)


@pytest.fixture
def shared_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    # values.ValueClass is chosen when prometheus-client is imported; switch it for this test
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    yield tmp_path


def scrape(directory: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """What a scrape of the shared port returns (the sum/max over every process's file)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return {
        (s.name, frozenset((k, v) for k, v in s.labels.items() if k != "pid")): s.value
        for family in registry.collect()
        for s in family.samples
    }


def series(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_the_metrics_are_in_multiprocess_mode(shared_dir: Path) -> None:
    metrics = Metrics(types=["dossier.submitted"], targets=TARGETS)
    assert metrics.multiprocess
    metrics.set_circuit_state("hanoi", "open")
    assert series(scrape(shared_dir), "dvcbus_circuit_state", target="hanoi") == 1


def test_a_replaced_routes_digest_reads_0_not_1(shared_dir: Path) -> None:
    metrics = Metrics(types=["dossier.submitted"], targets=TARGETS)
    metrics.set_routes("old-digest", 1_700_000_000.0)
    metrics.set_routes("new-digest", 1_700_000_100.0)
    samples = scrape(shared_dir)
    assert series(samples, "dvcbus_routes_info", digest="new-digest") == 1
    assert series(samples, "dvcbus_routes_info", digest="old-digest") == 0
    assert series(samples, "dvcbus_routes_loaded_timestamp_seconds") == 1_700_000_100.0


def test_an_age_that_can_no_longer_be_told_reads_0_not_its_last_value(shared_dir: Path) -> None:
    metrics = Metrics(types=["dossier.submitted"], targets=TARGETS)
    hanoi = SimpleNamespace(in_flight=1, concurrency=4, started={1: 100.0})
    metrics.watch_lanes({"hanoi": hanoi})
    metrics.refresh(now=10_900.0)  # the oldest message in flight was routed 3 hours ago
    age = "dvcbus_oldest_undelivered_age_seconds"
    assert series(scrape(shared_dir), age, target="hanoi") == 10_800.0
    # Nothing in flight, a backlog, nothing to tell its age by: unknown.
    hanoi.in_flight, hanoi.started = 0, {}
    metrics.estimate.queue_depth["hanoi"] = 5
    metrics.estimate.newest_taken.clear()
    metrics.refresh(now=11_000.0)
    assert metrics.estimate.ages(11_000.0)["hanoi"] is None
    assert series(scrape(shared_dir), age, target="hanoi") == 0  # not the stale 3 hours


def test_a_retired_target_reads_0_everywhere(shared_dir: Path) -> None:
    metrics = Metrics(types=["dossier.submitted"], targets=TARGETS)
    lanes: dict[str, Any] = {
        name: SimpleNamespace(in_flight=2, concurrency=4, started={1: 0.0}) for name in TARGETS
    }
    metrics.watch_lanes(lanes)
    metrics.set_circuit_state("hcmc", "open")
    metrics.refresh(now=600.0)
    del lanes["hcmc"]
    metrics.refresh(now=700.0)
    samples = scrape(shared_dir)
    for name in PER_TARGET:
        assert series(samples, name, target="hcmc") == 0, name
    assert series(samples, "dvcbus_adapter_in_flight", target="hanoi") == 2


def test_audit_gauges_and_counters_add_up_across_processes(shared_dir: Path) -> None:
    metrics = Metrics(types=["dossier.submitted"], targets=TARGETS)
    sink = SimpleNamespace(pending=120, write_failures=3, dropped=0)
    metrics.watch_audit(sink)
    metrics.refresh()
    sink.write_failures = 5
    metrics.refresh()
    samples = scrape(shared_dir)
    assert series(samples, "dvcbus_audit_pending_records") == 120
    assert series(samples, "dvcbus_audit_write_failures_total") == 5
    assert series(samples, "dvcbus_audit_records_dropped_total") == 0
