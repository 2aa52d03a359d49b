"""A routes reload reaches observability: routes info, label bounds, /readyz, log masking."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bus import app
from bus.contract.ids import uuid7
from bus.observability.endpoint import Check, HttpEndpoint
from bus.observability.hops import Event, Hop
from bus.observability.masking import LOG_MASKER
from bus.observability.metrics import Metrics
from bus.observability.process import ProcessObservability
from bus.routes.reload import RoutesReloader
from bus.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NEW_TOKEN = "tayninh-token-8f2c41"  # resolved from env:DVCBUS_TAYNINH_TOKEN after the reload


@pytest.fixture
def routes_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    shutil.copy(ROOT / "routes.yaml", path)
    return path


@pytest.fixture(autouse=True)
def _masker_restored() -> Iterator[None]:
    before = LOG_MASKER.secrets
    yield
    LOG_MASKER.secrets = before
    LOG_MASKER._texts.clear()


def edit(path: Path, change: Any) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def add_tayninh(doc: dict[str, Any]) -> None:
    """A new target with a credential of its own; Hà Nội's dossiers go to it."""
    doc["targets"]["tayninh"] = {
        **doc["targets"]["hcmc"],
        "agency": "000.00.00.H72",
        "credentials": {"token": "env:DVCBUS_TAYNINH_TOKEN"},
    }
    for route in doc["routes"]:
        if route["name"] == "hanoi":
            route["to"] = "tayninh"


def observe(routes_file: Path) -> tuple[ProcessObservability, app.Loaded]:
    loaded = app.load(Settings.load(routes_file=routes_file))
    watch = ProcessObservability(loaded, http_port=1, http_host="127.0.0.1", poll_interval=0)
    assert watch.endpoint is not None  # built, not started
    watch.endpoint.add_check(Check("router", lambda: (True, "consuming")))
    return watch, loaded


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def digests(metrics: Metrics) -> set[str]:
    return {
        s.labels["digest"]
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "dvcbus_routes_info"
    }


def routed_to(target: str) -> Hop:
    return Hop(Event.ROUTED, "router", uuid7(), "dossier.submitted", "D-1", targets=(target,))


def test_a_routes_reload_updates_routes_info_labels_readyz_and_log_masking(
    routes_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DVCBUS_TAYNINH_TOKEN", NEW_TOKEN)
    watch, loaded = observe(routes_file)
    metrics, endpoint = watch.metrics, watch.endpoint
    assert endpoint is not None
    old = endpoint.routes_digest
    old_loaded_at = value(metrics, "dvcbus_routes_loaded_timestamp_seconds")
    assert digests(metrics) == {old} and endpoint.readiness()[0]
    watch.sink.record(routed_to("tayninh"))  # not a target yet: a bounded label
    assert value(metrics, "dvcbus_messages_routed_total", type="dossier.submitted",
                 target="unknown") == 1  # fmt: skip

    edit(routes_file, add_tayninh)
    reloader = RoutesReloader(loaded, [watch.learn_routes, watch.apply_routes])
    assert asyncio.run(reloader.reload())
    new = reloader.current.routes.digest
    assert new != old

    assert digests(metrics) == {new}
    assert value(metrics, "dvcbus_routes_info", digest=new) == 1
    loaded_at = value(metrics, "dvcbus_routes_loaded_timestamp_seconds")
    assert old_loaded_at is not None and loaded_at is not None and loaded_at >= old_loaded_at
    ready, body = endpoint.readiness()
    assert ready and body["routes"] == {"loaded": True, "digest": new}

    watch.sink.record(routed_to("tayninh"))
    labels = {"type": "dossier.submitted"}
    assert value(metrics, "dvcbus_messages_routed_total", target="tayninh", **labels) == 1
    assert value(metrics, "dvcbus_messages_routed_total", target="unknown", **labels) == 1

    line = f"agency answered: key {NEW_TOKEN} refused"
    assert NEW_TOKEN not in LOG_MASKER.text(line)  # the new credential never reaches a log


def test_routes_without_a_file_digest_are_not_ready_until_a_file_is_loaded(
    routes_file: Path,
) -> None:
    loaded = app.load(Settings.load(routes_file=routes_file))
    routes = loaded.routes.model_copy()
    routes.set_origin("<built in code>", "", {})
    watch = ProcessObservability(
        dataclasses.replace(loaded, routes=routes),
        http_port=1,
        http_host="127.0.0.1",
        poll_interval=0,
    )
    assert watch.endpoint is not None
    watch.endpoint.add_check(Check("router", lambda: (True, "consuming")))
    ready, body = watch.endpoint.readiness()
    assert not ready and body["routes"] == {"loaded": False, "digest": ""}
    asyncio.run(watch.apply_routes(loaded))
    ready, body = watch.endpoint.readiness()
    assert ready and body["routes"]["digest"] == loaded.routes.digest


def test_an_endpoint_with_every_component_consuming_is_not_ready_without_routes() -> None:
    metrics = Metrics(types=["dossier.submitted"], targets=["hanoi"])
    endpoint = HttpEndpoint(metrics, host="127.0.0.1", port=1)
    endpoint.add_check(Check("router", lambda: (True, "consuming")))
    assert endpoint.readiness()[0] is False
    endpoint.routes_digest = "ab" * 32
    assert endpoint.readiness()[0] is True


PER_TARGET = (
    "dvcbus_circuit_state",
    "dvcbus_adapter_in_flight",
    "dvcbus_adapter_concurrency",
    "dvcbus_oldest_undelivered_age_seconds",
)


def test_a_target_retired_by_a_reload_leaves_no_stale_series() -> None:
    metrics = Metrics(types=["dossier.submitted"], targets=["hanoi", "hcmc"])
    lanes: dict[str, Any] = {
        name: SimpleNamespace(in_flight=1, concurrency=4, started={1: 100.0})
        for name in ("hanoi", "hcmc")
    }
    metrics.watch_lanes(lanes)
    metrics.set_circuit_state("hcmc", "open")
    metrics.refresh(now=160.0)
    assert value(metrics, "dvcbus_oldest_undelivered_age_seconds", target="hcmc") == 60.0
    del lanes["hcmc"]  # the dispatcher retired it (routes reload)
    metrics.refresh(now=170.0)
    for name in PER_TARGET:
        assert value(metrics, name, target="hcmc") is None, name
        assert value(metrics, name, target="hanoi") is not None, name
    lanes["hcmc"] = SimpleNamespace(in_flight=0, concurrency=8, started={})  # added back
    metrics.refresh(now=180.0)
    assert value(metrics, "dvcbus_adapter_concurrency", target="hcmc") == 8
    assert value(metrics, "dvcbus_circuit_state", target="hcmc") == 0
