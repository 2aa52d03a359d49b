"""The patched frame reader hands pika the same frames, in order, however the bytes arrive."""

from __future__ import annotations

import random

import pytest
from pika import connection as pika_connection
from pika import exceptions, frame, spec

import bus.broker.connection  # noqa: F401  (applies the patches)


class FakeConnection:
    """Just the state pika's reader touches."""

    _on_data_available = pika_connection.Connection._on_data_available

    def __init__(self, reset_after: int | None = None) -> None:
        self._frame_buffer = b""
        self.bytes_received = 0
        self.frames: list[object] = []
        self.reset_after = reset_after

    def _process_frame(self, value: object) -> None:
        self.frames.append(value)
        if self.reset_after is not None and len(self.frames) == self.reset_after:
            self._frame_buffer = b""  # what pika's state reset does when the connection closes


def stream(n: int) -> tuple[bytes, list[tuple[str, object]]]:
    """n deliveries (method, header, body frames) plus a heartbeat, and what they decode to."""
    parts, expected = [], []
    for i in range(n):
        body = (f"message {i} " * random.randint(1, 300)).encode()
        props = spec.BasicProperties(message_id=f"m{i}", headers={"x-target": "hanoi"})
        deliver = spec.Basic.Deliver(
            consumer_tag="c", delivery_tag=i + 1, exchange="x", routing_key="k"
        )
        parts += [
            frame.Method(1, deliver).marshal(),
            frame.Header(1, len(body), props).marshal(),
            frame.Body(1, body).marshal(),
        ]
        expected += [("deliver", i + 1), ("header", f"m{i}"), ("body", body)]
    parts.append(frame.Heartbeat().marshal())
    expected.append(("heartbeat", None))
    return b"".join(parts), expected


def described(value: object) -> tuple[str, object]:
    if isinstance(value, frame.Method):
        return "deliver", value.method.delivery_tag
    if isinstance(value, frame.Header):
        return "header", value.properties.message_id
    if isinstance(value, frame.Body):
        return "body", value.fragment
    assert isinstance(value, frame.Heartbeat)
    return "heartbeat", None


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, 256 * 1024])
def test_frames_arrive_whole_and_in_order_whatever_the_read_size(chunk: int) -> None:
    assert getattr(FakeConnection._on_data_available, "_dvcbus_tuned", False)
    random.seed(chunk)
    data, expected = stream(200)
    conn = FakeConnection()
    for start in range(0, len(data), chunk):
        conn._on_data_available(data[start : start + chunk])
    assert [described(f) for f in conn.frames] == expected
    assert conn._frame_buffer == b""
    assert conn.bytes_received == len(data)


def test_a_partial_frame_is_kept_for_the_next_read() -> None:
    data, expected = stream(3)
    conn = FakeConnection()
    conn._on_data_available(data[:-20])
    assert len(conn.frames) == len(expected) - 2  # last body frame and heartbeat still open
    assert conn._frame_buffer == data[conn.bytes_received : -20]
    conn._on_data_available(data[-20:])
    assert [described(f) for f in conn.frames] == expected


def test_a_connection_reset_while_processing_stops_reading() -> None:
    data, _ = stream(10)
    conn = FakeConnection(reset_after=4)
    conn._on_data_available(data)
    assert len(conn.frames) == 4
    assert conn._frame_buffer == b""


def test_a_corrupt_frame_end_is_refused_as_pika_refuses_it() -> None:
    good = frame.Method(1, spec.Basic.Ack(delivery_tag=1)).marshal()
    conn = FakeConnection()
    with pytest.raises(exceptions.InvalidFrameError):
        conn._on_data_available(good[:-1] + b"\x00")
