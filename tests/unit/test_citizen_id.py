"""The citizen_id check: a personal id number whose shape is right but which no citizen can hold."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from bus.contract.admin_units import DEFAULT_PATH
from bus.contract.citizen_id import PRE_REFORM_PROVINCES, citizen_id_problem

THIS_YEAR = datetime.now(UTC).year


def _id(province: str, year: int, sex: int = 0, tail: str = "012345") -> str:
    century = (year - 1900) // 100
    return f"0{province}{century * 2 + sex}{year % 100:02d}{tail}"


def test_the_prefixes_are_the_63_pre_reform_provinces_of_the_shipped_unit_data() -> None:
    data = orjson.loads(DEFAULT_PATH.read_bytes())
    assert set(data["old_provinces"]) == PRE_REFORM_PROVINCES
    assert len(PRE_REFORM_PROVINCES) == 63
    assert set(data["provinces"]) <= PRE_REFORM_PROVINCES  # the 34 kept old codes


@pytest.mark.parametrize("province", sorted(PRE_REFORM_PROVINCES))
def test_every_province_of_birth_registration_is_accepted(province: str) -> None:
    assert citizen_id_problem(_id(province, 1990)) is None
    assert citizen_id_problem(_id(province, 2019, sex=1)) is None


@pytest.mark.parametrize("year", [1900, 1945, 1999, 2000, 2025, THIS_YEAR, THIS_YEAR + 1])
def test_past_and_this_years_births_are_accepted(year: int) -> None:
    assert citizen_id_problem(_id("01", year)) is None
    assert citizen_id_problem(_id("79", year, sex=1)) is None


@pytest.mark.parametrize("prefix", ["000", "003", "097", "099", "100", "901", "005", "018"])
def test_a_prefix_that_is_no_province_is_refused(prefix: str) -> None:
    problem = citizen_id_problem(prefix + "190012345")
    assert problem is not None and "province code of the 63" in problem


@pytest.mark.parametrize("year", [THIS_YEAR + 2, 2099, 2150, 2299])
def test_a_birth_year_in_the_future_is_refused(year: int) -> None:
    problem = citizen_id_problem(_id("01", year))
    assert problem is not None and "not in the future" in problem


def test_all_zeros_are_refused_in_both_lengths() -> None:
    assert citizen_id_problem("000000000000") is not None
    assert citizen_id_problem("000000000") == "not all zeros"
    assert citizen_id_problem("201234567") is None  # an old card number otherwise unchecked


@pytest.mark.parametrize("value", ["12345", "0011900123456", 1190012345, None, ""])
def test_other_shapes_are_left_to_the_schema(value: object) -> None:
    assert citizen_id_problem(value) is None


@pytest.mark.parametrize("value", ["003190012345", "000000000000", "001399012345", "000000000"])
def test_the_problem_never_quotes_the_value(value: str) -> None:
    problem = citizen_id_problem(value)
    assert problem is not None
    assert value not in problem
