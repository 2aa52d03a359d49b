"""Every hop becomes one log event with the fields an operator filters on."""

from __future__ import annotations

from typing import Any

from bus.contract.ids import uuid7
from bus.observability.hops import Event, Hop
from bus.observability.logsink import LogSink

REQUIRED = {"message_id", "type", "dossier_no", "outcome", "attempt"}


class Recorder:
    """A stand-in structlog logger that keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        def emit(event: str, **fields: Any) -> None:
            self.events.append((level, event, fields))

        return emit


def hop(event: Event, **fields: Any) -> Hop:
    stage = fields.pop("stage", "dispatcher")
    return Hop(event, stage, uuid7(), "dossier.submitted", "000.04.01.H26-261125-0031", **fields)


def test_every_event_is_one_line_with_id_type_dossier_outcome_and_attempt() -> None:
    rec = Recorder()
    sink = LogSink(rec)
    for event in Event:
        sink.record(hop(event, target="hanoi", duration=0.25, attempt=2))
    assert len(rec.events) == len(Event)
    for (_level, name, fields), event in zip(rec.events, Event, strict=True):
        assert name == f"dispatcher.{event.value}"
        assert fields.keys() >= REQUIRED
        assert fields["outcome"] == event.value
        assert fields["target"] == "hanoi"
        assert fields["attempt"] == 2
        assert fields["duration_ms"] == 250.0


def test_routed_line_names_every_target_of_the_fan_out() -> None:
    rec = Recorder()
    LogSink(rec).record(hop(Event.ROUTED, stage="router", targets=("justice", "justice-archive")))
    ((level, name, fields),) = rec.events
    assert (level, name) == ("info", "router.routed")
    assert fields["targets"] == ("justice", "justice-archive")


def test_normal_path_is_info_and_dead_letters_are_warnings() -> None:
    rec = Recorder()
    sink = LogSink(rec)
    sink.record(hop(Event.DELIVERED, target="hanoi"))
    sink.record(hop(Event.DEAD_LETTERED, target="hanoi", reason="rejected", detail="HTTP 422"))
    assert [(level, name) for level, name, _ in rec.events] == [
        ("info", "dispatcher.delivered"),
        ("warning", "dispatcher.dead_lettered"),
    ]
    assert rec.events[1][2]["reason"] == "rejected"


def test_agency_answers_quoted_in_detail_are_masked() -> None:
    rec = Recorder()
    LogSink(rec).record(
        hop(
            Event.DEAD_LETTERED,
            target="hanoi",
            reason="rejected",
            detail="agency message: CCCD 001190012345 của minhanh@example.com không hợp lệ",
        )
    )
    detail = rec.events[0][2]["detail"]
    assert "001190012345" not in detail
    assert "minhanh@" not in detail
