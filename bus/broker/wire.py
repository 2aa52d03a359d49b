"""What the bus puts on the wire besides the body: its header names, the properties of each
kind of message it publishes, and the broker's record of a dead-lettering (``x-death``).

Every ``x-dvcbus-*`` header is named once, in :class:`Header`. Every message the bus
publishes gets its properties from one of the builders below, so a routed copy, a retry, a
dead letter, a replay and a sent message cannot drift apart by accident. The builders write
plain ``str`` header keys (the ``.value`` of each member; the same bytes on the wire): the
router and the dispatcher call them for every message, and on Python 3.11 reading an enum
member and hashing a ``str`` subclass both cost more than a plain ``str`` does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pika import BasicProperties

from bus.contract.rejections import Reason

JSON = "application/json"
PERSISTENT = 2  # delivery_mode: written to disk by the broker
MAX_DETAIL = 2000  # characters of a dead letter's detail kept in its header


class Header(StrEnum):
    """The bus's own headers. The value is the header name on the wire."""

    ROUTES = "x-dvcbus-routes"  # routed copy: the routes that matched, comma-separated
    UNITS = "x-dvcbus-units"  # routed copy: notes on admin-unit codes mapped by the router
    TARGET = "x-dvcbus-target"  # routed copy, dead letter: the target it is for
    ATTEMPT = "x-dvcbus-attempt"  # the delivery attempt being made (1 for the first)
    FIRST_ATTEMPT_AT = "x-dvcbus-first-attempt-ms"  # Unix ms: AMQP headers carry no floats
    HISTORY = "x-dvcbus-history"  # JSON list of the failed attempts
    REASON = "x-dvcbus-reason"  # dead letter: why it was parked (a Reason value)
    DETAIL = "x-dvcbus-detail"  # dead letter: the precise cause
    STAGE = "x-dvcbus-stage"  # dead letter: who parked it (router, dispatcher)
    DEAD_AT = "x-dvcbus-dead-at"  # dead letter: ISO time it was parked
    REPLAY_OF = "x-dvcbus-replay-of"  # replayed message: the id of the dead letter it was
    STAMP = "x-dvcbus-stamp"  # routed copy: the router's HMAC over id, target, body (stamp.py)
    SENDER = "x-dvcbus-sender"  # ingress message from the gateway: the authenticated sender id


