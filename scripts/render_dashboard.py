"""Render the dashboard's key panels from Prometheus to a PNG, and a scenario to look at.

Grafana does not install here, so this draws what an operator would look at first, from
the same PromQL as ``config/grafana/dvcbus-dashboard.json``: the oldest waiting message per
target, the delivery error ratio, throughput, backlog, latency and circuit states.

    python scripts/render_dashboard.py render --prometheus http://127.0.0.1:9090 \\
        --minutes 10 --out docs/img/dashboard.png
    .venv/bin/python scripts/render_dashboard.py scenario [--seconds 180] [--out PATH]

``scenario`` runs the whole thing on this machine: stand-in agencies where **hanoi answers
slowly** (8 s a call) and **hcmc is down** (nothing listens on its port), a router and a
dispatcher (``dvcbus run``, their HTTP endpoints on free ports), a real Prometheus (Debian
package ``prometheus``) scraping them every 2 s with ``config/prometheus/alerts.yml``
loaded, realistic traffic from the demo generator at a steady rate; then it renders the
PNG, stops everything and removes its namespace.

Only the standard library and matplotlib are needed to render; ``render`` imports nothing
of the bus, so it runs with any Python that has matplotlib (e.g. Debian's
``python3-matplotlib`` with ``/usr/bin/python3``). ``scenario`` needs the project's venv
and re-runs ``render`` with ``/usr/bin/python3`` when its own Python has no matplotlib.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "img" / "dashboard.png"
RATE = "30s"  # the dashboard's $__rate_interval for a 2 s scrape interval
COUNT = "dvcbus_delivery_duration_seconds_count"

# The panels, in the dashboard's words. Each: title, unit, [(query, legend label key)].
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Oldest undelivered message by target",
        "s",
        [("max by (target) (dvcbus_oldest_undelivered_age_seconds)", "target")],
    ),
    (
        "Delivery error ratio by target (failed attempts / attempts)",
        "ratio",
        [
            (
                f'(sum by (target) (rate({COUNT}{{outcome!="delivered"}}[{RATE}]))'
                f" or sum by (target) (rate({COUNT}[{RATE}])) * 0)"
                f" / sum by (target) (rate({COUNT}[{RATE}]))",
                "target",
            )
        ],
    ),
    (
        "Delivered per second by target",
        "msg/s",
        [(f"sum by (target) (rate(dvcbus_messages_delivered_total[{RATE}]))", "target")],
    ),
    (
        "Backlog: messages ready in each delivery queue",
        "messages",
        [('max by (target) (dvcbus_queue_messages{target!=""})', "target")],
    ),
    (
        "Delivery latency p99 by target",
        "s",
        [
            (
                "histogram_quantile(0.99, sum by (le, target) "
                f"(rate(dvcbus_delivery_duration_seconds_bucket[{RATE}])))",
                "target",
            )
        ],
    ),
    (
        "Circuit state by target (0 closed, 1 open, 2 half-open)",
        "state",
        [("max by (target) (dvcbus_circuit_state)", "target")],
    ),
]


# --------------------------------------------------------------------------- render


def query_range(prometheus: str, query: str, start: float, end: float, step: float) -> list:
    params = urllib.parse.urlencode({"query": query, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as r:
        doc = json.load(r)
    if doc.get("status") != "success":
        raise RuntimeError(f"{query}: {doc}")
    return doc["data"]["result"]


def query(prometheus: str, expr: str, at: float) -> list:
    params = urllib.parse.urlencode({"query": expr, "time": at})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query?{params}", timeout=30) as r:
        return json.load(r)["data"]["result"]


def render(prometheus: str, start: float, end: float, out: Path, subtitle: str = "") -> Path:
    """Draw the panels for [start, end] from ``prometheus`` into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = max(2.0, (end - start) / 300)
    data = [
        [(label, query_range(prometheus, q, start, end, step)) for q, label in queries]
        for _, _, queries in PANELS
    ]
    targets = sorted(
        {s["metric"].get("target", "") for panel in data for _, res in panel for s in res} - {""}
    )
    palette = plt.get_cmap("tab10")
    colour = {t: palette(i % 10) for i, t in enumerate(targets)}

    fig, axes = plt.subplots(3, 2, figsize=(16, 13), sharex=True)
    for ax, (title, unit, _), panel in zip(axes.flat, PANELS, data, strict=True):
        for label, result in panel:
            for series in sorted(result, key=lambda s: s["metric"].get(label, "")):
                name = series["metric"].get(label, "")
                xs = [(float(t) - start) / 60 for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]  # NaN (0/0: no attempt) = gap
                peak = max((y for y in ys if y == y), default=0.0)
                troubled = peak > 0 and unit in ("s", "ratio", "messages", "state")
                ax.plot(
                    xs,
                    ys,
                    label=name,
                    color=colour.get(name),
                    linewidth=2.6 if troubled else 1.2,
                    drawstyle="steps-post" if unit == "state" else "default",
                )
        ax.set_title(title, fontsize=12, loc="left", fontweight="bold")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        if unit == "ratio":
            ax.set_ylim(-0.02, 1.05)
        if unit == "state":
            ax.set_yticks([0, 1, 2], ["closed", "open", "half-open"])
        _label_line_ends(ax)
    for ax in axes[-1]:
        ax.set_xlabel("minutes")
    handles = [plt.Line2D([], [], color=colour[t], linewidth=3) for t in targets]
    fig.legend(
        handles,
        targets,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.895),
        ncol=len(targets),
        fontsize=11,
        frameon=False,
    )
    alerts = _alerts(prometheus, end)
    heading = "dvc-bus — which agency is in trouble"
    fig.suptitle(heading, x=0.01, ha="left", fontsize=17, fontweight="bold")
    lines = [subtitle] if subtitle else []
    lines += textwrap.wrap(
        "Alerts at the end (Prometheus ALERTS; 'pending' until their `for:` has passed): "
        + (", ".join(alerts) if alerts else "none"),
        190,
    )
    fig.text(0.01, 0.955, "\n".join(lines), fontsize=11, va="top")
    fig.tight_layout(rect=(0, 0, 1, 0.87))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def _label_line_ends(ax: Any) -> None:
    """Write the target's name at the end of every line that is not flat at zero."""
    for line in ax.get_lines():
        xs, ys = line.get_xdata(), line.get_ydata()
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if y == y]
        if points and max(y for _, y in points) > 0:
            ax.annotate(
                line.get_label(),
                points[-1],
                xytext=(4, 0),
                textcoords="offset points",
                fontsize=10,
                color=line.get_color(),
                fontweight="bold",
                va="center",
            )


