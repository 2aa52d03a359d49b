"""docs/metrics.md lists exactly the metrics the code exports, with their types and labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from bus.observability.metrics import DURATION_BUCKETS, Metrics

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "docs" / "metrics.md"
ROW = re.compile(
    r"^\|\s*`(?P<name>dvcbus_[a-z0-9_]+)`\s*\|\s*(?P<type>\w+)\s*\|(?P<labels>[^|]*)\|"
)


def catalogue() -> dict[str, tuple[str, frozenset[str]]]:
    """Rows of the catalogue table: exposed name -> (type, labels)."""
    rows: dict[str, tuple[str, frozenset[str]]] = {}
    for line in CATALOGUE.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            assert match["name"] not in rows, f"{match['name']} is listed twice"
            labels = frozenset(x.strip() for x in match["labels"].split(",") if x.strip())
            rows[match["name"]] = (match["type"], labels)
    return rows


def exported() -> dict[str, tuple[str, frozenset[str]]]:
    """The metrics a process defines: exposed name -> (type, labels)."""
    metrics = Metrics(types=["dossier.submitted"], targets=["hanoi"])
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for attr in vars(metrics).values():
        if isinstance(attr, MetricWrapperBase):
            name = attr._name + ("_total" if attr._type == "counter" else "")
            found[name] = (attr._type, frozenset(attr._labelnames))
    return found


def exposed_names() -> set[str]:
    """Every series name a scrape can show, histogram parts included (for the other tests)."""
    names: set[str] = set()
    for name, (kind, _) in catalogue().items():
        names.add(name)
        if kind == "histogram":
            names.update(f"{name}_{part}" for part in ("bucket", "sum", "count"))
    return names


def test_every_metric_in_the_code_is_in_the_catalogue_and_back() -> None:
    code, docs = exported(), catalogue()
    assert sorted(set(code) - set(docs)) == [], "metrics missing from docs/metrics.md"
    assert sorted(set(docs) - set(code)) == [], "docs/metrics.md lists metrics the code lacks"


def test_catalogue_types_and_labels_match_the_code() -> None:
    code, docs = exported(), catalogue()
    for name, (kind, labels) in code.items():
        assert docs[name] == (kind, labels), name


def test_names_follow_prometheus_conventions() -> None:
    for name, (kind, labels) in exported().items():
        assert name.startswith("dvcbus_")
        assert (kind == "counter") == name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name
        assert not labels & {"message_id", "dossier_no", "id", "person"}, name


def test_the_catalogue_states_the_real_duration_buckets() -> None:
    row = next(
        line
        for line in CATALOGUE.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `dvcbus_delivery_duration_seconds`")
    )
    listed = re.search(r"Buckets \(seconds\): ([0-9., ]+)", row)
    assert listed, "the histogram's row must list its buckets"
    assert tuple(float(x) for x in listed.group(1).rstrip(" ,").split(",")) == DURATION_BUCKETS
