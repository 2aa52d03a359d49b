"""The gateway's publish properties, encoded once per request shape instead of per request.

pika encodes properties in Python, field by field, on every publish. A gateway publish's
properties differ from the last one of the same type and sender only in the message id and
the second (AMQP writes them side by side), so :class:`GatewayProperties` has pika encode
each (type, sender) once, with a placeholder id, and keeps the bytes around it: a request
then costs two byte joins (the router's precedent: :mod:`bus.broker.copy_encoding`). The
bytes are pika's own, by construction (and a unit test compares them); what this path does
not cover (an id too long for an AMQP short string, a shape whose bytes cannot be split) is
left to :func:`bus.broker.wire.gateway_properties`, which pika refuses exactly as before.
"""

from __future__ import annotations

import struct
import time

from pika import BasicProperties

from bus.broker import wire
from bus.broker.copy_encoding import EncodedProperties

_U64 = struct.Struct(">Q")
_SENDER = wire.Header.SENDER.value
_PLACEHOLDER = "\x00dvcbus-gateway-message-id\x00"  # what no type or sender holds
_MARK = bytes((len(_PLACEHOLDER),)) + _PLACEHOLDER.encode() + _U64.pack(0)  # id, then time
_MAX_SHAPES = 4096  # (type, sender) pairs kept encoded: a registry's worth, bounded


class GatewayProperties:
    """The properties of the gateway's publishes for one broker user (``user_id``)."""

    __slots__ = ("_shapes", "user_id")

    def __init__(self, user_id: str | None) -> None:
        self.user_id = user_id
        # (type, sender) -> (the bytes before the id, the bytes after the timestamp), or
        # None: that shape is pika's to encode (and refuse).
        self._shapes: dict[tuple[str, str], tuple[bytes, bytes] | None] = {}

    def __call__(self, message_id: str, message_type: str, sender: str) -> BasicProperties:
        """What :func:`bus.broker.wire.gateway_properties` returns, with its bytes ready."""
        shape = self._shapes.get((message_type, sender), False)
        if shape is False:
            shape = self._encode_shape(message_type, sender)
        mid = message_id.encode()
        if shape is None or len(mid) > 255:
            return wire.gateway_properties(message_id, message_type, sender, self.user_id)
        timestamp = int(time.time())
        head, tail = shape
        props = EncodedProperties(
            head + bytes((len(mid),)) + mid + _U64.pack(timestamp) + tail,
            message_id,
            message_type,
            timestamp,
            {_SENDER: sender},
        )
        if self.user_id:
            props.user_id = self.user_id
        return props

    def _encode_shape(self, message_type: str, sender: str) -> tuple[bytes, bytes] | None:
        template = wire.gateway_properties(_PLACEHOLDER, message_type, sender, self.user_id)
        template.timestamp = 0
        shape = None
        try:
            raw = b"".join(template.encode())
        except Exception:  # pika refuses this shape: it will refuse each publish of it too
            raw = b""
        if raw.count(_MARK) == 1:
            head, _, tail = raw.partition(_MARK)
            shape = (head, tail)
        if len(self._shapes) >= _MAX_SHAPES:
            self._shapes.clear()
        self._shapes[(message_type, sender)] = shape
        return shape
