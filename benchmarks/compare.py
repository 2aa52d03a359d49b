"""Two or more source trees benchmarked in one sitting, their runs alternated, figures summed up.

A cost question ("what do these checks cost per message?") is answered by running the same
traffic through the code with and without them, on the same machine, in the same minutes:
one run of each tree in turn, several times over, so a background job or a warm cache
affects every tree alike. Each run is a whole ``python -m benchmarks run`` from the tree's
own directory (its own bus code, its own benchmark harness), and this module reads the JSON
each run wrote. It prints, per figure, every run's value, the median and the spread, and each
tree's median against the first tree's.

    python -m benchmarks.compare --runs 6 \\
        --tree "before=/tmp/snap-old" --tree "now=/tmp/snap-new --dossier-versions 1" \\
        -- --phases router,e2e --no-celery --messages 10000 --rounds 1 --latency-seconds 5

A tree is ``NAME=DIR`` and, after a space, arguments only that tree's runs get. The arguments
after ``--`` go to every run. Trees are usually ``git archive`` snapshots, optionally with a
patch of ``benchmarks/variants/`` applied (see the README).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_OTHERS = "other processes (not part of the run)"
# (label, dotted path of the figure in a run's result JSON)
FIGURES: tuple[tuple[str, str], ...] = (
    ("router stage: msg/s", "router_stage.msgs_per_s"),
    ("router stage: router CPU ms/msg", "router_stage.cpu.router-0.cpu_s_per_1k_msgs"),
    ("e2e saturation: msg/s", "end_to_end.saturation.msgs_per_s"),
    ("e2e saturation: router CPU ms/msg", "end_to_end.saturation.cpu.router.cpu_s_per_1k_msgs"),
    ("e2e saturation: dispatcher CPU ms/msg",
     "end_to_end.saturation.cpu.dispatcher.cpu_s_per_1k_msgs"),
    ("e2e fixed load: router CPU ms/msg", "end_to_end.fixed_load.cpu.router.cpu_s_per_1k_msgs"),
    ("e2e fixed load: dispatcher CPU ms/msg",
     "end_to_end.fixed_load.cpu.dispatcher.cpu_s_per_1k_msgs"),
    ("e2e fixed load: p99 ms", "end_to_end.fixed_load.latency_ms.p99"),
    ("gateway saturation: req/s", "gateway.saturation.requests_per_s"),
    ("gateway saturation: gateway CPU µs/req", "gateway.saturation.cpu_us_per_request.gateway"),
    ("gateway 500 req/s: p99 ms", "gateway.fixed_load.latency_ms.p99"),
    ("gateway 500 req/s: gateway CPU µs/req", "gateway.fixed_load.cpu_us_per_request.gateway"),
    ("e2e saturation: other processes, cores (noise)",
     f"end_to_end.saturation.cpu.{_OTHERS}.cores_busy"),
    ("gateway saturation: other processes, µs/req (noise)",
     f"gateway.saturation.cpu_us_per_request.{_OTHERS}"),
)  # fmt: skip

# A control: the stand-in agencies do the same work per message in every tree, so their CPU
# per message moves only with the machine (a slow spell on a shared host, smaller batches
# at a lower rate). A bus process's CPU over theirs, run by run, keeps what the bus's code
# changed and cancels most of what the machine did.
_STANDINS = "end_to_end.saturation.cpu.stand-ins.cpu_s_per_1k_msgs"
RELATIVE: tuple[tuple[str, str, str], ...] = (
    ("e2e saturation: router CPU / stand-ins CPU (control)",
     "end_to_end.saturation.cpu.router.cpu_s_per_1k_msgs", _STANDINS),
    ("e2e saturation: dispatcher CPU / stand-ins CPU (control)",
     "end_to_end.saturation.cpu.dispatcher.cpu_s_per_1k_msgs", _STANDINS),
)  # fmt: skip


@dataclass
class Tree:
    name: str
    directory: Path
    extra: list[str]
    results: list[dict[str, Any]] = field(default_factory=list)


def parse_tree(spec: str) -> Tree:
    """``NAME=DIR [args…]`` into a :class:`Tree`."""
    first, *extra = shlex.split(spec)
    name, sep, directory = first.partition("=")
    if not sep or not name or not directory:
        raise argparse.ArgumentTypeError(f"--tree {spec!r}: expected NAME=DIR [args]")
    path = Path(directory).resolve()
    if not (path / "benchmarks" / "__main__.py").exists():
        raise argparse.ArgumentTypeError(f"--tree {spec!r}: {path} holds no benchmarks/")
    return Tree(name, path, extra)


def figure(doc: Any, path: str, per: str | None = None) -> float | None:
    """The figure at ``path``, or (``per``) its ratio to the figure at ``per``."""
    value = dig(doc, path)
    if per is None or value is None:
        return value
    base = dig(doc, per)
    return round(value / base, 3) if base else None


def dig(doc: Any, path: str) -> float | None:
    """The number at the dotted ``path`` in ``doc``, or None where the run has no such figure."""
    for key in path.split("."):
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return float(doc) if isinstance(doc, int | float) else None


def run_once(tree: Tree, common: list[str], out: Path) -> dict[str, Any]:
    """One ``python -m benchmarks run`` in ``tree``'s directory; its result JSON."""
    argv = [sys.executable, "-m", "benchmarks", "run", *common, *tree.extra, "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(tree.directory)}
    done = subprocess.run(argv, cwd=tree.directory, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise RuntimeError(f"{tree.name}: benchmark run failed ({done.returncode}):\n{tail}")
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def summary(trees: list[Tree]) -> list[str]:
    """The figures as text lines: each run's value, the median, the spread and the best run
    (the lowest, or the highest for a rate), and both against the first tree's."""
    lines = []
    base = trees[0]
    figures = [(label, path, None) for label, path in FIGURES] + list(RELATIVE)
    for label, path, per in figures:
        per_tree = {
            t.name: [v for r in t.results if (v := figure(r, path, per)) is not None] for t in trees
        }
        if not any(per_tree.values()):
            continue
        lines.append(label)
        best_of = max if label.endswith("/s") else min  # msg/s, req/s: higher is better
        base_values = per_tree[base.name]
        base_median = statistics.median(base_values) if base_values else None
        base_best = best_of(base_values) if base_values else None
        for t in trees:
            values = per_tree[t.name]
            if not values:
                lines.append(f"  {t.name:<12} —")
                continue
            median, best = statistics.median(values), best_of(values)
            spread = (max(values) - min(values)) / median * 100 if median else 0.0
            ratio = ""
            if base_median and base_best and t is not base:
                ratio = f" ×{median / base_median:.3f} (best ×{best / base_best:.3f})"
            shown = ", ".join(f"{v:g}" for v in values)
            lines.append(
                f"  {t.name:<12} median {median:g} (spread {spread:.0f}%), best {best:g}{ratio}"
                f"   [{shown}]"
            )
    return lines


def reread(folder: Path) -> list[Tree]:
    """The trees of an earlier run's ``--out`` folder (``NAME-N.json``), in their first order."""
    names: list[str] = []
    first = (
        (folder / "summary.txt").read_text().splitlines()[0]
        if (folder / "summary.txt").exists()
        else ""
    )
    for part in first.removeprefix("trees: ").split(", "):
        if "=" in part:
            names.append(part.split("=", 1)[0])
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in folder.glob("*-*.json"):
        name, _, n = path.stem.rpartition("-")
        if n.isdigit():
            found.setdefault(name, []).append((int(n), path))
    names = [n for n in names if n in found] + sorted(set(found) - set(names))
    return [
        Tree(n, folder, [], [json.loads(p.read_text()) for _, p in sorted(found[n])]) for n in names
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("--tree", action="append", type=parse_tree, default=[])
    parser.add_argument(
        "--again", type=Path, metavar="DIR", help="summarise an earlier --out folder's runs"
    )
    parser.add_argument("--runs", type=int, default=4, help="runs of each tree, alternated")
    parser.add_argument("--out", type=Path, help="folder for every run's JSON and the summary")
    parser.add_argument("common", nargs=argparse.REMAINDER, help="-- then benchmark arguments")
    args = parser.parse_args(argv)
    if args.again:
        print("\n".join(summary(reread(args.again))))
        return 0
    if not args.tree:
        parser.error("give at least one --tree (or --again DIR)")
    common = [a for a in args.common if a != "--"]
    out = args.out or Path(f"/tmp/dvcbus-compare-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    trees: list[Tree] = args.tree
    for r in range(args.runs):
        order = trees if r % 2 == 0 else trees[::-1]  # neither tree always runs first
        for tree in order:
            print(f"run {r + 1}/{args.runs}: {tree.name} …", flush=True)
            tree.results.append(run_once(tree, common, out / f"{tree.name}-{r + 1}.json"))
    lines = [
        f"trees: {', '.join(f'{t.name}={t.directory} {shlex.join(t.extra)}' for t in trees)}",
        f"every run: python -m benchmarks run {shlex.join(common)}",
        *summary(trees),
    ]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"(runs and summary in {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
