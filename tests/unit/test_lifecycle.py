"""The dossier status lifecycle file: DOMAIN.md's table, checked by line, compiled once."""

from pathlib import Path

import pytest

from bus.routes.lifecycle import Lifecycle, LifecycleError, check_lifecycle
from bus.settings import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "statuses.yaml"


def test_the_shipped_lifecycle_is_domain_md_table() -> None:
    assert check_lifecycle(SHIPPED) == []
    life = Lifecycle.load(SHIPPED)
    allowed = {(a, b) for a in range(1, 11) for b in range(1, 11) if a != b and life.allows(a, b)}
    domain = {(1, 2), (1, 3), (2, 4), (4, 5), (4, 6), (4, 8), (4, 9), (5, 4), (6, 4), (6, 9),
              (1, 7), (2, 7), (4, 7), (5, 7), (9, 10)}  # fmt: skip
    assert allowed == domain
    assert {c for c, s in life.statuses.items() if s.final} == {3, 7, 8, 10}


def test_repeats_and_first_statuses_are_allowed_impossible_ones_named() -> None:
    life = Lifecycle.load(SHIPPED)
    assert life.allows(4, 4) and life.allows(None, 9)
    assert not life.allows(10, 4) and not life.allows(1, 9)
    why = life.refusal(10, 4)
    assert "10 (result returned) → 4 (processing)" in why and "final" in why
    assert "statuses.yaml:" in why
    assert "after 1 only 2, 3, 7" in life.refusal(1, 9)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "statuses.yaml"
    path.write_text(text, encoding="utf-8")
    return path


EDITS = {
    "3:  { name: refused, final: true }": "3:  { name: refused, final: true, next: [4] }",
    "next: [10] }": "next: [11] }",
    "  8:  { name: processing stopped, final: true }\n": "",
    "5:  { name: supplement requested, next: [4, 7] }": "5:  { name: supplement requested }",
}


def test_problems_are_reported_by_line(tmp_path: Path) -> None:
    lines = SHIPPED.read_text(encoding="utf-8").splitlines(keepends=True)
    body = "".join(line for line in lines if not line.startswith("#"))
    for old, new in EDITS.items():
        assert old in body
        body = body.replace(old, new)
    path = _write(tmp_path, body)
    problems = check_lifecycle(path)
    said = {(p.line, p.message) for p in problems if p.severity == "error"}
    text = "\n".join(m for _, m in sorted(said))
    assert "status 3 is final but lists next statuses" in text
    assert "status 9: next '11' is not a status code" in text
    assert "status 5 has no next status" in text
    assert "status code(s) 8 of the contract are not listed" in text
    assert "status 4: next 8 is not listed under statuses" in text
    line_of_3 = 1 + next(i for i, line in enumerate(body.splitlines()) if line.startswith("  3:"))
    assert (line_of_3, "status 3 is final but lists next statuses: drop one or other") in said
    with pytest.raises(LifecycleError):
        Lifecycle.load(path)


def test_unknown_codes_keys_and_shapes(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1\nstatuses:\n  12: { name: x, final: true }\n  foo: 1\n")
    messages = [p.message for p in check_lifecycle(path)]
    assert any("'12' is not a status code" in m for m in messages)
    assert any("'foo' is not a status code" in m for m in messages)
    messages = [p.message for p in check_lifecycle(_write(tmp_path, "version: 2\nstatus: {}\n"))]
    assert any("version: 1" in m for m in messages)
    assert any("unknown key 'status'" in m for m in messages)
