"""The headers every call to an agency carries, whatever its kind: the bus's contract.

``Idempotency-Key`` (the message id: a repeated delivery is recognisable), ``traceparent``
(W3C trace context: the message's own, or a fresh one) and ``X-Message-Type``; and, when the
bus flags a delivery (a late status sent as history, a forwarded invalid transition:
``Message.flags``), ``X-Bus-Flags`` with the flags comma-separated. One helper
builds them so no kind, reference or plug-in, can drift from the contract.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters.message import Message

__all__ = [
    "FLAGS",
    "IDEMPOTENCY_KEY",
    "MESSAGE_TYPE",
    "TRACEPARENT",
    "contract_headers",
    "new_traceparent",
]

IDEMPOTENCY_KEY = "Idempotency-Key"
TRACEPARENT = "traceparent"
MESSAGE_TYPE = "X-Message-Type"
FLAGS = "X-Bus-Flags"


def new_traceparent() -> str:
    """A fresh W3C traceparent, for messages that arrived without one."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def contract_headers(message: Message) -> dict[str, str]:
    """The contract's headers for one call delivering ``message`` (before any of the kind's)."""
    headers = {
        IDEMPOTENCY_KEY: message.id,
        TRACEPARENT: message.traceparent or new_traceparent(),
        MESSAGE_TYPE: message.type,
    }
    if message.flags:
        headers[FLAGS] = ",".join(message.flags)
    return headers
