"""Closed sets keep the exact strings the store, logs and metrics have always shown."""

from bus.delivery.circuit import CircuitState
from bus.observability.hops import Stage
from bus.observability.metrics import CIRCUIT_STATES
from bus.store import DeadLetterState, FinalOutcome


def test_circuit_states_are_the_strings_metrics_know() -> None:
    assert {s.value for s in CircuitState} == {"closed", "open", "half_open"}
    assert set(CircuitState) == set(CIRCUIT_STATES)


def test_store_outcomes_and_dead_letter_states_keep_their_column_values() -> None:
    assert [o.value for o in FinalOutcome] == ["delivered", "superseded", "dead_lettered"]
    assert [s.value for s in DeadLetterState] == ["parked", "replayed", "purged"]


def test_stages_keep_their_names_in_log_events() -> None:
    assert [s.value for s in Stage] == ["router", "dispatcher", "operator", "broker", "gateway"]
    assert f"{Stage.ROUTER}.routed" == "router.routed"
