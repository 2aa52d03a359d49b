"""fastjsonschema (hot path) and jsonschema (explanations) must agree on every message.

If they disagreed, a message could be accepted by one and rejected by the other: the bus would
forward garbage, or dead-letter a message with an empty explanation. The corpus is every
example plus deterministic mutations of the valid ones (drop each property, change each
value's type, empty strings, trailing newlines, full-width digits, -1 / 10**16 / integral
floats, an unknown property at each object).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from jsonschema import Draft7Validator

from bus.contract.rejections import Reason, Rejection
from bus.contract.schemas import SchemaRegistry

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
REGISTRY = SchemaRegistry.load()

_OTHER_TYPES: list[Any] = [None, True, 0, 1.5, "x", [], {}]
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _replacements(value: Any) -> Iterator[Any]:
    for other in _OTHER_TYPES:
        if _json_type(other) != _json_type(value):
            yield copy.deepcopy(other)
    if isinstance(value, str):
        yield ""
        yield value + "\n"
        yield " " + value
        if any(c.isdigit() for c in value):
            yield value.translate(_FULLWIDTH)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield from (-1, 0, 10**16, float(value), value + 0.5, True)
    elif isinstance(value, list) and value:
        yield value[:1] * 101


def _nodes(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, sub in node.items():
            yield from _nodes(sub, (*path, key))
    elif isinstance(node, list):
        for index, sub in enumerate(node):
            yield from _nodes(sub, (*path, index))


def _with(doc: dict[str, Any], path: tuple[Any, ...], value: Any = ..., drop: bool = False) -> Any:
    out = copy.deepcopy(doc)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def _mutations(name: str, doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for path, node in _nodes(doc):
        where = "/".join(map(str, path)) or "<root>"
        if isinstance(node, dict):
            for key in node:
                yield f"{name} drop {where}/{key}", _with(doc, (*path, key), drop=True)
            extra = copy.deepcopy(node)
            extra["unknown_field"] = "x"
            yield f"{name} extra at {where}", (_with(doc, path, extra) if path else extra)
        if path:
            for index, value in enumerate(_replacements(node)):
                yield f"{name} {where} #{index}", _with(doc, path, value)
    yield f"{name} version 2", _with(doc, ("version",), 2)
    yield f"{name} unknown type", _with(doc, ("type",), "dossier.archived")


def _corpus() -> list[tuple[str, Any]]:
    cases: list[tuple[str, Any]] = []
    for path in sorted(EXAMPLES.rglob("*.json")):
        name = path.relative_to(EXAMPLES).as_posix()
        doc = json.loads(path.read_text(encoding="utf-8"))
        cases.append((name, doc))
        if "/valid/" in name:
            cases.extend(_mutations(name, doc))
    cases.extend([("not an object: list", []), ("not an object: string", "x"), ("empty", {})])
    return cases


CORPUS = _corpus()


def _verdict(doc: Any, *, fast: bool) -> str:
    def ok(compiled: Any, instance: Any) -> bool:
        if not fast:
            return compiled.slow.is_valid(instance)
        try:
            compiled.fast(instance)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    if not ok(REGISTRY._envelope, doc):
        return "invalid"
    entry = REGISTRY._types.get((doc["type"], doc["version"]))
    if entry is None:
        return "unknown_type"
    return "valid" if ok(entry.compiled, doc["payload"]) else "invalid"


@pytest.mark.parametrize("corpus", [CORPUS], ids=[f"corpus-of-{len(CORPUS)}-messages"])
def test_fastjsonschema_and_jsonschema_agree(corpus: list[tuple[str, Any]]) -> None:
    assert len(corpus) > 2000, f"corpus shrank to {len(corpus)} cases"
    disagree = []
    counts = {"valid": 0, "invalid": 0, "unknown_type": 0}
    for name, doc in corpus:
        fast, slow = _verdict(doc, fast=True), _verdict(doc, fast=False)
        counts[fast] += 1
        if fast != slow:
            disagree.append(f"{name}: fastjsonschema={fast} jsonschema={slow}")
    assert not disagree, f"{len(disagree)} of {len(corpus)} cases disagree:\n" + "\n".join(
        disagree[:20]
    )
    assert min(counts.values()) > 0, counts  # the corpus exercises every verdict


@pytest.mark.parametrize("corpus", [CORPUS], ids=[f"corpus-of-{len(CORPUS)}-messages"])
def test_validate_and_problems_tell_the_same_story(corpus: list[tuple[str, Any]]) -> None:
    """validate() rejects exactly when problems() explains why; never an empty explanation."""
    wrong = []
    for name, doc in corpus:
        try:
            REGISTRY.validate(doc)
            verdict, detail = "valid", ""
        except Rejection as exc:
            verdict, detail = exc.reason.value, exc.detail
        problems = REGISTRY.problems(doc)
        if verdict == "valid" and problems:
            wrong.append(f"{name}: valid but problems {problems[:2]}")
        elif verdict == Reason.INVALID.value and (
            not problems or not detail.startswith(str(problems[0]))
        ):
            wrong.append(f"{name}: rejected with {detail!r}, problems {problems[:2]}")
        elif verdict == Reason.UNKNOWN_TYPE.value and problems[0].rule != "unknown_type":
            wrong.append(f"{name}: unknown type but problems {problems[:2]}")
    assert not wrong, f"{len(wrong)} of {len(corpus)} cases:\n" + "\n".join(wrong[:20])


def test_stock_jsonschema_would_disagree_on_trailing_newline() -> None:
    """Why bus.contract.schemas overrides jsonschema's pattern: Python's "$" matches before a final
    newline, fastjsonschema rewrites "$" to "\\Z". Without the override this case splits."""
    schema = {"type": "string", "pattern": "^[1-3]\\.[0-9]{6}$"}
    assert Draft7Validator(schema).is_valid("1.012889\n")
    with pytest.raises(fastjsonschema.JsonSchemaException):
        fastjsonschema.compile(schema)("1.012889\n")
    doc = json.loads(
        (EXAMPLES / "dossier.submitted.v1/valid/citizen-hanoi-online.json").read_text("utf-8")
    )
    doc["payload"]["procedure_code"] = "1.012889\n"
    assert _verdict(doc, fast=True) == _verdict(doc, fast=False) == "invalid"
