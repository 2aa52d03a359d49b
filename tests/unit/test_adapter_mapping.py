"""Declared mappings from the canonical message to an agency's fields, and date formats."""

from pathlib import Path

import orjson
import pytest

from adapters.mapping import (
    MappingError,
    MissingValue,
    compile_mapping,
    date_formatter,
    parse_offset,
)

ROOT = Path(__file__).resolve().parents[2]
DOSSIER = orjson.loads(
    (ROOT / "schemas/examples/dossier.submitted.v1/valid/citizen-hanoi-online.json").read_bytes()
)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-11-25T09:14:37+07:00", "20261125091437"),
        ("2026-11-25T02:14:37Z", "20261125091437"),  # UTC → Vietnam time
        ("2026-11-24T20:14:37-05:00", "20261125081437"),
        ("2026-12-31T17:30:00Z", "20270101003000"),  # crosses the year in Vietnam
        ("2026-11-25T09:14:37.987654+07:00", "20261125091437"),
    ],
)
def test_yyyyMMddHHmmss_is_written_in_vietnam_time(moment: str, expected: str) -> None:
    assert date_formatter("yyyyMMddHHmmss")(moment) == expected


def test_other_patterns_literals_milliseconds_and_zones() -> None:
    assert date_formatter("dd/MM/yyyy HH:mm")("2026-11-25T02:14:37Z") == "25/11/2026 09:14"
    utc = parse_offset("Z")
    fmt = date_formatter("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", utc)
    assert fmt("2026-11-25T09:14:37.123+07:00") == "2026-11-25T02:14:37.123Z"
    assert date_formatter("yyMMdd")("2026-11-25T09:14:37+07:00") == "261125"


def test_an_unsupported_pattern_letter_is_refused_at_configuration() -> None:
    with pytest.raises(MappingError, match="letter 'E' is not supported"):
        date_formatter("EEE dd/MM/yyyy")


def test_a_mapping_renames_converts_nests_and_repeats() -> None:
    build = compile_mapping(
        {
            "MaHoSo": "payload.dossier_no",
            "MaTTHC": {"from": "payload.procedure_code", "required": True},
            "NgayNop": {"from": "payload.submitted_at", "format": "yyyyMMddHHmmss"},
            "HinhThuc": {"from": "payload.channel", "map": {"online": 1, "direct": 2}},
            "NguoiNop": {
                "HoTen": "payload.applicant.full_name",
                "MaTinh": "payload.applicant.address.province_code",
            },
            "GiayTo": {
                "each": "payload.documents",
                "fields": {"Ten": "name", "KichThuoc": {"from": "size_bytes", "type": "string"}},
            },
            "Nguon": {"value": "DVCBUS"},
            "GhiChu": {"template": "Hồ sơ {payload.dossier_no} ({{v1}})"},
            "TepDauTien": "payload.documents.0.sha256",
            "KhongCo": "payload.no_such_field",
            "MacDinh": {"from": "payload.no_such_field", "default": "0"},
        }
    )
    assert build(DOSSIER) == {
        "MaHoSo": "000.04.01.H26-261125-0031",
        "MaTTHC": "2.000635",
        "NgayNop": "20261125091437",
        "HinhThuc": 1,
        "NguoiNop": {"HoTen": "Nguyễn Thị Minh Anh", "MaTinh": "01"},
        "GiayTo": [{"Ten": "To-khai-cap-ban-sao-trich-luc-ho-tich.pdf", "KichThuoc": "245760"}],
        "Nguon": "DVCBUS",
        "GhiChu": "Hồ sơ 000.04.01.H26-261125-0031 ({v1})",
        "TepDauTien": DOSSIER["payload"]["documents"][0]["sha256"],
        "MacDinh": "0",
    }


def test_a_required_value_missing_from_a_message_names_the_field_not_the_data() -> None:
    build = compile_mapping({"HoSo": {"SoDinhDanh": {"from": "payload.x", "required": True}}})
    with pytest.raises(MissingValue, match=r"body\.HoSo\.SoDinhDanh: required value is missing"):
        build(DOSSIER)


def test_a_value_outside_a_declared_map_is_refused_unless_a_default_is_given() -> None:
    strict = compile_mapping({"K": {"from": "payload.channel", "map": {"direct": 2}}})
    with pytest.raises(MissingValue, match="not in the declared map"):
        strict(DOSSIER)
    lenient = compile_mapping(
        {"K": {"from": "payload.channel", "map": {"direct": 2}, "default": 9}}
    )
    assert lenient(DOSSIER) == {"K": 9}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"A": {"from": "x", "value": 1}}, r"body\.A: give exactly one of"),
        ({"A": {"from": "x", "fromat": "yyyy"}}, r"body\.A: unknown key\(s\) \['fromat'\]"),
        ({"A": {"from": "x", "type": "date"}}, r"body\.A\.type: 'date' is not one of"),
        ({"A": {"each": "payload.documents"}}, r"body\.A: each needs fields"),
        ({"A": {"template": "{payload.x"}}, r"unmatched brace"),
        ({"A": 5}, r"body\.A: expected a path"),
        ({"A": "payload..x"}, r"has an empty part"),
        ({}, r"non-empty"),
    ],
)
def test_configuration_mistakes_are_refused_naming_the_field(spec: dict, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        compile_mapping(spec)


def test_a_date_that_is_not_rfc3339_is_a_missing_value_not_a_crash() -> None:
    build = compile_mapping({"D": {"from": "payload.channel", "format": "yyyyMMdd"}})
    with pytest.raises(MissingValue, match="not an RFC 3339 date-time"):
        build(DOSSIER)
