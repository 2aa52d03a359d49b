"""``python -m benchmarks hops``: what each hop costs its sinks, in µs, on this machine.

Every message passes the log sink and the metrics sink on the event loop, once per hop, and
the router translates pre-reform unit codes on the way; these figures say how much of a core
that is. No broker, no store: the sinks alone, each call timed with ``timeit`` over many
repetitions (the best of a few runs, so a busy neighbour inflates them less). Unit tests
only check what the sinks write; how fast they are is measured here, never asserted.
"""

from __future__ import annotations

import asyncio
import logging
import timeit
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from bus.contract.admin_units import AdminUnits
from bus.contract.ids import uuid7
from bus.observability.hops import Event, Hop
from bus.observability.log import JsonLines
from bus.observability.logsink import LogSink
from bus.observability.metrics import Metrics, MetricsSink

TYPE = "dossier.submitted"
DOSSIER = "000.04.01.H26-261125-0031"


class _Discard:
    """A stream that throws lines away: the cost measured is the sink's, not the terminal's."""

    def write(self, data: bytes) -> None:
        return None

    def flush(self) -> None:
        return None


def sample_hops() -> dict[str, Hop]:
    """One hop of each kind a busy bus emits most, as the router and dispatcher build them."""
    return {
        "routed to one target": Hop(
            Event.ROUTED, "router", uuid7(), TYPE, DOSSIER, targets=("hanoi",), duration=0.0002
        ),
        "routed to two targets": Hop(
            Event.ROUTED,
            "router",
            uuid7(),
            TYPE,
            DOSSIER,
            targets=("justice", "justice-archive"),
            duration=0.0002,
        ),
        "router dead letter": Hop(
            Event.DEAD_LETTERED,
            "router",
            uuid7(),
            TYPE,
            DOSSIER,
            reason="invalid",
            detail="payload.procedure_code: pattern ^[1-3]\\.[0-9]{6}$",
            duration=0.0002,
        ),
        "delivered": Hop(
            Event.DELIVERED,
            "dispatcher",
            uuid7(),
            TYPE,
            DOSSIER,
            target="hanoi",
            duration=0.2,
            reference="HN-1",
        ),
        "retried": Hop(
            Event.RETRIED,
            "dispatcher",
            uuid7(),
            TYPE,
            DOSSIER,
            target="hanoi",
            reason="HTTP 503",
            duration=0.2,
        ),
    }


def per_call_us(call: Callable[[], Any], number: int, repeat: int = 5) -> float:
    """Microseconds per call: the best of ``repeat`` runs of ``number`` calls."""
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def measure(number: int = 20_000) -> dict[str, dict[str, float]]:
    """µs per hop for the JSON log line and the metrics sink, and per unit-code translation."""
    hops = sample_hops()
    log_sink = LogSink()
    log_sink.lines = JsonLines(_Discard(), "bench", logging.INFO)
    metrics_sink = MetricsSink(
        Metrics(types=[TYPE], targets=["hanoi", "justice", "justice-archive"])
    )

    async def in_a_loop() -> dict[str, float]:
        # As in a bus process: lines are buffered and written by the event loop.
        return {
            name: per_call_us(lambda h=hop: log_sink.record(h), number)
            for name, hop in hops.items()
        }

    units = AdminUnits.load()
    return {
        "log line (JSON)": asyncio.run(in_a_loop()),
        "metrics sink": {
            name: per_call_us(lambda h=hop: metrics_sink.record(h), number)
            for name, hop in hops.items()
        },
        "unit codes": {
            "translate an old province and commune": per_call_us(
                lambda: units.translate("02", "00703"), number
            )
        },
    }


def main(console: Console, number: int = 20_000) -> dict[str, dict[str, float]]:
    """Measure and print the table; return the figures (µs)."""
    figures = measure(number)
    table = Table(title=f"µs per call (a hop, for the sinks), best of 5 × {number:,} calls")
    table.add_column("sink")
    table.add_column("hop")
    table.add_column("µs", justify="right")
    for sink, rows in figures.items():
        for name, us in rows.items():
            table.add_row(sink, name, f"{us:.2f}")
    console.print(table)
    return figures
