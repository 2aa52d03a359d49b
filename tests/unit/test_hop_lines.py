"""The hot-path hop lines: one JSON object per line, masked, levelled, batched in a loop."""

import asyncio
import io
import logging

import orjson

from bus.observability.hops import Event, Hop
from bus.observability.log import JsonLines
from bus.observability.logsink import LogSink


class Stream(io.BytesIO):
    def lines(self) -> list[dict]:
        return [orjson.loads(line) for line in self.getvalue().splitlines()]


def sink(level: int = logging.INFO) -> tuple[LogSink, Stream]:
    stream = Stream()
    log_sink = LogSink()
    log_sink.lines = JsonLines(stream, "dispatcher", level)
    return log_sink, stream


def test_a_hop_line_has_the_fields_an_operator_filters_on() -> None:
    log_sink, stream = sink()
    log_sink.record(
        Hop(
            Event.DELIVERED,
            "dispatcher",
            "m1",
            "dossier.submitted",
            "000.00.12.H26-261125-0001",
            target="hanoi",
            duration=0.0123,
            reference="HN-1",
        )
    )
    (line,) = stream.lines()
    assert line["event"] == "dispatcher.delivered" and line["level"] == "info"
    assert (line["message_id"], line["target"], line["duration_ms"]) == ("m1", "hanoi", 12.3)
    assert line["timestamp"].endswith("Z") and line["process"] == "dispatcher"


def test_personal_data_in_free_text_and_unvalidated_fields_is_masked() -> None:
    log_sink, stream = sink()
    log_sink.record(
        Hop(
            Event.DEAD_LETTERED,
            "router",
            "id 001190012345",
            "t",
            "0987654321",
            reason="invalid",
            detail="agency said: CCCD 079201001234, minh@example.vn",
        )
    )
    text = stream.getvalue().decode()
    for secret in ("001190012345", "0987654321", "079201001234", "minh@example.vn"):
        assert secret not in text
    assert stream.lines()[0]["level"] == "warning"


def test_the_level_filters_the_normal_path_out() -> None:
    log_sink, stream = sink(logging.WARNING)
    log_sink.record(Hop(Event.ROUTED, "router", "m1", "t", None, targets=("portal",)))
    log_sink.record(Hop(Event.DEAD_LETTERED, "router", "m2", "t", None, reason="invalid"))
    assert [line["message_id"] for line in stream.lines()] == ["m2"]


def test_inside_an_event_loop_lines_are_written_in_batches() -> None:
    async def run() -> tuple[int, int]:
        log_sink, stream = sink()
        for n in range(100):
            log_sink.record(Hop(Event.ROUTED, "router", f"m{n}", "t", None, targets=("p",)))
        before = len(stream.getvalue())
        await asyncio.sleep(0.1)
        return before, len(stream.lines())

    before, after = asyncio.run(run())
    assert before == 0 and after == 100
