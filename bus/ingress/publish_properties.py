"""The gateway's publish properties, encoded once per request shape instead of per request.

pika encodes properties in Python, field by field, on every publish. A gateway publish's
properties differ from the last one of the same type and sender only in the message id and
the second: :class:`GatewayProperties` keeps the rest encoded per (type, sender), so a
request costs two byte joins (the router's precedent: :mod:`bus.broker.copy_encoding`). The
bytes are pika's own (a unit test compares them); what this path does not cover (a string
too long for an AMQP short string) is left to :func:`bus.broker.wire.gateway_properties`,
which pika refuses exactly as before.
"""

from __future__ import annotations

import struct
import time

from pika import BasicProperties

from bus.broker import wire
from bus.broker.copy_encoding import EncodedProperties

_FLAGS = (
    BasicProperties.FLAG_CONTENT_TYPE
    | BasicProperties.FLAG_HEADERS
    | BasicProperties.FLAG_DELIVERY_MODE
    | BasicProperties.FLAG_MESSAGE_ID
    | BasicProperties.FLAG_TIMESTAMP
    | BasicProperties.FLAG_TYPE
)
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_SENDER = wire.Header.SENDER.value
_MAX_SHAPES = 4096  # (type, sender) pairs kept encoded: a registry's worth, bounded


def _short(text: str) -> bytes | None:
    """An AMQP short string (length byte + UTF-8), or None when it is too long for one."""
    raw = text.encode()
    return bytes((len(raw),)) + raw if len(raw) <= 255 else None


class GatewayProperties:
    """The properties of the gateway's publishes for one broker user (``user_id``)."""

    __slots__ = ("_shapes", "_user", "user_id")

    def __init__(self, user_id: str | None) -> None:
        self.user_id = user_id
        self._user = _short(user_id) if user_id else b""
        # (type, sender) -> (the bytes before the id, the bytes after the timestamp), or
        # None: that shape is pika's to encode (and refuse).
        self._shapes: dict[tuple[str, str], tuple[bytes, bytes] | None] = {}

    def __call__(self, message_id: str, message_type: str, sender: str) -> BasicProperties:
        """What :func:`bus.broker.wire.gateway_properties` returns, with its bytes ready."""
        shape = self._shapes.get((message_type, sender), False)
        if shape is False:
            shape = self._encode_shape(message_type, sender)
        mid = _short(message_id)
        if shape is None or mid is None:
            return wire.gateway_properties(message_id, message_type, sender, self.user_id)
        timestamp = int(time.time())
        head, tail = shape
        props = EncodedProperties(
            head + mid + _U64.pack(timestamp) + tail,
            message_id,
            message_type,
            timestamp,
            {_SENDER: sender},
        )
        if self.user_id:
            props.user_id = self.user_id
        return props

    def _encode_shape(self, message_type: str, sender: str) -> tuple[bytes, bytes] | None:
        kind, name = _short(message_type), sender.encode()
        shape = None
        if kind is not None and self._user is not None and len(_SENDER) <= 255:
            flags = _FLAGS | (BasicProperties.FLAG_USER_ID if self.user_id else 0)
            key = _SENDER.encode()
            table = bytes((len(key),)) + key + b"S" + _U32.pack(len(name)) + name
            content_type = _short(wire.JSON)
            assert content_type is not None
            head = (
                struct.pack(">H", flags)
                + content_type
                + _U32.pack(len(table))
                + table
                + bytes((wire.PERSISTENT,))
            )
            shape = (head, kind + self._user)
        if len(self._shapes) >= _MAX_SHAPES:
            self._shapes.clear()
        self._shapes[(message_type, sender)] = shape
        return shape
