"""Is every piece of work the store recorded told by the audit trail? (``dvcbus audit verify``)

The hash chain proves that no record was altered or removed; it cannot tell a hop that was
never written. This check can: every delivery recorded as delivered must have its
``delivered`` hop, every dead letter the router or dispatcher parked its ``dead_lettered``
hop, every message a dispatcher hop names its ``routed`` hop. The store runs it as anti-joins
(``bus.store.audit_gaps``), streamed; here the gaps are counted and the first few of each
kind kept to show, their identity masked as the dead-letter views mask it.

Only work from the trail's cutoff on counts (a purge removed the hops of older work), and
not the last ``settle`` seconds: their hops may still be on their way (a process commits its
hops every 100 ms; a killed process's journal is drained within seconds).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.observability.journal import orphans
from bus.store import AuditGap

KINDS = ("delivered", "dead_lettered", "routed")


@dataclass
class Completeness:
    """What the completeness check found."""

    since: float
    until: float
    counts: Counter[str] = field(default_factory=Counter)
    shown: dict[str, list[AuditGap]] = field(default_factory=dict)
    undrained_journals: int = 0  # journals of processes that are gone, not yet in the chain
    took: float = 0.0  # seconds the check took (set by the caller that timed it)

    @property
    def gaps(self) -> int:
        return sum(self.counts.values())


def check(
    store: Any,
    *,
    settle: float = 10.0,
    show: int = 20,
    journal_dir: Path | None = None,
    now: float | None = None,
) -> Completeness:
    """Count the gaps of the trail; keep the first ``show`` of each kind."""
    until = (time.time() if now is None else now) - settle
    result = Completeness(since=store.audit_cutoff(), until=until)
    for gap in store.audit_gaps(since=result.since, until=until):
        result.counts[gap.missing] += 1
        kept = result.shown.setdefault(gap.missing, [])
        if len(kept) < show:
            kept.append(gap)
    if journal_dir is not None:
        for orphan in orphans(journal_dir):
            result.undrained_journals += 1
            orphan.release()
    return result
