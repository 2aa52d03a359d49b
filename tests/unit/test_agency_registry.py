"""The agency registry: a receiving agency's province, its committee as fallback, and every
mistake in agencies.yaml reported with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.routes.agencies import AgencyRegistry, AgencyRegistryError, check_agencies

PROVINCES = {"01", "79", "48"}
GOOD = """\
version: 1
agencies:
  000.00.00.H26: { name: "UBND Thành phố Hà Nội", province: "01", system: hanoi }
  000.00.53.H26: { name: "Sở Tư pháp Hà Nội", province: "01" }
  000.00.00.H74: { name: "UBND Tỉnh Bình Dương (before 1 July 2025)", province: "79" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agencies.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_agency_is_found_itself_else_by_its_provinces_committee(tmp_path: Path) -> None:
    registry = AgencyRegistry.load(write(tmp_path, GOOD), PROVINCES)
    assert registry.find("000.00.53.H26").name == "Sở Tư pháp Hà Nội"  # listed itself
    assert registry.province_of("000.00.12.H26") == "01"  # a commune office: its committee
    assert registry.province_of("000.00.00.H74") == "79"  # a merged province's committee
    assert registry.province_of("000.00.00.G12") is None  # a ministry: not in the registry
    assert registry.province_of("not an id") is None


def test_explain_says_where_the_province_came_from(tmp_path: Path) -> None:
    registry = AgencyRegistry.load(write(tmp_path, GOOD), PROVINCES)
    assert registry.describe("000.00.12.H26") == (
        "000.00.12.H26 → province 01 (UBND Thành phố Hà Nội via 000.00.00.H26, agencies.yaml:3)"
    )


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        (GOOD.replace("000.00.53.H26:", "000.00.53.X26:"), 4, "is not an agency identifier"),
        (GOOD.replace('province: "79"', 'province: "74"'), 5, "74 is not a current province"),
        (GOOD.replace('province: "79"', "province: 7"), 5, "must be a 2-digit code"),
        (GOOD.replace('"01" }', '"01", phone: "x" }'), 4, "unknown key(s) ['phone']"),
        (GOOD + '  000.00.00.H26: { name: "again", province: "01" }\n', 6, "listed twice"),
        (GOOD.replace("version: 1", "version: 2"), 1, "`version: 1` is required"),
    ],
)
def test_a_broken_registry_is_refused_with_its_line(
    tmp_path: Path, text: str, line: int, why: str
) -> None:
    with pytest.raises(AgencyRegistryError) as caught:
        AgencyRegistry.load(write(tmp_path, text), PROVINCES)
    assert caught.value.line == line and why in caught.value.why


def test_routes_check_reports_the_registrys_problems(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    (warning,) = check_agencies(path, PROVINCES, {"hcmc"}, used=True)
    assert (warning.line, warning.severity) == (3, "warning")
    assert "system 'hanoi' is not a target" in warning.message
    assert check_agencies(path, PROVINCES, {"hanoi"}, used=True) == []
    (missing,) = check_agencies(tmp_path / "none.yaml", PROVINCES, None, used=True)
    assert missing.severity == "error" and "no agency registry" in missing.message
    assert check_agencies(tmp_path / "none.yaml", PROVINCES, None, used=False) == []
