"""Dossier statuses on the real bus: ordered by the contract's key, checked against the
lifecycle (statuses.yaml) per target, late ones kept as history where the target keeps it.

The example routes.yaml (Hà Nội's statuses go to ``portal``), a real router and dispatcher,
RabbitMQ, a SQLite store and stand-in agencies.
"""

from __future__ import annotations

from typing import Any

import orjson

from bus.contract.ids import uuid7
from bus.store import DELIVERED, SUPERSEDED
from tests.integration.harness import ROOT, collect_dead, send, wait_until

EXAMPLE = ROOT / "schemas" / "examples" / "dossier.status_changed.v1" / "valid" / "received.json"


def status(dossier_no: str, code: int, sequence: int, status_at: str, **envelope: Any) -> bytes:
    doc = orjson.loads(EXAMPLE.read_bytes())
    doc.update(id=uuid7(), correlation_id=dossier_no, **envelope)
    doc["payload"].update(dossier_no=dossier_no, status=code, sequence=sequence)
    doc["payload"]["status_at"] = status_at
    doc["payload"].pop("previous_status", None)
    return orjson.dumps(doc)


def outcome(bus, body: bytes, target: str) -> str | None:
    mid = orjson.loads(body)["id"]
    found = [o for m, t, o in bus.store.outcomes([mid]) if t == target]
    return found[0] if found else None


def send_and_wait_for(bus, body: bytes, expected: str, target: str = "portal") -> bool:
    """Send ``body``; whether its outcome at ``target`` becomes ``expected`` within 20 s."""
    send(bus.names, [body])
    return wait_until(lambda: outcome(bus, body, target) == expected, 20)


def portal_calls(bus) -> list[tuple[str, str | None]]:
    """(message id, X-Bus-Flags) of each call the portal stand-in received."""
    return [
        (orjson.loads(r.body)["id"], r.headers.get("X-Bus-Flags"))
        for r in bus.standins.received("portal")
    ]


def test_result_returned_then_processing_is_dead_lettered_naming_both(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    dossier = "000.04.01.H26-261125-0101"
    returned = status(dossier, 10, 5, "2026-11-25T10:00:00+07:00")
    assert send_and_wait_for(bus, returned, DELIVERED)
    processing = status(dossier, 4, 6, "2026-11-25T10:05:00+07:00")
    send(bus.names, [processing])

    (dead,) = collect_dead(bus.store, 1)
    assert (dead.reason, dead.target, dead.stage) == ("invalid_transition", "portal", "dispatcher")
    assert "10 (result returned) → 4 (processing)" in dead.detail
    assert [mid for mid, _ in portal_calls(bus)] == [orjson.loads(returned)["id"]]


def test_a_status_re_sent_later_that_happened_earlier_is_superseded(bus) -> None:
    """Ordered by status_at and sequence: a newer envelope time does not make it newer."""
    bus.start_router()
    bus.start_dispatcher()
    dossier = "000.04.01.H26-261125-0102"
    processing = status(
        dossier, 4, 2, "2026-11-25T10:00:00+07:00", occurred_at="2026-11-25T10:00:05+07:00"
    )
    assert send_and_wait_for(bus, processing, DELIVERED)
    received = status(
        dossier, 2, 1, "2026-11-25T09:30:00+07:00", occurred_at="2026-11-25T11:00:00+07:00"
    )
    assert send_and_wait_for(bus, received, SUPERSEDED)
    assert [mid for mid, _ in portal_calls(bus)] == [orjson.loads(processing)["id"]]


def keep_history_and_forward_at_portal(doc: dict[str, Any]) -> None:
    doc["targets"]["portal"]["statuses"] = "history"
    doc["routes"][0]["on_invalid_transition"] = "forward"  # status-to-portal


def test_history_is_delivered_flagged_and_a_route_may_forward_invalid_steps(make_bus) -> None:
    bus = make_bus(keep_history_and_forward_at_portal)
    bus.start_router()
    bus.start_dispatcher()
    dossier = "000.04.01.H26-261125-0103"
    processing = status(dossier, 4, 2, "2026-11-25T10:00:00+07:00")
    assert send_and_wait_for(bus, processing, DELIVERED)
    late_received = status(dossier, 2, 1, "2026-11-25T09:30:00+07:00")
    assert send_and_wait_for(bus, late_received, DELIVERED)
    returned = status(dossier, 10, 3, "2026-11-25T11:00:00+07:00")  # 4 → 10: not a step
    assert send_and_wait_for(bus, returned, DELIVERED)

    assert portal_calls(bus) == [
        (orjson.loads(processing)["id"], None),
        (orjson.loads(late_received)["id"], "status-history"),
        (orjson.loads(returned)["id"], "invalid-transition"),
    ]
    # The late one did not move the dossier's current status back.
    position = bus.store.status_position(dossier, "portal")
    assert position is not None and position.status == 10
    # Each flagged delivery says why in the audit trail.

    def notes() -> dict[str, str]:
        return {
            r.message_id: r.detail
            for r in bus.store.audit_records(dossier_no=dossier)
            if r.event == "delivered" and r.detail
        }

    assert wait_until(lambda: len(notes()) == 2, 10), notes()
    said = notes()
    assert said[orjson.loads(late_received)["id"]].startswith("late status delivered as history")
    assert "forwarded as the target asks" not in said[orjson.loads(returned)["id"]]
    assert said[orjson.loads(returned)["id"]].startswith("forwarded as its route asks: status 4")


def test_portal_sync_inserts_a_dossier_it_does_not_know_and_counts_it_once(bus) -> None:
    """A counter dossier's result returned, at the portal's sync API through the bus: the
    update is answered "không tồn tại" (404), the record is inserted instead; one delivery."""
    from tests.integration.test_chaos import repeated_deliveries

    bus.start_router()
    bus.start_dispatcher()
    dossier = "000.00.12.H04-261125-0201"  # Cao Bằng: the shared platform's, to portal-sync
    returned = status(dossier, 10, 3, "2026-11-25T10:00:00+07:00", source="000.00.00.H04")
    doc = orjson.loads(returned)
    doc["payload"]["agency"] = "000.00.12.H04"
    returned = orjson.dumps(doc)
    assert send_and_wait_for(bus, returned, DELIVERED, "portal-sync")
    calls = bus.receipts("portal-sync")
    assert [(r.path.rsplit("/", 1)[-1], r.status) for r in calls] == [
        ("cap-nhat", 404),
        ("them-moi", 200),
    ]
    assert repeated_deliveries(bus)["repeated"] == 0
