"""The 1 July 2025 unit translation: real-table examples, the no-guess rules, the shipped file."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from bus.contract.admin_units import DEFAULT_PATH, AdminUnits, UnitTranslation

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "derive_admin_units.py"
# Source rows copied from ../shared/data/admin-units: every row the derivation reads for these
# old districts (Thành phố Hà Giang, Yên Châu, Dương Kinh), cut by admin_units_fixtures/cut.py.
FIXTURES = Path(__file__).resolve().parent / "admin_units_fixtures"
FIXTURE_DISTRICTS = ("024", "124", "309")


@pytest.fixture(scope="module")
def units() -> AdminUnits:
    return AdminUnits.load()


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("derive_admin_units", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need to find their module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------- counts


def test_counts_match_the_reform(units: AdminUnits) -> None:
    doc = orjson.loads(DEFAULT_PATH.read_bytes())
    assert len(units.current_provinces()) == 34
    assert len(doc["communes"]) == 3321
    assert len(doc["old_provinces"]) == 63
    assert sum(1 for c in doc["old_provinces"] if not units.is_current_province(c)) == 29
    # 10,051 communes of the pre-reform list + 10 codes known only from the conversion table
    assert len(doc["old_communes"]) == 10061


def test_shipped_file_is_small_enough() -> None:
    assert DEFAULT_PATH.stat().st_size < 1_000_000


def test_current_provinces_is_a_copy(units: AdminUnits) -> None:
    provinces = units.current_provinces()
    assert provinces["01"] == "Thành phố Hà Nội"
    provinces.clear()
    assert len(units.current_provinces()) == 34


# ---------------------------------------------------------------------------- Hà Nội


def test_current_commune_is_not_translated(units: AdminUnits) -> None:
    t = units.translate(None, "00004")
    assert t == UnitTranslation("01", "00004", (), None, ())
    assert not t.translated


def test_old_commune_merged_wholly_is_translated(units: AdminUnits) -> None:
    # Phường Quán Thánh (00013) merged wholly into Phường Ba Đình (00004)
    t = units.translate(None, "00013")
    assert (t.province, t.commune, t.ambiguous) == ("01", "00004", None)
    assert t.notes == ("commune 00013 (Phường Quán Thánh) → 00004 (Phường Ba Đình)",)
    assert t.translated


def test_old_commune_split_is_ambiguous(units: AdminUnits) -> None:
    # Phường Ngọc Hà (00016) went partly to Phường Ba Đình and partly to Phường Ngọc Hà
    t = units.translate(None, "00016")
    assert t.commune == "00016" and t.province == "01"
    assert t.ambiguous is not None
    assert "00016 (Phường Ngọc Hà, Quận Ba Đình) was split" in t.ambiguous
    assert "00004 Phường Ba Đình" in t.ambiguous and "00008 Phường Ngọc Hà" in t.ambiguous
    assert not t.translated


def test_split_mentions_where_the_population_went(units: AdminUnits) -> None:
    t = units.translate("01", "00112")  # Thụy Khuê: part area to Ba Đình, all people to Tây Hồ
    assert t.ambiguous and "whole population in 00103 Phường Tây Hồ" in t.ambiguous
    assert t.commune == "00112"


# ---------------------------------------------------------------------------- provinces


def test_old_province_02_becomes_08(units: AdminUnits) -> None:
    t = units.translate("02", None)
    assert (t.province, t.commune, t.ambiguous) == ("08", None, None)
    assert t.notes == ("province 02 (Tỉnh Hà Giang) → 08 (Tỉnh Tuyên Quang)",)
    assert units.successor_province("02") == "08"


def test_old_province_and_old_commune_together(units: AdminUnits) -> None:
    t = units.translate("02", "00703")  # Xã Kim Thạch, Hà Giang → Xã Phú Linh, Tuyên Quang
    assert (t.province, t.commune, t.ambiguous) == ("08", "00706", None)
    assert len(t.notes) == 2 and t.notes[0].startswith("province 02")


def test_reused_province_code_is_current(units: AdminUnits) -> None:
    # 24 was Bắc Giang and is now Bắc Ninh (which absorbed it): no translation, no mismatch
    t = units.translate("24", "07201")
    assert (t.province, t.commune, t.ambiguous) == ("24", "07210", None)
    assert t.notes == ("commune 07201 (Phường Thọ Xương) → 07210 (Phường Bắc Giang)",)


def test_province_label_typos_do_not_leak(units: AdminUnits) -> None:
    # The table files one Long An ward under "Tiền Giang (82)" and a Cồn Cỏ row under
    # "Quảng Trị (44)"; old provinces must still have exactly one successor each.
    assert units.successor_province("82") == "82"
    assert units.successor_province("80") == "80"
    assert units.successor_province("45") == "44"
    assert units.successor_province("89") == "91"
    t = units.translate("80", "27691")  # Phường 4, Tân An (Long An) → Phường Long An, Tây Ninh
    assert (t.province, t.commune, t.ambiguous) == ("80", "27694", None)


def test_province_commune_mismatch_is_ambiguous(units: AdminUnits) -> None:
    t = units.translate("79", "00004")
    assert t.ambiguous is not None
    assert "commune 00004" in t.ambiguous and "is in province 01" in t.ambiguous
    assert "the message says 79" in t.ambiguous


def test_mismatch_after_translating_an_old_province(units: AdminUnits) -> None:
    t = units.translate("02", "00004")
    assert t.ambiguous and "the message says 02, i.e. 08" in t.ambiguous


def test_only_commune_given_derives_province(units: AdminUnits) -> None:
    assert units.translate(None, "27694").province == "80"
    assert units.translate("", "27694").province == "80"  # empty string counts as absent


# ---------------------------------------------------------------------------- no guessing


def test_commune_missing_from_the_table_is_ambiguous(units: AdminUnits) -> None:
    t = units.translate(None, "26935")  # Phường 14, Bình Thạnh: merged before the table
    assert t.commune == "26935" and t.province == "79"
    assert t.ambiguous and "not in the conversion table" in t.ambiguous


def test_suspect_row_is_never_trusted(units: AdminUnits) -> None:
    # a table row names Xã Mỹ Hưng but cites Xã Hồng Quang's code: neither is translated
    for code in ("01651", "01615"):
        t = units.translate(None, code)
        assert t.ambiguous and t.commune == code and not t.translated


def test_unknown_codes_are_listed_not_ambiguous(units: AdminUnits) -> None:
    t = units.translate("01", "99999")
    assert t == UnitTranslation("01", "99999", (), None, ("commune 99999",))
    t = units.translate("99", None)
    assert t == UnitTranslation("99", None, (), None, ("province 99",))
    assert units.translate(None, None) == UnitTranslation(None, None, (), None, ())


def test_translate_never_raises(units: AdminUnits) -> None:
    fresh = AdminUnits(orjson.loads(DEFAULT_PATH.read_bytes()))
    provinces = [f"{i:02d}" for i in range(100)]
    for p in provinces:
        t = fresh.translate(p, None)
        assert t.province is not None and t.commune is None
    for i in range(100_000):
        c = f"{i:05d}"
        t = fresh.translate(None, c)
        assert t.commune is not None
        if t.translated:  # only a commune was given, so the note is about the commune
            assert t.commune != c and t.ambiguous is None
        if t.ambiguous is None and not t.unknown:
            assert fresh.is_current_commune(t.commune)
    for p in provinces:
        for i in range(0, 100_000, 997):
            fresh.translate(p, f"{i:05d}")
    for junk in ("", " ", "0", "abc", "01 ", "000001", "ﾟ"):
        fresh.translate(junk, junk)


# ---------------------------------------------------------------------------- helpers


def test_lookups_and_descriptions(units: AdminUnits) -> None:
    assert units.is_current_province("01") and not units.is_current_province("02")
    assert units.is_current_commune("00004") and not units.is_current_commune("00013")
    assert units.province_of("00004") == "01"
    assert units.province_of("00013") is None
    assert units.successor_province("99") is None
    assert units.successor_province("01") == "01"
    assert units.describe_province("01") == "01 (Thành phố Hà Nội)"
    assert units.describe_province("02") == "02 (Tỉnh Hà Giang, before 1 July 2025)"
    assert units.describe_province("99") == "99 (unknown province)"
    assert units.describe_commune("00004") == "00004 (Phường Ba Đình, Thành phố Hà Nội)"
    assert units.describe_commune("00013").startswith("00013 (Phường Quán Thánh, Quận Ba Đình")
    assert units.describe_commune("99999") == "99999 (unknown commune)"


def test_load_reuses_the_table() -> None:
    assert AdminUnits.load() is AdminUnits.load(DEFAULT_PATH)


def test_split_old_province_is_ambiguous_unless_the_commune_settles_it(tmp_path: Path) -> None:
    # The real data has no split province, so rule 3 is exercised on a tiny made-up table.
    doc = {
        "format": 1,
        "sources": {},
        "provinces": {"10": "Tỉnh A", "20": "Tỉnh B"},
        "communes": {"10001": ["Xã A1", "10"], "20001": ["Xã B1", "20"]},
        "old_provinces": {"30": ["Tỉnh C", ["10", "20"]]},
        "old_districts": {"300": ["Huyện C", "30"]},
        "old_communes": {"30001": ["Xã C1", "300", ["20001"]]},
    }
    path = tmp_path / "units.json"
    path.write_bytes(orjson.dumps(doc))
    units = AdminUnits.load(path)
    t = units.translate("30", None)
    assert t.province == "30" and t.ambiguous and "split across 10 Tỉnh A, 20 Tỉnh B" in t.ambiguous
    assert units.successor_province("30") is None
    t = units.translate("30", "30001")
    assert (t.province, t.commune, t.ambiguous) == ("20", "20001", None)
    t = units.translate("30", "10001")
    assert (t.province, t.commune, t.ambiguous) == ("10", "10001", None)


def test_rejects_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "units.json"
    path.write_bytes(orjson.dumps({"format": 99}))
    with pytest.raises(ValueError, match="format"):
        AdminUnits.load(path)


# ---------------------------------------------------------------------------- shipped file


def _derived_from(source: Path) -> dict:
    doc, _report = _script().build(source)
    return doc


def _without_line_numbers(entry: object) -> object:
    """An entry with the conversion-table line numbers its issue cites taken out."""
    return orjson.loads(re.sub(rb"line \d+", b"line N", orjson.dumps(entry)))


def test_the_derivation_reproduces_the_shipped_entries_of_the_fixture_rows() -> None:
    """Source rows checked in (every row the derivation reads for FIXTURE_DISTRICTS) give
    exactly the shipped entries: the table is what the script makes, even on a fresh clone."""
    derived = _derived_from(FIXTURES)
    shipped = orjson.loads(DEFAULT_PATH.read_bytes())
    olds = sorted(c for c, e in derived["old_communes"].items() if e[1] in FIXTURE_DISTRICTS)
    assert len(olds) == 29
    for code in olds:  # issues cite table lines, which are the fixture file's here
        assert _without_line_numbers(derived["old_communes"][code]) == _without_line_numbers(
            shipped["old_communes"][code]
        ), code
    for district in FIXTURE_DISTRICTS:
        assert derived["old_districts"][district] == shipped["old_districts"][district]
    assert derived["communes"] == {c: shipped["communes"][c] for c in derived["communes"]}
    assert derived["provinces"] == {c: shipped["provinces"][c] for c in derived["provinces"]}
    for code, (name, successors) in derived["old_provinces"].items():
        assert name == shipped["old_provinces"][code][0]
        assert set(successors) <= set(shipped["old_provinces"][code][1])
    # the rows were chosen to cover each rule: a retired province, a split commune, a commune
    # that took the whole population, a suspect row
    extras = [e[3] for c, e in derived["old_communes"].items() if c in olds and len(e) > 3]
    assert derived["old_provinces"]["02"][1] == ["08"]
    assert any(len(derived["old_communes"][c][2]) > 1 for c in olds)
    assert any("population" in x for x in extras)
    assert any("under the name" in x.get("issue", "") for x in extras)


def test_the_shipped_table_is_what_the_full_source_gives(tmp_path: Path) -> None:
    """The whole file, byte for byte, from the source CSVs (../shared/data/admin-units or
    DVCBUS_ADMIN_UNITS_SRC); on a fresh clone, without them, from the fixture rows."""
    script = _script()
    source = script.default_source()
    if not (source / script.CONVERSION).is_file():
        test_the_derivation_reproduces_the_shipped_entries_of_the_fixture_rows()
        return
    out = tmp_path / "admin_units.json"
    script.derive(source, out)
    assert out.read_bytes() == DEFAULT_PATH.read_bytes(), (
        "bus/contract/data/admin_units.json is stale: run scripts/derive_admin_units.py"
    )


def test_every_unit_of_the_shipped_table_leads_to_current_units(units: AdminUnits) -> None:
    doc = orjson.loads(DEFAULT_PATH.read_bytes())
    provinces, communes = doc["provinces"], doc["communes"]
    assert len(provinces) == 34
    assert all(province in provinces for _name, province in communes.values())
    for code, (_name, successors) in doc["old_provinces"].items():
        assert successors and set(successors) <= set(provinces), code
        assert units.successor_province(code) in provinces, code  # every old province maps
    for code, (_name, old_province) in doc["old_districts"].items():
        assert old_province in doc["old_provinces"], code
    for code, entry in doc["old_communes"].items():
        assert entry[1] in doc["old_districts"], code
        assert set(entry[2]) <= set(communes), code


def test_no_old_commune_is_both_translated_and_ambiguous(units: AdminUnits) -> None:
    doc = orjson.loads(DEFAULT_PATH.read_bytes())
    translated = ambiguous = 0
    for code, entry in doc["old_communes"].items():
        t = units.translate(None, code)
        assert not (t.translated and t.ambiguous), code
        if len(entry) > 3 and "issue" in entry[3]:
            assert not t.translated, f"{code} has an issue, yet was translated"
        elif len(entry[2]) == 1 and code not in doc["communes"]:
            assert (t.commune, t.ambiguous) == (entry[2][0], None), code
        translated += t.translated
        ambiguous += t.ambiguous is not None
    assert translated > 6000 and ambiguous > 300  # both outcomes are exercised


# --- the message's date (a code that survived the reform meant the old unit before it) ---------


def test_a_surviving_split_commune_code_is_ambiguous_in_a_message_dated_before_the_reform(
    units: AdminUnits,
) -> None:
    before = units.translate(None, "00025", as_of="2025-06-30T16:59:59+00:00")
    assert before.ambiguous is not None
    assert "00025 (Phường Ngọc Khánh, Quận Ba Đình) was split across" in before.ambiguous
    assert before.ambiguous.endswith("(the message is dated before 1 July 2025)")
    assert before.unsure == ("commune",) and before.province == "01"
    after = units.translate(None, "00025", as_of="2025-07-01T00:00:00+07:00")
    assert after.ambiguous is None and after.commune == "00025" and not after.translated
    assert units.translate(None, "00025").ambiguous is None  # undated: the current lists


def test_the_reform_date_is_vietnam_midnight_whatever_the_offset() -> None:
    from bus.contract.admin_units import before_reform

    assert before_reform("2025-06-30T23:59:59+07:00")
    assert not before_reform("2025-06-30T17:00:00Z")  # = 1 July 00:00 in Vietnam
    assert before_reform("2025-06-30T16:59:59.999+00:00")
    assert not before_reform(None) and not before_reform("not a date")


def test_an_ambiguity_names_the_attributes_it_leaves_undecided(units: AdminUnits) -> None:
    split = units.translate("01", "00025", as_of="2024-01-01T00:00:00+07:00")
    assert split.unsure == ("commune",)
    assert units.translate(None, "99999").unknown == ("commune 99999",)
    assert units.translate(None, "99999").unsure == ()
