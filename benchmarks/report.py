"""The result as tables, plus the ratios and the issue's targets checked against it."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

TARGETS = {
    "router_stage_msgs_per_s": 8000,
    "router_stage_over_ceiling": 0.65,
    "end_to_end_msgs_per_s": 2500,
    "end_to_end_over_celery": 2.0,
    "p99_ms_at_fixed_load": 50.0,
    "soak_rss_growth_percent": 10.0,
    # issue 12: one gateway process is not the bottleneck of the end-to-end figure
    "gateway_requests_per_s": 2000,
    "gateway_p99_ms_at_fixed_load": 50.0,
}
UPPER = {"p99_ms_at_fixed_load", "soak_rss_growth_percent", "gateway_p99_ms_at_fixed_load"}


def _get(doc: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def ratios_and_targets(result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    ceiling = _get(result, "ceiling", "msgs_per_s")
    router = _get(result, "router_stage", "msgs_per_s")
    e2e = _get(result, "end_to_end", "saturation", "msgs_per_s")
    celery = _get(result, "celery", "msgs_per_s")
    p99 = _get(result, "end_to_end", "fixed_load", "latency_ms", "p99")
    growth = _get(result, "soak", "rss_growth_percent_from_100k") or {}
    ratios = {
        "router_stage_over_ceiling": round(router / ceiling, 3) if router and ceiling else None,
        "end_to_end_over_celery": round(e2e / celery, 2) if e2e and celery else None,
    }
    worst_growth = max((g for g in growth.values() if g is not None), default=None)
    measured = {
        "router_stage_msgs_per_s": router,
        "router_stage_over_ceiling": ratios["router_stage_over_ceiling"],
        "end_to_end_msgs_per_s": e2e,
        "end_to_end_over_celery": ratios["end_to_end_over_celery"],
        "p99_ms_at_fixed_load": p99,
        "soak_rss_growth_percent": worst_growth,
        "gateway_requests_per_s": _get(result, "gateway", "saturation", "requests_per_s"),
        "gateway_p99_ms_at_fixed_load": _get(result, "gateway", "fixed_load", "latency_ms", "p99"),
    }
    targets = {}
    for name, goal in TARGETS.items():
        value = measured[name]
        upper = name in UPPER
        met = None if value is None else (value <= goal if upper else value >= goal)
        targets[name] = {
            "goal": ("≤ " if upper else "≥ ") + f"{goal:g}",
            "value": value,
            "met": met,
        }
    return ratios, targets


def _n(value: Any, fmt: str = ",.0f") -> str:
    return "—" if value is None else format(value, fmt)


def print_tables(console: Console, result: dict[str, Any]) -> None:
    meta = result.get("meta", {})
    t = Table(
        title=f"dvc-bus benchmark — {meta.get('broker')}, {meta.get('cpus')} cores, "
        f"{_n(meta.get('mean_message_bytes'))} B mean message"
    )
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("note", overflow="fold")
    ceiling, stage = result.get("ceiling"), result.get("router_stage")
    if ceiling:
        rounds = ", ".join(_n(r["msgs_per_s"]) for r in ceiling["rounds"])
        t.add_row(
            "ceiling: bare consume→republish",
            f"{_n(ceiling['msgs_per_s'])} msg/s",
            f"rounds: {rounds}",
        )
    if stage:
        rounds = ", ".join(_n(r["msgs_per_s"]) for r in stage["rounds"])
        t.add_row(
            "router stage (validated, routed, confirmed)",
            f"{_n(stage['msgs_per_s'])} msg/s",
            f"{_n(stage['copies_per_s'])} copies/s; rounds: {rounds}",
        )
    for k, s in (result.get("router_stage_scaling") or {}).items():
        t.add_row(f"router stage, {k} router process(es)", f"{_n(s['msgs_per_s'])} msg/s", "")
    e2e = result.get("end_to_end") or {}
    sat, fixed = e2e.get("saturation"), e2e.get("fixed_load")
    if sat:
        t.add_row(
            "end to end (publish → agency receipt)",
            f"{_n(sat['msgs_per_s'])} msg/s",
            f"{_n(sat['deliveries_per_s'])} deliveries/s, publish "
            f"{_n(sat['publish_msgs_per_s'])} msg/s, missing {sat['missing']}, "
            f"duplicates {sat['duplicates']}",
        )
    if fixed:
        lat = fixed["latency_ms"]
        t.add_row(
            f"latency at {_n(fixed['offered_msgs_per_s'])} msg/s offered",
            f"p99 {_n(lat['p99'], '.1f')} ms",
            f"p50 {_n(lat['p50'], '.1f')} · p95 {_n(lat['p95'], '.1f')} · "
            f"max {_n(lat['max'], '.1f')} ms; achieved {_n(fixed['publish_msgs_per_s'])} msg/s",
        )
    if sat:
        lat = sat["latency_ms"]
        t.add_row(
            "latency at saturation",
            f"p99 {_n(lat['p99'], '.0f')} ms",
            f"p50 {_n(lat['p50'], '.0f')} · p95 {_n(lat['p95'], '.0f')} ms (queueing: "
            "the publisher outruns the bus)",
        )
    for k, scaled in (result.get("end_to_end_scaling") or {}).items():
        s_sat, s_fixed = scaled.get("saturation") or {}, scaled.get("fixed_load") or {}
        t.add_row(
            f"end to end, {k} dispatcher processes",
            f"{_n(s_sat.get('msgs_per_s'))} msg/s",
            f"latency at {_n(s_fixed.get('offered_msgs_per_s'))} msg/s offered: p50 "
            f"{_n(_get(s_fixed, 'latency_ms', 'p50'), '.1f')} · p99 "
            f"{_n(_get(s_fixed, 'latency_ms', 'p99'), '.1f')} ms",
        )
    celery = result.get("celery")
    if celery:
        t.add_row(
            "Celery (prefork ×2, acks_late, jsonschema)",
            f"{_n(celery['msgs_per_s'])} msg/s",
            f"{_n(celery['deliveries_per_s'])} deliveries/s, missing {celery['missing']}",
        )
    _gateway_rows(t, result)
    ratios = result.get("ratios") or {}
    t.add_row(
        "ratio router stage / ceiling", _n(ratios.get("router_stage_over_ceiling"), ".2f"), ""
    )
    t.add_row("ratio bus end to end / Celery", _n(ratios.get("end_to_end_over_celery"), ".2f"), "")
    console.print(t)

    cpu = Table(title="CPU seconds per 1,000 messages (cores busy) and peak RSS, per process")
    for col in ("phase", "process", "CPU s / 1k msgs", "cores busy", "peak RSS MB"):
        cpu.add_column(col, justify="left" if col in ("phase", "process") else "right")
    phases = [
        ("ceiling", ceiling, ceiling.get("peak_rss_mb") if ceiling else None),
        ("router stage", stage, stage.get("peak_rss_mb") if stage else None),
        ("end to end", sat, e2e.get("peak_rss_mb")),
        *(
            (f"end to end, {k} dispatchers", x.get("saturation"), x.get("peak_rss_mb"))
            for k, x in (result.get("end_to_end_scaling") or {}).items()
        ),
        ("Celery", celery, celery.get("peak_rss_mb") if celery else None),
        *_gateway_cpu_phases(result),
    ]
    for phase, data, rss in phases:
        if not data:
            continue
        for name, c in data.get("cpu", {}).items():
            cpu.add_row(
                phase,
                name,
                f"{c['cpu_s_per_1k_msgs']:.3f}",
                f"{c['cores_busy']:.2f}",
                _n((rss or {}).get(name), ".1f"),
            )
    console.print(cpu)

    soak = result.get("soak")
    if soak:
        s = Table(
            title=f"Soak: {soak['messages']:,} messages, {_n(soak['msgs_per_s'])} msg/s, "
            f"missing {soak['missing']}"
        )
        names = list(soak["samples"][0]["rss_mb"]) if soak["samples"] else []
        s.add_column("messages", justify="right")
        for name in names:
            s.add_column(f"{name} RSS MB", justify="right")
        for sample in soak["samples"]:
            s.add_row(f"{sample['messages']:,}", *(f"{sample['rss_mb'][n]:.1f}" for n in names))
        console.print(s)

    profiles = [
        (s, _get(result, "profile", s)) for s in ("router_stage", "dispatcher_e2e", "router_e2e")
    ]
    profiles += [
        (f"{key} at saturation", _get(result, key, "saturation", "profile"))
        for key in ("gateway", "gateway_before")
    ]
    for section, prof in profiles:
        if not prof:
            continue
        p = Table(title=f"py-spy top entries — {section} ({prof['samples']} samples)")
        p.add_column("self %", justify="right")
        p.add_column("function (self)", overflow="fold")
        p.add_column("incl. %", justify="right")
        p.add_column("function (inclusive)", overflow="fold")
        for a, b in zip(prof["self"][:12], prof["inclusive"][:12], strict=False):
            p.add_row(f"{a['percent']}", a["function"], f"{b['percent']}", b["function"])
        console.print(p)

    goals = Table(title="Targets of issues 6 and 12 (this machine, this run)")
    for col in ("target", "goal", "measured", "met"):
        goals.add_column(col)
    for name, g in (result.get("targets") or {}).items():
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "—"}[g["met"]]
        goals.add_row(name, g["goal"], _n(g["value"], ",.2f"), met)
    console.print(goals)


def _gateway_rows(t: Table, result: dict[str, Any]) -> None:
    """The gateway's rows (issue 12): fixed load, saturation, the AMQP ingress beside them,
    and the code before a change when ``--gateway-before`` ran it."""
    for key, label in (("gateway", "gateway"), ("gateway_before", "gateway, before")):
        gw = result.get(key)
        if not gw:
            continue
        if key == "gateway_before":
            label = f"gateway at {gw.get('ref')}"
        fixed, sat = gw.get("fixed_load"), gw.get("saturation")
        if fixed:
            lat = fixed["latency_ms"]
            t.add_row(
                f"{label}: request → 202 at {_n(fixed.get('offered_per_s'))} req/s offered",
                f"p99 {_n(lat['p99'], '.1f')} ms",
                f"p50 {_n(lat['p50'], '.1f')} · p95 {_n(lat['p95'], '.1f')} · max "
                f"{_n(lat['max'], '.1f')} ms; achieved {_n(fixed['requests_per_s'])} req/s; "
                f"statuses {fixed['statuses']}; send lag p99 {_n(fixed['send_lag_ms_p99'], '.1f')}"
                " ms",
            )
        if sat:
            lat = sat["latency_ms"]
            cpu = sat.get("cpu_us_per_request") or {}
            t.add_row(
                f"{label}: saturation",
                f"{_n(sat['requests_per_s'])} req/s",
                f"p50 {_n(lat['p50'], '.1f')} · p99 {_n(lat['p99'], '.1f')} ms; statuses "
                f"{sat['statuses']}; CPU µs/request: gateway {_n(cpu.get('gateway'), '.0f')}, "
                f"load generator(s) {_n(_load_cpu(cpu), '.0f')}",
            )
        for part, amqp in (gw.get("amqp_ingress") or {}).items():
            lat = amqp["latency_ms"]
            t.add_row(
                f"AMQP ingress ({'fixed load' if part == 'fixed_load' else 'saturation'})",
                f"{_n(amqp['msgs_per_s'])} msg/s",
                f"publish → confirm p50 {_n(lat['p50'], '.1f')} · p99 {_n(lat['p99'], '.1f')} ms;"
                f" publisher {_n(amqp['publisher_cpu_us_per_message'], '.0f')} µs CPU/message",
            )


def _load_cpu(cpu_us: dict[str, float]) -> float | None:
    found = [v for k, v in cpu_us.items() if k.startswith("load generator")]
    return sum(found) if found else None


def _gateway_cpu_phases(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """CPU rows of the gateway (per 1,000 requests at saturation, and at the fixed load)."""
    rows = []
    for key, name in (("gateway", "gateway"), ("gateway_before", "gateway (before)")):
        gw = result.get(key) or {}
        for part in ("fixed_load", "saturation"):
            if gw.get(part):
                rows.append((f"{name}, {part.replace('_', ' ')}", gw[part], gw.get("peak_rss_mb")))
    return rows
