"""The demo summary's view of the ways in: which way each family came, what the gateway
accepted and refused (by reason, from its answers, beside its own metric), and how every
message ended — delivered, dead-lettered or refused — so that none is missing."""

from __future__ import annotations

import urllib.request
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from bus.demo.send_as_senders import Outcome
from bus.demo.senders import AMQP, WAYS

GATEWAY_METRIC = "dvcbus_gateway_requests"


def gateway_counts(metrics_url: str) -> Counter[tuple[str, str]]:
    """``dvcbus_gateway_requests_total`` by (outcome, reason), read from the gateway."""
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:
        return counts_of(resp.read().decode())


def counts_of(text: str) -> Counter[tuple[str, str]]:
    """The gateway's request counter by (outcome, reason), from Prometheus text."""
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != GATEWAY_METRIC:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = (sample.labels["outcome"], sample.labels.get("reason", ""))
                counts[key] += int(sample.value)
    return counts


def print_ways_in(console: Console, outcomes: list[Outcome]) -> None:
    """Messages per family and way in."""
    counts = Counter((o.planned.family, o.planned.way) for o in outcomes)
    families = sorted({f for f, _ in counts})
    table = Table(title="Ways in (messages per family, as their senders send them)")
    table.add_column("family")
    for way in WAYS:
        table.add_column(way, justify="right")
    table.add_column("total", justify="right")
    for family in families:
        row = [counts.get((family, way), 0) for way in WAYS]
        table.add_row(family, *(str(n) if n else "-" for n in row), str(sum(row)))
    totals = [sum(counts.get((f, way), 0) for f in families) for way in WAYS]
    table.add_row("[bold]all[/]", *(f"[bold]{n}[/]" for n in totals), f"[bold]{len(outcomes)}[/]")
    console.print(table)


def print_gateway(
    console: Console, outcomes: list[Outcome], metric: Counter[tuple[str, str]] | None
) -> None:
    """What the gateway answered (HTTP, SOAP, callback), by reason; its metric beside."""
    through = [o for o in outcomes if o.planned.way != AMQP]
    answers = Counter("accepted" if o.accepted else o.reason for o in through)
    examples = {o.reason: o.planned.kind for o in through if not o.accepted}
    retried = sum(o.attempts - 1 for o in through)
    table = Table(title="Gateway answers (HTTP, SOAP, callback), per request outcome")
    table.add_column("outcome")
    table.add_column("requests", justify="right")
    table.add_column("gateway metric", justify="right")
    table.add_column("e.g. of kind")
    accepted_metric = ""
    if metric is not None:
        accepted_metric = str(metric[("accepted", "")] + metric[("answered_again", "")])
    accepted = str(answers.pop("accepted", 0))
    table.add_row("accepted (the broker holds it)", accepted, accepted_metric, "")
    reasons = set(answers) | {r for (o, r) in (metric or {}) if o == "refused"}
    for reason in sorted(reasons):
        counted = "" if metric is None else str(metric[("refused", reason)])
        table.add_row(
            f"refused: {reason}", str(answers.get(reason, 0)), counted, examples.get(reason, "")
        )
    if retried:
        table.add_row("(retried after Retry-After)", str(retried), "", "")
    console.print(table)
