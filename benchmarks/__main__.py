"""``python -m benchmarks run``: ceiling, router stage, end to end, Celery, gateway, ratios.

    .venv/bin/python -m benchmarks run                      # the full run (a few minutes)
    .venv/bin/python -m benchmarks run --messages 500 --rounds 1 --latency-seconds 2
    .venv/bin/python -m benchmarks run --profile            # + py-spy on router and dispatcher
    .venv/bin/python -m benchmarks run --phases gateway     # the HTTP gateway beside AMQP
    .venv/bin/python -m benchmarks soak --messages 1000000  # RSS at intervals
    .venv/bin/python -m benchmarks hops                     # µs per hop in the sinks (no broker)
    .venv/bin/python -m benchmarks hotpath                  # µs of the hostile-input checks

Prints a table and writes a JSON file under benchmarks/results/ (and ``--json PATH``).
See benchmarks/README.md for what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from benchmarks import report
from benchmarks.common import (
    RESULTS,
    ROOT,
    background_cores,
    bench_routes,
    broker_version,
    credentials_env,
)
from bus import app
from bus.settings import Settings

console = Console()


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "soak"):
        p = sub.add_parser(name)
        p.add_argument("--messages", type=int, default=50_000 if name == "run" else 1_000_000)
        p.add_argument("--json", type=Path, help="also write the result JSON here")
        p.add_argument("--seed", type=int, default=20251125)
        p.add_argument("--routes", type=Path, default=ROOT / "routes.yaml")
        p.add_argument(
            "--keep-rate-limits",
            action="store_true",
            help="keep routes.yaml's per-target rate limits (default: lifted, see README)",
        )
        p.add_argument("--prefetch", type=int, default=1000, help="router and ceiling prefetch")
        p.add_argument("--amqp-url", default=None, help="default: DVCBUS_AMQP_URL / settings")
    hops = sub.add_parser("hops", help="µs per hop in the log and metrics sinks (no broker)")
    hops.add_argument("--calls", type=int, default=20_000, help="calls per timing run")
    hops.add_argument("--json", type=Path, help="also write the figures (µs) here")
    hot = sub.add_parser(
        "hotpath", help="µs per message of the hostile-input checks, before and now (no broker)"
    )
    hot.add_argument("--messages", type=int, default=2_000, help="messages of the mix timed")
    hot.add_argument("--json", type=Path, help="also write the figures (µs) here")
    run = sub.choices["run"]
    run.add_argument("--rounds", type=int, default=2, help="ceiling/router rounds, alternated")
    run.add_argument(
        "--phases",
        default="ceiling,router,e2e,celery,gateway",
        help="which phases to run (comma-separated subset of ceiling,router,e2e,celery,gateway)",
    )
    run.add_argument(
        "--routers", default="1", help="router processes per router-stage round, e.g. 1,2"
    )
    run.add_argument(
        "--dispatchers",
        default="1",
        help="end to end with this many dispatcher processes, e.g. 1,2 (targets shared out)",
    )
    run.add_argument("--latency-rate", type=float, default=1000.0)
    run.add_argument("--latency-seconds", type=float, default=20.0)
    run.add_argument("--celery-messages", type=int, help="default: --messages")
    run.add_argument("--no-celery", action="store_true")
    run.add_argument("--gateway-rate", type=float, default=500.0, help="gateway fixed load")
    run.add_argument("--gateway-seconds", type=float, default=10.0)
    run.add_argument(
        "--gateway-requests", type=int, help="gateway saturation requests (default: --messages)"
    )
    run.add_argument("--gateway-concurrency", type=int, default=64, help="in flight at saturation")
    run.add_argument(
        "--gateway-load-processes", type=int, default=1, help="load generator processes"
    )
    run.add_argument(
        "--gateway-before",
        metavar="REF",
        help="also run the gateway phase on commit REF's code (or a directory holding a "
        "source tree), alternated with this tree's",
    )
    run.add_argument(
        "--dossier-versions",
        choices=("1", "1,2"),
        default="1,2",
        help="1: every dossier in version 1, the mix of commits before version 2 existed "
        "(to compare CPU per message with them on the same traffic)",
    )
    run.add_argument("--profile", action="store_true", help="extra rounds under py-spy")
    run.add_argument("--soak", action="store_true", help="then soak with --soak-messages")
    run.add_argument("--soak-messages", type=int, default=1_000_000)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(sys.argv[1:] if argv is None else argv)
    if args.command == "hops":
        return _hops(args)
    if args.command == "hotpath":
        return _hotpath(args)
    from benchmarks import stages
    from benchmarks.workload import Workload

    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = RESULTS / f"{args.command}-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    routes_file = bench_routes(
        args.routes, workdir / "routes.yaml", lift_rate_limits=not args.keep_rate_limits
    )
    overrides: dict[str, Any] = {"routes_file": routes_file}
    if args.amqp_url:
        overrides["amqp_url"] = args.amqp_url
    settings = Settings.load(**overrides)
    for name, value in credentials_env(routes_file).items():  # as the bus processes get them
        os.environ.setdefault(name, value)
    loaded = app.load(settings)
    ctx = stages.Context(settings, workdir, console.print, prefetch=args.prefetch)
    workload = Workload(loaded, args.seed, dossier_v2=args.dossier_versions != "1")
    result: dict[str, Any] = {"meta": _meta(args, settings, loaded, workdir)}
    quiet = background_cores()
    result["meta"]["background_cores_busy_before"] = quiet
    if quiet > 0.15:
        console.print(
            f"[yellow]warning: {quiet:.2f} cores already busy with other work on this "
            f"machine; the figures will be low (see 'other processes' in the CPU table)[/]"
        )
    console.print(
        f"[bold]dvc-bus benchmark[/] — {args.command}, {args.messages:,} messages, "
        f"broker {result['meta']['broker']}, work files in {workdir}"
    )
    started = time.monotonic()
    try:
        if args.command == "run":
            _run(args, ctx, workload, result)
        if args.command == "soak" or getattr(args, "soak", False):
            n = args.messages if args.command == "soak" else args.soak_messages
            console.print(f"[bold]soak[/]: {n:,} messages end to end …")
            result["soak"] = _again(stages.soak, ctx, workload, messages=n)
    finally:
        ctx.cleanup()
        result["meta"]["namespaces"] = ctx.created
    result["meta"]["seconds"] = round(time.monotonic() - started, 1)
    result["ratios"], result["targets"] = report.ratios_and_targets(result)
    path = workdir.with_suffix(".json")
    data = orjson.dumps(result, option=orjson.OPT_INDENT_2)
    path.write_bytes(data)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(data)
    report.print_tables(console, result)
    console.print(f"result: {path}" + (f" and {args.json}" if args.json else ""))
    return 0


def _hops(args: argparse.Namespace) -> int:
    from benchmarks import hops

    figures = hops.main(console, args.calls)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    return 0


def _hotpath(args: argparse.Namespace) -> int:
    from benchmarks import hotpath

    routes_file = bench_routes(
        ROOT / "routes.yaml", RESULTS / "hotpath-routes.yaml", lift_rate_limits=True
    )
    for name, value in credentials_env(routes_file).items():
        os.environ.setdefault(name, value)
    loaded = app.load(Settings.load(routes_file=routes_file))
    figures = hotpath.main(console, loaded, args.messages)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    return 0


def _run(args: argparse.Namespace, ctx: Any, workload: Any, result: dict[str, Any]) -> None:
    from benchmarks import stages

    n = args.messages
    phases = {p.strip() for p in args.phases.split(",")}
    routers = [int(x) for x in str(args.routers).split(",") if x.strip()]
    ceilings: list[dict[str, Any]] = []
    stage: dict[int, list[dict[str, Any]]] = {k: [] for k in routers}
    for r in range(args.rounds if phases & {"ceiling", "router"} else 0):
        batch = workload.batch(n)
        result["meta"]["mean_message_bytes"] = round(batch.mean_bytes)
        if "ceiling" in phases:
            console.print(f"round {r + 1}/{args.rounds}: ceiling (bare consume→republish) …")
            ceilings.append(_again(stages.ceiling_round, ctx, batch))
            console.print(f"  {ceilings[-1]['msgs_per_s']:,.0f} msg/s")
        for k in routers if "router" in phases else ():
            console.print(f"round {r + 1}/{args.rounds}: router stage, {k} router process(es) …")
            stage[k].append(_again(stages.router_round, ctx, batch, routers=k))
            console.print(
                f"  {stage[k][-1]['msgs_per_s']:,.0f} msg/s "
                f"({stage[k][-1]['copies_per_s']:,.0f} copies/s)"
            )
    if ceilings:
        result["ceiling"] = _summary(ceilings)
    if stage[routers[0]]:
        result["router_stage"] = _summary(stage[routers[0]])
    if len(routers) > 1 and stage[routers[-1]]:
        result["router_stage_scaling"] = {str(k): _summary(v) for k, v in stage.items()}

    dispatchers = [int(x) for x in str(args.dispatchers).split(",") if x.strip()]
    for k in dispatchers if "e2e" in phases else ():
        console.print(f"end to end: stand-ins + router + {k} dispatcher process(es) …")
        e2e = _again(
            stages.end_to_end,
            ctx,
            workload,
            messages=n,
            latency_rate=args.latency_rate,
            latency_seconds=args.latency_seconds,
            dispatchers=k,
        )
        sat = e2e["saturation"]
        console.print(f"  {sat['msgs_per_s']:,.0f} msg/s end to end")
        if k == dispatchers[0]:
            result["end_to_end"] = e2e
        else:
            result.setdefault("end_to_end_scaling", {})[str(k)] = e2e

    if "celery" in phases and not args.no_celery:
        from benchmarks import celery_baseline

        m = args.celery_messages or n
        console.print(f"Celery baseline: {m:,} messages, prefork ×2, acks_late …")
        result["celery"] = _again(celery_baseline.run, ctx, workload, messages=m)
        console.print(f"  {result['celery']['msgs_per_s']:,.0f} msg/s end to end")

    if "gateway" in phases:
        _gateway(args, ctx, workload, result)

    if args.profile and phases & {"ceiling", "router", "e2e", "celery"}:
        prof = ctx.workdir / "profiles"
        console.print("profile: router stage under py-spy …")
        batch = workload.batch(n)
        router = _again(stages.router_round, ctx, batch, profile=prof / "router-stage.raw")
        console.print("profile: end to end (saturation) under py-spy …")
        e2e = _again(
            stages.end_to_end,
            ctx,
            workload,
            messages=n,
            latency_rate=args.latency_rate,
            latency_seconds=0,
            profile=prof / "e2e.raw",
        )
        result["profile"] = {
            "note": "extra rounds with py-spy attached (--nonblocking, 250 Hz); their "
            "throughput is not the measured one",
            "router_stage": router.get("profile"),
            "router_stage_msgs_per_s": router["msgs_per_s"],
            "dispatcher_e2e": e2e.get("profile", {}).get("dispatcher"),
            "router_e2e": e2e.get("profile", {}).get("router"),
            "e2e_msgs_per_s": e2e["saturation"]["msgs_per_s"],
        }


def _gateway(args: argparse.Namespace, ctx: Any, workload: Any, result: dict[str, Any]) -> None:
    """The gateway phase; with ``--gateway-before`` the old code's too, alternated."""
    from benchmarks import gateway

    kwargs = {
        "requests": args.gateway_requests or args.messages,
        "rate": args.gateway_rate,
        "seconds": args.gateway_seconds,
        "concurrency": args.gateway_concurrency,
        "load_processes": args.gateway_load_processes,
    }
    before = None
    if args.gateway_before:
        before = gateway.snapshot(args.gateway_before, ctx.workdir / "before-code")
    runs: dict[str, list[dict[str, Any]]] = {"now": [], "before": []}
    for r in range(max(1, args.rounds) if before is not None else 1):
        for which in ("before", "now") if before is not None else ("now",):
            label = f"round {r + 1}: " if before is not None else ""
            code = args.gateway_before if which == "before" else "this tree"
            console.print(f"{label}gateway ({code}): HTTP load beside the AMQP ingress …")
            out = _again(
                gateway.gateway_phase,
                ctx,
                workload,
                source=before if which == "before" else None,
                amqp=which == "now",
                profile=ctx.workdir / "profiles" / f"gateway-{which}-{r}.raw"
                if args.profile
                else None,
                **kwargs,
            )
            runs[which].append(out)
            console.print(
                f"  {out['saturation']['requests_per_s']:,.0f} req/s at saturation, p99 "
                f"{_fmt(out.get('fixed_load', {}).get('latency_ms', {}).get('p99'))} ms at "
                f"{args.gateway_rate:,.0f} req/s"
            )
    result["gateway"] = runs["now"][-1]
    if len(runs["now"]) > 1:
        result["gateway"]["rounds"] = [_gateway_round(r) for r in runs["now"]]
    if runs["before"]:
        result["gateway_before"] = {
            "ref": args.gateway_before,
            "rounds": [_gateway_round(r) for r in runs["before"]],
            **runs["before"][-1],
        }


