"""A dossier's journey as a table: every hop of every message about it, in order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

from rich.table import Table

from bus.audit import AuditRecord

VN = timezone(timedelta(hours=7))


SHORT = {
    "dossier.submitted": "dossier",
    "dossier.status_changed": "status",
    "payment.confirmed": "payment",
}


def _vn(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone(VN).strftime("%H:%M:%S.%f")[:-3]


def journey_table(records: Sequence[AuditRecord]) -> Table:
    """The audit records of a dossier (from ``Store.audit_records``) for people to read."""
    messages = {r.message_id for r in records}
    dossier = next((r.dossier_no for r in records if r.dossier_no), "-")
    day = datetime.fromtimestamp(records[0].at, UTC).astimezone(VN).date() if records else ""
    table = Table(
        title=f"dossier {dossier}: {len(messages)} message(s), {len(records)} hop(s), {day}"
    )
    for col in ("time +7", "message", "type", "stage", "event", "target", "try", "ms"):
        table.add_column(col, no_wrap=True)
    table.add_column("detail", overflow="fold", max_width=50)
    for r in records:
        table.add_row(
            _vn(r.at),
            "…" + (r.message_id or "-")[-6:],
            SHORT.get(r.message_type or "", r.message_type or "-"),
            r.stage,
            r.event + (f" ({r.reason})" if r.reason else ""),
            r.target or "-",
            str(r.attempt),
            f"{r.duration * 1000:.1f}" if r.duration is not None else "-",
            (r.detail or "")[:100],
        )
    return table
