"""The metrics sink counts every hop under bounded labels (its cost: python -m benchmarks hops)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from bus.contract.ids import uuid7
from bus.observability.backlog import OldestWaitingEstimate, created_at
from bus.observability.hops import Event, Hop
from bus.observability.metrics import MAX_EXTRA_REASONS, Metrics, MetricsSink

TYPES = ["dossier.submitted", "dossier.status_changed", "payment.confirmed"]
TARGETS = ["hanoi", "portal", "justice", "justice-archive"]


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(types=TYPES, targets=TARGETS)


def value(m: Metrics, name: str, **labels: str) -> float:
    found = m.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def label_values(m: Metrics, name: str, label: str) -> set[str]:
    return {
        sample.labels[label]
        for family in m.registry.collect()
        for sample in family.samples
        if sample.name == name
    }


def routed(*targets: str, type_: str = "dossier.submitted") -> Hop:
    return Hop(Event.ROUTED, "router", uuid7(), type_, "D-1", targets=targets, duration=0.0001)


def test_routing_counts_consumed_once_and_routed_per_target(metrics: Metrics) -> None:
    sink = MetricsSink(metrics)
    sink.record(routed("justice", "justice-archive"))
    sink.record(routed("hanoi"))
    assert value(metrics, "dvcbus_messages_consumed_total", type="dossier.submitted") == 2
    for target in ("justice", "justice-archive", "hanoi"):
        assert (
            value(metrics, "dvcbus_messages_routed_total", type="dossier.submitted", target=target)
            == 1
        )


def test_router_dead_letters_count_as_consumed_and_validation_failures(metrics: Metrics) -> None:
    sink = MetricsSink(metrics)
    for reason in ("invalid", "malformed", "unroutable"):
        sink.record(Hop(Event.DEAD_LETTERED, "router", None, "payment.confirmed", reason=reason))
    assert value(metrics, "dvcbus_messages_consumed_total", type="payment.confirmed") == 3
    labels = {"stage": "router", "type": "payment.confirmed", "target": ""}
    assert value(metrics, "dvcbus_messages_dead_lettered_total", reason="unroutable", **labels) == 1
    assert (
        value(
            metrics, "dvcbus_validation_failures_total", type="payment.confirmed", reason="invalid"
        )
        == 1
    )
    assert value(metrics, "dvcbus_validation_failures_total", type="payment.confirmed",
                 reason="unroutable") == 0  # fmt: skip


def test_every_dispatcher_event_has_its_counter(metrics: Metrics) -> None:
    sink = MetricsSink(metrics)
    counters = {
        Event.DELIVERED: "dvcbus_messages_delivered_total",
        Event.DUPLICATE_SUPPRESSED: "dvcbus_messages_duplicates_suppressed_total",
        Event.SUPERSEDED: "dvcbus_messages_superseded_total",
        Event.DEFERRED: "dvcbus_messages_deferred_total",
        Event.REPLAYED: "dvcbus_messages_replayed_total",
    }
    for event in counters:
        sink.record(Hop(event, "dispatcher", uuid7(), "dossier.status_changed", target="portal"))
    sink.record(
        Hop(Event.RETRIED, "dispatcher", uuid7(), "dossier.status_changed", target="portal",
            reason="HTTP 503", duration=1.5)
    )  # fmt: skip
    labels = {"type": "dossier.status_changed", "target": "portal"}
    for name in counters.values():
        assert value(metrics, name, **labels) == 1, name
    assert value(metrics, "dvcbus_messages_retried_total", reason="http_503", **labels) == 1
    assert (
        value(metrics, "dvcbus_delivery_duration_seconds_count", target="portal", outcome="retried")
        == 1
    )


def test_the_sink_has_a_handler_for_every_event(metrics: Metrics) -> None:
    sink = MetricsSink(metrics)
    assert set(sink._handlers) == set(Event)


def test_delivery_duration_lands_in_buckets_from_50_ms_to_30_s(metrics: Metrics) -> None:
    sink = MetricsSink(metrics)
    for seconds in (0.04, 0.3, 14.0, 29.0):
        sink.record(Hop(Event.DELIVERED, "dispatcher", uuid7(), "dossier.submitted",
                        target="hanoi", duration=seconds))  # fmt: skip
    bucket = "dvcbus_delivery_duration_seconds_bucket"
    labels = {"target": "hanoi", "outcome": "delivered"}
    assert value(metrics, bucket, le="0.05", **labels) == 1
    assert value(metrics, bucket, le="15.0", **labels) == 3
    assert value(metrics, bucket, le="30.0", **labels) == 4


def test_hostile_types_targets_and_reasons_stay_bounded(metrics: Metrics) -> None:
    sink = MetricsSink(metrics)
    for i in range(500):
        sink.record(
            Hop(Event.DEAD_LETTERED, "router", f"id-{i}", f"evil.type{i}", f"0987654{i:03d}",
                reason="invalid")
        )  # fmt: skip
        sink.record(
            Hop(Event.RETRIED, "dispatcher", f"id-{i}", "dossier.submitted", target=f"t{i}",
                reason=f"agency said CCCD 001190012{i:03d} is wrong")
        )  # fmt: skip
        sink.record(
            Hop(Event.RETRIED, "dispatcher", f"id-{i}", "dossier.submitted", target="hanoi",
                reason=f"slug_{i}")
        )  # fmt: skip
    assert label_values(metrics, "dvcbus_messages_consumed_total", "type") == {"unknown"}
    assert label_values(metrics, "dvcbus_messages_retried_total", "target") == {"unknown", "hanoi"}
    reasons = label_values(metrics, "dvcbus_messages_retried_total", "reason")
    assert "other" in reasons
    assert len(reasons) <= MAX_EXTRA_REASONS + 1
    text = str([s for f in metrics.registry.collect() for s in f.samples])
    assert "001190012" not in text and "0987654" not in text


def test_retry_causes_become_short_reason_labels(metrics: Metrics) -> None:
    bounds = metrics.bounds
    assert bounds.reason_of("HTTP 503") == "http_503"
    assert bounds.reason_of("HTTP 599 weird") == "http_5xx"
    assert bounds.reason_of("timeout after connect 2.0s / read 15.0s") == "timeout"
    assert bounds.reason_of("no outcome within 22s (adapter deadline)") == "timeout"
    assert bounds.reason_of("connection failed: connection refused by 127.0.0.1:1") == (
        "connection_failed"
    )
    assert bounds.reason_of("retries_exhausted") == "retries_exhausted"
    assert bounds.reason_of("Yêu cầu của bạn thực hiện thất bại") == "other"


def test_circuit_state_is_a_number_per_target(metrics: Metrics) -> None:
    metrics.set_circuit_state("hanoi", "open")
    assert value(metrics, "dvcbus_circuit_state", target="hanoi") == 1
    metrics.set_circuit_state("hanoi", "half_open")
    assert value(metrics, "dvcbus_circuit_state", target="hanoi") == 2
    metrics.set_circuit_state("hanoi", "closed")
    assert value(metrics, "dvcbus_circuit_state", target="hanoi") == 0
    with pytest.raises(ValueError, match="circuit state"):
        metrics.set_circuit_state("hanoi", "broken")


def test_in_flight_and_concurrency_are_read_from_the_dispatcher_lanes(metrics: Metrics) -> None:
    lane = SimpleNamespace(in_flight=3, concurrency=4, started={1: 100.0, 2: 160.0, 3: 130.0})
    metrics.watch_lanes({"hanoi": lane})
    metrics.refresh()
    assert value(metrics, "dvcbus_adapter_in_flight", target="hanoi") == 3
    assert value(metrics, "dvcbus_adapter_concurrency", target="hanoi") == 4
    assert metrics.estimate.oldest_in_flight["hanoi"] == 100.0
    lane.in_flight = 0
    metrics.refresh()
    assert value(metrics, "dvcbus_adapter_in_flight", target="hanoi") == 0


def test_routes_info_names_the_live_file(metrics: Metrics) -> None:
    metrics.set_routes("abc123", 1_700_000_000.0)
    metrics.set_routes("def456", 1_700_000_100.0)
    assert label_values(metrics, "dvcbus_routes_info", "digest") == {"def456"}
    assert value(metrics, "dvcbus_routes_loaded_timestamp_seconds") == 1_700_000_100.0


def test_registered_age_source_replaces_the_estimate(metrics: Metrics) -> None:
    metrics.register_age_source(lambda: {"hanoi": 10_800.0, "portal": 0.0})
    metrics.refresh()
    assert value(metrics, "dvcbus_oldest_undelivered_age_seconds", target="hanoi") == 10_800


def test_message_ids_tell_their_creation_time() -> None:
    now_ms = 1_764_000_000_123
    assert created_at(uuid7(now_ms)) == now_ms / 1000
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    ulid_time = "".join(alphabet[(now_ms >> (5 * i)) & 31] for i in reversed(range(10)))
    assert created_at(ulid_time + "QZ0V4RRFFQ69G5FA") == now_ms / 1000
    assert created_at("8f3c1e2a-0000-4000-8000-000000000000") is None  # UUIDv4: no time
    assert created_at(None) is None


def test_oldest_age_is_the_oldest_message_in_flight() -> None:
    estimate = OldestWaitingEstimate()
    estimate.watch(["hanoi"])
    now = time.time()
    estimate.queue_depth["hanoi"] = 70  # queued ones were routed after those in flight
    estimate.sample_in_flight("hanoi", 4, oldest=now - 7200, newest=now - 7000)
    assert estimate.ages(now)["hanoi"] == pytest.approx(7200)


def test_oldest_age_grows_while_a_target_is_stuck() -> None:
    estimate = OldestWaitingEstimate()
    estimate.watch(["hcmc", "portal"])
    now = time.time()
    estimate.sample_in_flight("hcmc", 1, oldest=now - 5, newest=now - 5)
    estimate.sample_in_flight("hcmc", 0, oldest=None, newest=None)  # circuit opened
    estimate.queue_depth.update({"hcmc": 40, "portal": 0})
    ages = estimate.ages(now + 3600)
    assert ages["hcmc"] == pytest.approx(3605, abs=1)  # an hour and a bit, and counting
    assert ages["portal"] == 0.0


def test_settled_message_ids_bound_the_age_when_nothing_was_sampled() -> None:
    estimate = OldestWaitingEstimate()
    estimate.watch(["hanoi"])
    now = time.time()
    estimate.settled("hanoi", uuid7(int((now - 600) * 1000)), now)  # created 10 min ago
    estimate.queue_depth["hanoi"] = 3
    assert estimate.ages(now)["hanoi"] == pytest.approx(600, abs=1)


def test_oldest_age_is_unknown_rather_than_guessed() -> None:
    estimate = OldestWaitingEstimate()
    estimate.watch(["hanoi"])
    assert estimate.ages(time.time()) == {"hanoi": None}  # never polled
    estimate.queue_depth["hanoi"] = 5
    assert estimate.ages(time.time()) == {"hanoi": None}  # a backlog, nothing taken yet
    estimate.settled("hanoi", uuid7(0), time.time())  # an id claiming 1970: ignored
    assert estimate.ages(time.time()) == {"hanoi": None}
