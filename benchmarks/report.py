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
}


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
    }
    targets = {}
    for name, goal in TARGETS.items():
        value = measured[name]
        upper = name in ("p99_ms_at_fixed_load", "soak_rss_growth_percent")
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

    for section in ("router_stage", "dispatcher_e2e", "router_e2e"):
        prof = _get(result, "profile", section)
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

    goals = Table(title="Targets of issue 6 (this machine, this run)")
    for col in ("target", "goal", "measured", "met"):
        goals.add_column(col)
    for name, g in (result.get("targets") or {}).items():
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "—"}[g["met"]]
        goals.add_row(name, g["goal"], _n(g["value"], ",.2f"), met)
    console.print(goals)
