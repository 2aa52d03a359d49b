"""A dossier's journey as a table: every hop of every message about it, in order.

Times are Vietnam time with the offset written out (``2026-11-25 09:32:10.123 +07:00``):
a journey runs over days (submitted on Monday, returned on Friday), so every row has its
date. Status updates show their status code. Free text (reasons, details) and the identity
of messages the router refused are masked again on the way out, by the same rule and masker
as the logs (``shown_identity``), so a trail written before masking covered them shows
nothing personal either. Control characters are escaped; brackets are never markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bus.contract.rejections import shown_identity
from bus.observability.audit import AuditRecord
from bus.observability.masking import LOG_MASKER, printable

VN = timezone(timedelta(hours=7))
JOURNEY_WIDTH = 170  # columns a journey's rows need (time with date and offset, detail)
TARGETS_WIDTH = 24  # a fan-out's targets fold onto more lines rather than squeeze the rest


SHORT = {
    "dossier.submitted": "dossier",
    "dossier.status_changed": "status",
    "payment.confirmed": "payment",
}


def vn_time(ts: float) -> str:
    """``2026-11-25 09:32:10.123 +07:00``: Vietnam time, the date and the offset shown."""
    moment = datetime.fromtimestamp(ts, UTC).astimezone(VN)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " +07:00"


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone(VN).strftime("%Y-%m-%d")


def print_journey(console: Console, records: Sequence[AuditRecord]) -> None:
    """Print a journey: as wide as the terminal, or wide enough for whole rows when the
    output goes to a file or a CI log (a journey has ten columns)."""
    table = journey_table(records)
    if console.is_terminal:
        console.print(table)
        return
    width = console.width
    console.width = max(width, JOURNEY_WIDTH)
    try:
        console.print(table)
    finally:
        console.width = width


def journey_table(
    records: Sequence[AuditRecord], mask: Callable[[str], str] | None = None
) -> Table:
    """The audit records of a dossier (from ``Store.audit_records``) for people to read."""
    mask = mask or LOG_MASKER.text
    shown = [
        shown_identity(r.stage, r.reason, r.message_id, r.message_type, r.dossier_no, mask)
        for r in records
    ]
    messages = {r.message_id for r in records}
    dossier = next((d for _, _, d in shown if d), "-")
    if records:
        first, last = _day(records[0].at), _day(records[-1].at)
        days = first if first == last else f"{first} … {last}"
    else:
        days = "-"
    table = Table(
        title=Text(
            printable(
                f"dossier {dossier}: {len(messages)} message(s), {len(records)} hop(s), "
                f"{days} (Vietnam time, UTC+07:00)"
            )
        )
    )
    for col in ("time", "message", "type", "status", "stage", "event"):
        table.add_column(col, no_wrap=True)
    table.add_column("target", overflow="fold", max_width=TARGETS_WIDTH)
    for col in ("try", "ms"):
        table.add_column(col, no_wrap=True)
    table.add_column("detail", overflow="fold", max_width=60)
    for r, (message_id, message_type, _) in zip(records, shown, strict=True):
        reason = f" ({mask(r.reason)})" if r.reason else ""
        cells = (
            vn_time(r.at),
            "…" + (message_id or "-")[-6:],
            SHORT.get(message_type or "", message_type or "-"),
            str(r.status) if r.status is not None else "",
            r.stage,
            r.event + reason,
            (r.target or "-").replace(",", ", "),
            str(r.attempt),
            f"{r.duration * 1000:.1f}" if r.duration is not None else "-",
            mask(r.detail or "")[:120],
        )
        table.add_row(*(Text(printable(c)) for c in cells))  # Text: brackets are not markup
    return table
