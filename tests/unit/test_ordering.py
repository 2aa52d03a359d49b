"""Status ordering: by occurred_at, then sequence; other types are not ordered."""

import orjson

from bus.contract.envelope import Message
from bus.delivery.ordering import is_older, position
from bus.store import StatusPosition


def message(type_: str, occurred_at: str, sequence: int = 0) -> Message:
    doc = {
        "id": "m", "type": type_, "version": 1, "source": "000.00.00.H26",
        "occurred_at": occurred_at, "payload": {"sequence": sequence, "status": 4},
    }  # fmt: skip
    return Message.from_doc(doc, orjson.dumps(doc))


def test_positions_compare_by_time_then_sequence_across_offsets() -> None:
    a = position(message("dossier.status_changed", "2026-11-25T09:00:00+07:00", 5))
    b = position(message("dossier.status_changed", "2026-11-25T02:00:00Z", 6))  # same instant
    c = position(message("dossier.status_changed", "2026-11-25T09:00:01+07:00", 0))
    assert a is not None and b is not None and c is not None
    assert is_older(a, b) and is_older(b, c) and not is_older(c, a)
    assert not is_older(a, None)


def test_only_status_changes_are_ordered() -> None:
    assert position(message("payment.confirmed", "2026-11-25T09:00:00+07:00")) is None


def test_equal_positions_are_not_older() -> None:
    p = StatusPosition(1.0, 2)
    assert not is_older(p, StatusPosition(1.0, 2))