# The broker's dead-lettering headers: dropped before a message is published again, so a
# retry or a replay starts with no stale death records.
BROKER_DEATH_HEADERS = frozenset(
    {
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-delivery-count",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)

_ROUTES = Header.ROUTES.value
_UNITS = Header.UNITS.value
_TARGET = Header.TARGET.value
_REPLAY_OF = Header.REPLAY_OF.value
_STAMP = Header.STAMP.value


def route_headers(routes: Sequence[str], unit_notes: Sequence[str]) -> dict[str, Any]:
    """Headers every routed copy of one message shares (each copy adds its target)."""
    headers: dict[str, Any] = {_ROUTES: ",".join(routes)}
    if unit_notes:
        headers[_UNITS] = "; ".join(unit_notes)
    return headers


def copy_properties(
    message_id: str | None,
    message_type: str | None,
    shared: dict[str, Any],
    target: str,
    stamp: str,
    timestamp: int | None = None,
) -> BasicProperties:
    """A routed copy for ``target``: the shared route headers plus its target and the router's
    stamp (``bus.broker.stamp``), timestamped ``timestamp`` (Unix seconds; default now).

    The router encodes its copies through ``bus.broker.copy_encoding``, which gives the same
    bytes faster and falls back to this."""
    return BasicProperties(
        content_type=JSON,
        delivery_mode=PERSISTENT,
        message_id=message_id,
        type=message_type,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        headers={**shared, _TARGET: target, _STAMP: stamp},
    )


def replay_properties(
    message_id: str | None, message_type: str | None, headers: dict[str, Any]
) -> BasicProperties:
    """A dead letter sent again: its kept headers (already carrying its id), stamped now."""
    return BasicProperties(
        content_type=JSON,
        delivery_mode=PERSISTENT,
        message_id=message_id,
        type=message_type,
        timestamp=int(time.time()),
        headers=headers,
    )


def retry_properties(original: BasicProperties, headers: dict[str, Any]) -> BasicProperties:
    """A message sent to a delay tier: the original's properties with the attempt headers."""
    return BasicProperties(
        content_type=original.content_type,
        delivery_mode=PERSISTENT,
        message_id=original.message_id,
        type=original.type,
        timestamp=original.timestamp,
        headers=headers,
    )


def ingress_properties(message_id: str) -> BasicProperties:
    """A message a sender publishes to the ingress (``dvcbus send``, the demo, tests)."""
    return BasicProperties(content_type=JSON, delivery_mode=PERSISTENT, message_id=message_id)


def gateway_properties(message_id: str, message_type: str, sender: str) -> BasicProperties:
    """A message the gateway publishes to the ingress for an authenticated sender.

    The sender header is what the gateway established; the router is to trust it only from
    the gateway's own broker user (next increment of issue 12), never from anyone else."""
    return BasicProperties(
        content_type=JSON,
        delivery_mode=PERSISTENT,
        message_id=message_id,
        type=message_type,
        timestamp=int(time.time()),
        headers={Header.SENDER.value: sender},
    )


def dead_letter_properties(
    reason: Reason,
    detail: str,
    *,
    stage: str,
    original: BasicProperties | None = None,
    headers: dict[str, Any] | None = None,
    target: str | None = None,
    message_id: str | None = None,
    message_type: str | None = None,
) -> BasicProperties:
    """Properties of a dead letter: the original's, plus why and where it died.

    ``headers`` replaces the original's headers (it is then extended in place, so pass a
    dict of your own); without it the original's are copied.
    """
    if headers is None:
        headers = dict((original.headers or {}) if original else {})
    headers[Header.REASON.value] = reason.value
    headers[Header.DETAIL.value] = detail[:MAX_DETAIL]
    headers[Header.STAGE.value] = stage
    headers[Header.DEAD_AT.value] = datetime.now(UTC).isoformat(timespec="milliseconds")
    if target is not None:
        headers[_TARGET] = target
    return BasicProperties(
        content_type=(original.content_type if original else None) or JSON,
        delivery_mode=PERSISTENT,
        message_id=message_id or (original.message_id if original else None),
        type=message_type or (original.type if original else None),
        timestamp=original.timestamp if original else None,
        headers=headers,
    )


def stamp_of(headers: dict[str, Any] | None) -> Any:
    """The router's stamp a delivery carries, or None."""
    return headers.get(_STAMP) if headers else None


def replay_of(headers: dict[str, Any] | None) -> Any:
    """The id of the dead letter this message is a replay of, or None."""
    return headers.get(_REPLAY_OF) if headers else None


@dataclass(frozen=True, slots=True)
class Death:
    """One dead-lettering as the broker recorded it."""

    queue: str
    reason: str  # "delivery_limit", "expired", "rejected", "maxlen"


def last_death(headers: dict[str, Any] | None) -> Death | None:
    """The dead-lettering that put this message on the queue it was taken from, or None.

    The rule: the first entry of ``x-death``. RabbitMQ keeps one entry per (queue, reason)
    (its ``count`` is how often the message died there for that reason, not how often it was
    delivered) and keeps the list most recent first: an entry that happens again moves to
    the front. Older entries tell of earlier journeys, never of why the message is here now.
    Without a usable ``x-death`` (a publisher dropped it), the broker's ``x-last-death-*``
    and then ``x-first-death-*`` headers stand in; with neither, None.
    """
    if not headers:
        return None
    deaths = headers.get("x-death")
    head = deaths[0] if isinstance(deaths, list) and deaths else None
    if isinstance(head, dict) and head.get("reason"):
        return Death(header_text(head.get("queue")), header_text(head.get("reason")))
    for prefix in ("x-last-death-", "x-first-death-"):
        reason = headers.get(prefix + "reason")
        if reason:
            return Death(header_text(headers.get(prefix + "queue")), header_text(reason))
    return None


def header_text(value: Any) -> str:
    """A header value as text (the broker's tables carry bytes)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
