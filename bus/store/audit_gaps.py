"""Completeness of the audit trail, as SQL anti-joins between the store's records and the chain.

Each query walks one side (deliveries, dead letters, dispatcher hops) and probes the chain
by an index (``audit_log_message``, ``audit_log_body``) for the hop that must exist, so the
work is one index lookup per row and only the gaps come back: nothing is loaded whole into
memory. ``{a}`` is where the chain's tables are: ``audit.`` for SQLite (its second file,
attached), nothing for PostgreSQL (one database).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bus.store.base import DELIVERED, AuditGap

# A delivery the store recorded as delivered has the dispatcher's ``delivered`` hop.
DELIVERIES = """
SELECT d.message_id, d.target, d.at FROM deliveries d
WHERE d.outcome = ? AND d.at >= ? AND d.at < ?
  AND NOT EXISTS (SELECT 1 FROM {a}audit_log h WHERE h.message_id = d.message_id
                  AND h.event = 'delivered' AND h.target = d.target)
ORDER BY d.at
"""

# A dead letter the router or the dispatcher parked has its ``dead_lettered`` hop, found by
# the body's digest and the target: the router masks the id of a message it refused, and
# may not have had one. (The broker's own dead letters — delivery limit, no queue — are
# parked by no bus process, so no hop tells of them; the dead letter is their record.)
DEAD_LETTERS = """
SELECT dl.id, dl.message_id, dl.message_type, dl.dossier_no, dl.target, dl.reason,
       dl.stage, dl.dead_at FROM dead_letters dl
WHERE dl.stage IN ('router', 'dispatcher') AND dl.dead_at >= ? AND dl.dead_at < ?
  AND NOT EXISTS (SELECT 1 FROM {a}audit_log h WHERE h.body_sha256 = dl.body_sha256
                  AND h.event = 'dead_lettered'
                  AND COALESCE(h.target, '') = COALESCE(dl.target, ''))
ORDER BY dl.id
"""

# A message a dispatcher acted on was routed there: a ``routed`` hop, or an operator's
# ``replayed`` hop that sent it to the target. Not a copy the dispatcher refused as
# ``unauthorised``: it came around the router, so no router hop can exist.
ROUTED = """
SELECT h.message_id, MIN(h.at) FROM {a}audit_log h
WHERE h.stage = 'dispatcher' AND h.message_id IS NOT NULL AND h.at >= ? AND h.at < ?
  AND NOT (h.event = 'dead_lettered' AND COALESCE(h.reason, '') = 'unauthorised')
  AND NOT EXISTS (SELECT 1 FROM {a}audit_log r WHERE r.message_id = h.message_id
                  AND (r.event = 'routed' OR (r.event = 'replayed' AND r.stage = 'operator')))
GROUP BY h.message_id
ORDER BY MIN(h.at)
"""

PAGE = 1000


def find_gaps(
    cursor_for: Any, sql: Any, audit_prefix: str, since: float, until: float
) -> Iterator[AuditGap]:
    """Every gap between ``since`` and ``until``; ``cursor_for(name)`` gives a cursor that
    streams its rows (``sql`` turns ``?`` into the dialect's placeholder)."""
    for name, text, params in (
        ("deliveries", DELIVERIES, (DELIVERED.value, since, until)),
        ("dead_letters", DEAD_LETTERS, (since, until)),
        ("routed", ROUTED, (since, until)),
    ):
        cur = cursor_for(f"audit_gaps_{name}")
        try:
            cur.execute(sql(text.format(a=audit_prefix)), params)
            while rows := cur.fetchmany(PAGE):
                for row in rows:
                    yield _gap(name, row)
        finally:
            cur.close()


def _gap(name: str, row: tuple[Any, ...]) -> AuditGap:
    if name == "deliveries":
        message_id, target, at = row
        return AuditGap("delivered", message_id, target, float(at), stage="dispatcher")
    if name == "dead_letters":
        id_, message_id, message_type, dossier_no, target, reason, stage, dead_at = row
        return AuditGap(
            "dead_lettered",
            message_id,
            target,
            float(dead_at),
            stage=stage,
            reason=reason,
            message_type=message_type,
            dossier_no=dossier_no,
            dead_letter_id=int(id_),
        )
    message_id, at = row
    return AuditGap("routed", message_id, None, float(at), stage="router")