def _gateway_round(out: dict[str, Any]) -> dict[str, Any]:
    sat, fixed = out["saturation"], out.get("fixed_load") or {}
    return {
        "requests_per_s": sat["requests_per_s"],
        "p99_ms_at_fixed_load": (fixed.get("latency_ms") or {}).get("p99"),
        "gateway_cpu_us_per_request": sat["cpu_us_per_request"].get("gateway"),
    }


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.1f}"


def _again(phase: Any, ctx: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a phase; if the broker went away under it (a restart by someone else on a shared
    machine), wait for it and run the phase again, up to twice. The retry is recorded."""
    import pika

    from benchmarks.common import wait_until
    from bus.broker.connection import BrokerError

    for attempt in range(3):
        try:
            out = phase(ctx, *args, **kwargs)
            if attempt:
                out["retried_after_broker_loss"] = attempt
            return out
        except (
            pika.exceptions.AMQPError,
            BrokerError,
            RuntimeError,
            TimeoutError,
            ConnectionError,
        ) as exc:
            if attempt == 2:
                raise
            console.print(f"[yellow]{phase.__name__} interrupted ({exc!r:.120}); retrying[/]")

            def broker_up() -> bool:
                try:
                    broker_version(ctx.url)
                    return True
                except Exception:
                    return False

            wait_until(broker_up, 300, 2, what="the broker back")
            time.sleep(5)
    raise AssertionError("unreachable")


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["msgs_per_s"] for r in rounds]
    out = dict(rounds[-1])
    out["msgs_per_s"] = round(statistics.mean(rates), 1)
    out["copies_per_s"] = round(statistics.mean(r["copies_per_s"] for r in rounds), 1)
    out["rounds"] = [{k: r[k] for k in ("msgs_per_s", "copies_per_s", "seconds")} for r in rounds]
    return out


def _meta(args: argparse.Namespace, settings: Settings, loaded: Any, workdir: Path) -> dict:
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor()
    import pika

    return {
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "messages": args.messages,
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "pika": pika.__version__,
        "broker": f"RabbitMQ {broker_version(settings.amqp_url)}",
        "targets": {
            name: {"adapter": t.adapter, "concurrency": t.concurrency}
            for name, t in sorted(loaded.routes.targets.items())
        },
        "git": _git(),
        "rate_limits_lifted": not args.keep_rate_limits,
        "prefetch": args.prefetch,
        "workdir": str(workdir),
    }


def _git() -> dict[str, Any]:
    """Which code was measured: the commit, and whether the working tree differed from it."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_files": len(changed)}


if __name__ == "__main__":
    sys.exit(main())
