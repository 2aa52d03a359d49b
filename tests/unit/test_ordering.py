"""Status ordering: by the contract's status_at, then sequence, never the envelope's
occurred_at; other types are not ordered."""

import orjson

from bus.contract.envelope import Message
from bus.delivery.ordering import is_older, position
from bus.store import StatusPosition


def message(
    type_: str, status_at: str, sequence: int = 0, occurred_at: str = "2026-11-25T10:00:00+07:00"
) -> Message:
    doc = {
        "id": "m", "type": type_, "version": 1, "source": "000.00.00.H26",
        "occurred_at": occurred_at,
        "payload": {"sequence": sequence, "status": 4, "status_at": status_at},
    }  # fmt: skip
    return Message.from_doc(doc, orjson.dumps(doc))


STATUS = "dossier.status_changed"


def test_positions_compare_by_status_at_then_sequence_across_offsets() -> None:
    a = position(message(STATUS, "2026-11-25T09:00:00+07:00", 5))
    b = position(message(STATUS, "2026-11-25T02:00:00Z", 6))  # same instant
    c = position(message(STATUS, "2026-11-25T09:00:01+07:00", 0))
    assert a is not None and b is not None and c is not None
    assert is_older(a, b) and is_older(b, c) and not is_older(c, a)
    assert not is_older(a, None)


def test_the_envelope_time_does_not_order_statuses() -> None:
    """A status re-sent later (newer envelope) that happened earlier is still the older one."""
    happened_first = position(
        message(STATUS, "2026-11-25T09:00:00+07:00", 1, occurred_at="2026-11-25T12:00:00+07:00")
    )
    happened_later = position(
        message(STATUS, "2026-11-25T09:30:00+07:00", 2, occurred_at="2026-11-25T09:31:00+07:00")
    )
    assert happened_first is not None and happened_later is not None
    assert is_older(happened_first, happened_later)


def test_only_status_changes_are_ordered() -> None:
    assert position(message("payment.confirmed", "2026-11-25T09:00:00+07:00")) is None


def test_equal_positions_are_not_older() -> None:
    p = StatusPosition(1.0, 2)
    assert not is_older(p, StatusPosition(1.0, 2))