def _alerts(prometheus: str, at: float) -> list[str]:
    """Alerts pending or firing at ``at``, each with what it is about."""
    try:
        found = query(prometheus, "ALERTS", at)
    except OSError:
        return []
    named = set()
    for series in found:
        labels = series["metric"]
        about = ",".join(
            labels[k] for k in ("stage", "target", "reason", "instance") if labels.get(k)
        )
        named.add(f"{labels['alertname']}{{{about}}} {labels.get('alertstate', '')}")
    return sorted(named)


# --------------------------------------------------------------------------- scenario


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200


def scenario(seconds: float, rate: float, out: Path, slow: str, down: str, delay: float) -> int:
    """Run the bus with one slow and one down stand-in under Prometheus; render the panels."""
    sys.path.insert(0, str(ROOT))
    from adapters.testing.standin import Behaviour, StandinThread
    from bus import app
    from bus.broker import topology
    from bus.broker.sending import send_bodies
    from bus.demo import traffic
    from bus.demo.agencies import endpoints
    from bus.routes import load_routes
    from bus.settings import Settings

    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        raise SystemExit("prometheus is not installed: apt-get install prometheus")
    work = Path(tempfile.mkdtemp(prefix="dvcbus-look-"))
    namespace = f"look{int(time.time())}"
    routes_file = work / "routes.yaml"
    ports: dict[int, int] = {}
    text = (ROOT / "routes.yaml").read_text(encoding="utf-8")
    routes_file.write_text(
        re.sub(
            r"127\.0\.0\.1:(\d+)",
            lambda m: f"127.0.0.1:{ports.setdefault(int(m.group(1)), free_port())}",
            text,
        ),
        encoding="utf-8",
    )
    settings = Settings.load(routes_file=routes_file, namespace=namespace)
    loaded = app.load(settings)
    standin_eps = [ep for ep in endpoints(load_routes(routes_file)) if ep.target != down]
    router_port, dispatcher_port, prom_port = free_port(), free_port(), free_port()
    env = dict(os.environ)
    env.update(
        DVCBUS_NAMESPACE=namespace,
        DVCBUS_ROUTES_FILE=str(routes_file),
        DVCBUS_STORE_URL=f"sqlite:///{work / 'store.db'}",
        DVCBUS_LOG_FORMAT="json",
        DVCBUS_PORTAL_TOKEN="look-portal-token",
        DVCBUS_QUEUE_POLL_INTERVAL="2",
    )
    from bus.demo import run as demo_run  # the credentials routes.yaml refers to (env:NAME)

    env.update(getattr(demo_run, "DEMO_CREDENTIALS", {}))
    (work / "alerts.yml").write_text(
        (ROOT / "config" / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    )
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 2s, evaluation_interval: 5s}\n"
        "rule_files: [alerts.yml]\n"
        "scrape_configs:\n"
        "  - job_name: dvcbus\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{router_port}', "
        f"'127.0.0.1:{dispatcher_port}']}}]\n"
    )
    procs: list[subprocess.Popen[bytes]] = []
    print(f"work dir {work}; namespace {namespace}", flush=True)
    try:
        with StandinThread(standin_eps, keep_bodies=False) as standins:
            standins.program(slow, Behaviour(delay=delay))
            for args, name in (
                (["run", "router", "--http-port", str(router_port)], "router"),
                (["run", "dispatcher", "--http-port", str(dispatcher_port)], "dispatcher"),
            ):
                log = (work / f"{name}.log").open("wb")
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bus.cli", *args],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            procs.append(
                subprocess.Popen(
                    [
                        prometheus_bin,
                        f"--config.file={work / 'prometheus.yml'}",
                        f"--storage.tsdb.path={work / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                    ],
                    cwd=work,
                    stdout=(work / "prometheus.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
            prometheus = f"http://127.0.0.1:{prom_port}"
            for port in (router_port, dispatcher_port):
                wait_for(lambda p=port: http_ok(f"http://127.0.0.1:{p}/readyz"), 30, "the bus")
            wait_for(lambda: http_ok(f"{prometheus}/-/ready"), 30, "prometheus")
            start = time.time()
            count = int(seconds * rate)
            bodies = [
                g.body for g in traffic.generate(count, seed=7, loaded=loaded, oversized=False)
            ]
            print(
                f"sending {count} messages at {rate:g}/s for {seconds:.0f}s: "
                f"{slow} answers in {delay:g}s, {down} is down",
                flush=True,
            )
            import asyncio

            asyncio.run(send_bodies(settings.amqp_url, loaded.names, bodies, rate=rate))
            time.sleep(10)  # a few more scrapes after the last message
            end = time.time()
            (work / "window.json").write_text(json.dumps({"start": start, "end": end}))
            subtitle = (
                f"Scenario: {count} realistic messages at {rate:g}/s; stand-in {slow!r} answers "
                f"in {delay:g} s (concurrency 4), {down!r} is down (nothing listens). "
                "Real Prometheus, 2 s scrapes."
            )
            _render_with_matplotlib(prometheus, start, end, out, subtitle)
            print(f"wrote {out}", flush=True)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        topology.delete(settings.amqp_url, loaded.topology)
    return 0


def _render_with_matplotlib(
    prometheus: str, start: float, end: float, out: Path, subtitle: str
) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        python = "/usr/bin/python3"
        subprocess.run(
            [python, __file__, "render", "--prometheus", prometheus, "--start", str(start),
             "--end", str(end), "--out", str(out), "--subtitle", subtitle],
            check=True,
        )  # fmt: skip
        return
    render(prometheus, start, end, out, subtitle)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="draw the panels from a running Prometheus")
    r.add_argument("--prometheus", default="http://127.0.0.1:9090")
    r.add_argument("--minutes", type=float, default=15.0, help="the last N minutes")
    r.add_argument("--start", type=float, help="Unix time (instead of --minutes)")
    r.add_argument("--end", type=float, help="Unix time (default now)")
    r.add_argument("--out", type=Path, default=DEFAULT_OUT)
    r.add_argument("--subtitle", default="")
    s = sub.add_parser("scenario", help="run the bus with a slow and a down agency, then render")
    s.add_argument("--seconds", type=float, default=180.0)
    s.add_argument("--rate", type=float, default=20.0, help="messages per second")
    s.add_argument("--slow", default="hanoi")
    s.add_argument("--delay", type=float, default=8.0, help="seconds the slow agency takes")
    s.add_argument("--down", default="hcmc")
    s.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.command == "render":
        end = args.end or time.time()
        start = args.start or end - args.minutes * 60
        print(render(args.prometheus, start, end, args.out, args.subtitle))
        return 0
    return scenario(args.seconds, args.rate, args.out, args.slow, args.down, args.delay)


if __name__ == "__main__":
    sys.exit(main())
