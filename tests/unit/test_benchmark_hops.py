"""The per-hop benchmark (``python -m benchmarks hops``) runs and reports every figure."""

from benchmarks import hops


def test_the_hops_benchmark_reports_a_time_for_every_sink_and_hop() -> None:
    figures = hops.measure(number=50)
    assert set(figures) == {"log line (JSON)", "metrics sink", "unit codes"}
    for sink in ("log line (JSON)", "metrics sink"):
        assert set(figures[sink]) == set(hops.sample_hops()), sink
    assert all(us > 0 for rows in figures.values() for us in rows.values())
