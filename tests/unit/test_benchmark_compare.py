"""benchmarks.compare: trees parsed, figures read from run JSON, medians set against the first."""

from __future__ import annotations

import argparse
from contextlib import suppress
from pathlib import Path

import orjson
import pytest

from benchmarks.compare import Tree, dig, parse_tree, summary

ROOT = Path(__file__).resolve().parents[2]


def test_a_tree_is_a_name_a_directory_and_its_own_arguments() -> None:
    tree = parse_tree(f"now={ROOT} --dossier-versions 1")
    assert (tree.name, tree.directory, tree.extra) == ("now", ROOT, ["--dossier-versions", "1"])


@pytest.mark.parametrize("spec", ["now", "=/tmp", f"now={ROOT}/no-such-dir"])
def test_a_tree_without_a_name_or_benchmarks_is_refused(spec: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_tree(spec)


def test_a_figure_is_read_by_its_dotted_path_or_is_none() -> None:
    run = {"router_stage": {"cpu": {"router-0": {"cpu_s_per_1k_msgs": 0.15}}}}
    assert dig(run, "router_stage.cpu.router-0.cpu_s_per_1k_msgs") == 0.15
    assert dig(run, "router_stage.cpu.router-1.cpu_s_per_1k_msgs") is None
    assert dig({"router_stage": {"msgs_per_s": "fast"}}, "router_stage.msgs_per_s") is None


def test_the_summary_gives_each_trees_median_against_the_first() -> None:
    def run(cpu: float) -> dict:
        return {"router_stage": {"cpu": {"router-0": {"cpu_s_per_1k_msgs": cpu}}}}

    before = Tree("before", ROOT, [], [run(0.10), run(0.12), run(0.30)])
    now = Tree("now", ROOT, [], [run(0.11), run(0.13), run(0.12)])
    lines = summary([before, now])
    assert lines[0] == "router stage: router CPU ms/msg"  # lower is better: best = lowest
    assert lines[1].startswith("  before       median 0.12 (spread 167%), best 0.1   [")
    assert lines[2].startswith(
        "  now          median 0.12 (spread 17%), best 0.11 ×1.000 (best ×1.100)"
    )
    assert len(lines) == 3  # figures no run has are left out


def test_the_version_1_mix_has_no_version_2_dossier_and_the_default_mix_has_some() -> None:
    from bus import app
    from bus.demo.traffic import TrafficGenerator
    from bus.settings import Settings

    loaded = app.load(Settings.load())

    def versions(**kw: bool) -> set[object]:
        gen = TrafficGenerator(11, loaded, oversized=False, **kw)
        found = set()
        for _ in range(600):
            with suppress(orjson.JSONDecodeError):  # the mix holds malformed bodies too
                doc = orjson.loads(gen.one().body)
                if isinstance(doc, dict) and doc.get("type") == "dossier.submitted":
                    found.add(doc["version"])
        return found

    assert versions(dossier_v2=False) == {1}
    assert versions() == {1, 2}


def test_for_a_rate_the_best_run_is_the_highest() -> None:
    def run(rate: float) -> dict:
        return {"router_stage": {"msgs_per_s": rate}}

    lines = summary(
        [Tree("a", ROOT, [], [run(100.0), run(300.0)]), Tree("b", ROOT, [], [run(150.0)])]
    )
    assert lines[1].startswith("  a            median 200 (spread 100%), best 300   [")
    assert "best ×0.500" in lines[2]


def test_a_bus_process_is_also_read_against_the_stand_ins_control() -> None:
    def run(dispatcher: float, standins: float) -> dict:
        cpu = {"dispatcher": {"cpu_s_per_1k_msgs": dispatcher}}
        cpu["stand-ins"] = {"cpu_s_per_1k_msgs": standins}
        return {"end_to_end": {"saturation": {"cpu": cpu}}}

    # a slow spell of the machine doubles both: the ratio stays
    lines = summary([Tree("a", ROOT, [], [run(0.36, 0.1)]), Tree("b", ROOT, [], [run(0.72, 0.2)])])
    control = lines.index("e2e saturation: dispatcher CPU / stand-ins CPU (control)")
    assert lines[control + 1].startswith("  a            median 3.6 ")
    assert "×1.000 (best ×1.000)" in lines[control + 2]
