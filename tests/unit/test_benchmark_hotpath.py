"""The hot-path benchmark (``python -m benchmarks hotpath``) times every step, before and now."""

from benchmarks import hotpath
from bus import app
from bus.settings import Settings


def test_the_hotpath_benchmark_times_each_step_before_and_now() -> None:
    figures = hotpath.measure(app.load(Settings.load(None)), messages=60, calls=200)
    assert set(figures) == {"router", "dispatcher"}
    assert len(figures["router"]) == 6 and len(figures["dispatcher"]) == 4
    for rows in figures.values():
        for before, now in rows.values():
            assert before > 0 and now > 0
    # the history rows (in parentheses) are shown, not counted in the net
    rows = {"a": (1.0, 3.0), "(history)": (1.0, 9.0), "parse (indented bodies)": (1.0, 5.0)}
    assert hotpath.net(rows) == 2.0
