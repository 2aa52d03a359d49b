"""The published examples are part of the contract: each one passes or fails exactly as labelled.

Agency teams copy these files to test their adapters, so a drifting example is a bug in the
contract. Layout: schemas/examples/<type>.v<N>/{valid,invalid}/*.json and
schemas/examples/envelope/invalid/*.json; schemas/examples/expectations.yaml says why each
invalid example fails (reason, first problem's path and rule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bus.contract.envelope import parse
from bus.contract.rejections import Reason, Rejection
from bus.contract.schemas import SchemaRegistry

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
REGISTRY = SchemaRegistry.load()
EXPECTATIONS: list[dict[str, Any]] = yaml.safe_load(
    (EXAMPLES / "expectations.yaml").read_text(encoding="utf-8")
)
BY_FILE = {entry["file"]: entry for entry in EXPECTATIONS}
VALID = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.glob("*/valid/*.json"))
INVALID = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.glob("*/invalid/*.json"))


def _load(rel: str) -> dict[str, Any]:
    """Parse as the router does (orjson, size cap), so examples are real wire messages."""
    return parse((EXAMPLES / rel).read_bytes())


def _folder_type(rel: str) -> tuple[str, int] | None:
    folder = rel.split("/", 1)[0]
    if folder == "envelope":
        return None
    name, _, version = folder.rpartition(".v")
    return name, int(version)


def test_layout_has_enough_examples_per_type() -> None:
    for type_, version in REGISTRY.message_types:
        folder = f"{type_}.v{version}"
        valid = [f for f in VALID if f.startswith(folder + "/")]
        invalid = [f for f in INVALID if f.startswith(folder + "/")]
        assert len(valid) >= 3, f"{folder}: {len(valid)} valid examples, want >= 3"
        assert len(invalid) >= 5, f"{folder}: {len(invalid)} invalid examples, want >= 5"
    assert [f for f in INVALID if f.startswith("envelope/")], "no envelope-level examples"
    folders = {p.name for p in EXAMPLES.iterdir() if p.is_dir()}
    known = {f"{t}.v{v}" for t, v in REGISTRY.message_types} | {"envelope"}
    assert folders <= known, f"example folders without a schema: {sorted(folders - known)}"


def test_every_invalid_example_is_listed_and_every_entry_exists() -> None:
    files = [entry["file"] for entry in EXPECTATIONS]
    assert len(files) == len(set(files)), "a file is listed twice in expectations.yaml"
    missing = sorted(set(INVALID) - set(files))
    assert not missing, f"invalid examples not in expectations.yaml: {missing}"
    unknown = sorted(set(files) - set(INVALID))
    assert not unknown, f"expectations.yaml lists files that are not invalid examples: {unknown}"
    for entry in EXPECTATIONS:
        assert entry["reason"] in {Reason.INVALID.value, Reason.UNKNOWN_TYPE.value}, entry
        if entry["reason"] == Reason.INVALID.value:
            assert entry.get("path") is not None and entry.get("rule"), entry


@pytest.mark.parametrize("rel", VALID)
def test_valid_example_is_accepted(rel: str) -> None:
    doc = _load(rel)
    assert REGISTRY.validate(doc) == _folder_type(rel)
    assert REGISTRY.problems(doc) == []


@pytest.mark.parametrize("rel", INVALID)
def test_invalid_example_fails_as_labelled(rel: str) -> None:
    entry = BY_FILE.get(rel)
    assert entry is not None, f"{rel} is not listed in expectations.yaml"
    doc = _load(rel)
    folder_type = _folder_type(rel)
    if folder_type is not None:
        assert doc.get("type") == folder_type[0], "example filed under the wrong type"

    with pytest.raises(Rejection) as caught:
        REGISTRY.validate(doc)
    assert caught.value.reason.value == entry["reason"]

    problems = REGISTRY.problems(doc)
    assert problems, "rejected, yet problems() finds nothing"
    first = problems[0]
    if "path" in entry:
        assert (first.path, first.rule) == (entry["path"], entry["rule"]), str(first)
    if "expected" in entry:
        assert entry["expected"] in first.expected, str(first)
    if entry["reason"] == Reason.INVALID.value:
        assert caught.value.detail.startswith(str(first))
    else:
        assert caught.value.detail.startswith(f"no schema for {doc['type']} v{doc['version']}")
