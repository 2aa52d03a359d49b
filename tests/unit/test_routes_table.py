"""The routing table: who may send what, where each message goes, and why (explain)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.contract.rejections import Reason, Rejection
from bus.routes import RoutesConfig, RoutingTable, load_routes
from tests.unit.routes_fixtures.fake_units import FakeUnits

ROUTES = """\
version: 1
sources:
  dossier.submitted: ["000.00.00.G22/portal"]
  dossier.status_changed: ["???.??.??.H??", "???.??.??.G??"]
  payment.confirmed: ["000.00.00.G22/payment"]
targets:
  portal: { agency: 000.00.00.G22, adapter: rest, endpoint: "http://127.0.0.1:18100/" }
  hanoi: { agency: 000.00.00.H26, adapter: rest, endpoint: "http://127.0.0.1:18101/" }
  hcmc: { agency: 000.00.00.H29, adapter: rest, endpoint: "http://127.0.0.1:18102/" }
  justice: { agency: 000.00.00.G12, adapter: rest, endpoint: "http://127.0.0.1:18105/" }
  archive: { agency: 000.00.00.G12, adapter: rest, endpoint: "http://127.0.0.1:18106/" }
  shared: { agency: 000.00.00.H99, adapter: rest, endpoint: "http://127.0.0.1:18104/" }
routes:
  - name: status-to-portal
    match: { type: dossier.status_changed }
    to: portal
  - name: payments-to-portal
    match: { type: payment.confirmed }
    to: portal
    continue: true
  - name: justice
    match: { type: dossier.submitted, agency: 000.00.00.G12, procedure: ["1.*", "2.000635"] }
    to: [justice, archive]
  - name: hanoi
    match: { type: [dossier.submitted, payment.confirmed], agency: "*.H26" }
    to: hanoi
  - name: hcmc
    match: { type: [dossier.submitted, payment.confirmed], agency: "*.H29" }
    to: hcmc
  - name: shared
    match: { type: dossier.submitted, agency: "???.??.??.H??", province: ["08", "15"] }
    to: shared
  - name: hanoi-by-commune
    match: { type: dossier.submitted, commune: "00097" }
    to: [hanoi, portal, hanoi]
"""
PORTAL = "000.00.00.G22/portal"
PAYMENT = "000.00.00.G22/payment"


@pytest.fixture
def units() -> FakeUnits:
    return FakeUnits()


@pytest.fixture
def table(tmp_path: Path, units: FakeUnits) -> RoutingTable:
    return _table(tmp_path, ROUTES, units)


def _table(tmp_path: Path, text: str, units: FakeUnits | None = None) -> RoutingTable:
    path = tmp_path / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    return RoutingTable(load_routes(path), units or FakeUnits())


def _rejection(table: RoutingTable, type_: str, source: str, attrs: dict[str, str]) -> Rejection:
    with pytest.raises(Rejection) as caught:
        table.resolve(type_, source, attrs)
    return caught.value


# --- resolve -----------------------------------------------------------------------------------


def test_first_matching_route_wins(table: RoutingTable) -> None:
    found = table.resolve("dossier.submitted", PORTAL, {"agency": "000.04.01.H26"})
    assert found.targets == ("hanoi",)
    assert found.routes == ("hanoi",)
    assert found.translation is None


def test_continue_keeps_matching_so_payments_reach_portal_and_owner(table: RoutingTable) -> None:
    found = table.resolve("payment.confirmed", PAYMENT, {"agency": "000.00.12.H29"})
    assert found.targets == ("portal", "hcmc")
    assert found.routes == ("payments-to-portal", "hcmc")


def test_continue_alone_is_enough_when_no_later_route_matches(table: RoutingTable) -> None:
    found = table.resolve("payment.confirmed", PAYMENT, {"agency": "000.00.00.G09"})
    assert found.targets == ("portal",)


def test_fan_out_sends_to_every_target_listed_once_in_order(table: RoutingTable) -> None:
    found = table.resolve(
        "dossier.submitted", PORTAL, {"agency": "000.00.00.G12", "procedure": "1.000001"}
    )
    assert found.targets == ("justice", "archive")
    dup = table.resolve(
        "dossier.submitted", PORTAL, {"agency": "000.00.00.G09", "commune": "00097"}
    )
    assert dup.targets == ("hanoi", "portal")


def test_targets_reached_by_two_routes_are_listed_once(tmp_path: Path) -> None:
    text = ROUTES.replace(
        "    to: portal\n    continue: true", "    to: [portal, hcmc]\n    continue: true"
    )
    found = _table(tmp_path, text).resolve(
        "payment.confirmed", PAYMENT, {"agency": "000.00.00.H29"}
    )
    assert found.targets == ("portal", "hcmc")
    assert found.routes == ("payments-to-portal", "hcmc")


def test_globs_match_the_whole_value_case_sensitively(table: RoutingTable) -> None:
    assert table.resolve("dossier.submitted", PORTAL, {"agency": "000.00.53.H29"}).targets == (
        "hcmc",
    )
    for agency in ("000.00.53.H290", "000.00.53.h29"):
        rejection = _rejection(table, "dossier.submitted", PORTAL, {"agency": agency})
        assert rejection.reason is Reason.UNROUTABLE


def test_a_list_matches_any_of_its_values(table: RoutingTable) -> None:
    for procedure in ("1.012889", "2.000635"):
        found = table.resolve(
            "dossier.submitted", PORTAL, {"agency": "000.00.00.G12", "procedure": procedure}
        )
        assert found.targets == ("justice", "archive")
    rejection = _rejection(
        table, "dossier.submitted", PORTAL, {"agency": "000.00.00.G12", "procedure": "2.000636"}
    )
    assert rejection.reason is Reason.UNROUTABLE


def test_every_condition_of_a_route_must_hold(table: RoutingTable) -> None:
    attrs = {"agency": "000.00.12.H40", "province": "08"}
    assert table.resolve("dossier.submitted", PORTAL, attrs).targets == ("shared",)
    attrs = {"agency": "000.00.00.G09", "province": "08"}  # a ministry: not the shared platform
    assert _rejection(table, "dossier.submitted", PORTAL, attrs).reason is Reason.UNROUTABLE


def test_a_route_needing_an_attribute_the_message_lacks_does_not_match(table: RoutingTable) -> None:
    rejection = _rejection(table, "dossier.submitted", PORTAL, {"agency": "000.00.00.G12"})
    assert rejection.reason is Reason.UNROUTABLE


def test_source_conditions_and_untyped_routes(tmp_path: Path) -> None:
    text = ROUTES.replace(
        "routes:\n",
        "routes:\n"
        "  - name: from-hanoi\n"
        '    match: { source: "*.H26" }\n'
        "    to: hanoi\n"
        "    continue: true\n",
    )
    table = _table(tmp_path, text)
    found = table.resolve("dossier.status_changed", "000.00.00.H26", {"agency": "000.04.01.H26"})
    assert found.targets == ("hanoi", "portal")
    assert table.resolve("dossier.status_changed", "000.00.00.H29", {}).targets == ("portal",)
    assert table.routes_for("dossier.status_changed") == ("from-hanoi", "status-to-portal")
    assert table.routes_for("some.other_type") == ("from-hanoi",)


def test_unroutable_message_is_rejected_with_its_routing_attributes(table: RoutingTable) -> None:
    attrs = {
        "agency": "000.00.00.G09",
        "procedure": "1.000001",
        "province": "79",
        "commune": "26740",
    }
    rejection = _rejection(table, "dossier.submitted", PORTAL, attrs)
    assert rejection.reason is Reason.UNROUTABLE
    assert rejection.detail == (
        "no route for dossier.submitted agency=000.00.00.G09 procedure=1.000001 "
        "province=79 commune=26740 source=000.00.00.G22/portal"
    )


# --- units --------------------------------------------------------------------------------------


def test_old_province_code_matches_the_route_of_its_successor(table: RoutingTable) -> None:
    found = table.resolve(
        "dossier.submitted", PORTAL, {"agency": "000.00.12.H40", "province": "02"}
    )
    assert found.targets == ("shared",)
    assert found.translation is not None and found.translation.translated
    assert found.translation.province == "08"


def test_old_commune_code_is_translated_before_matching(table: RoutingTable) -> None:
    found = table.resolve(
        "dossier.submitted", PORTAL, {"agency": "000.00.00.G09", "commune": "00001"}
    )
    assert found.routes == ("hanoi-by-commune",)
    assert found.translation is not None and found.translation.commune == "00097"


def test_current_codes_carry_an_untranslated_translation(table: RoutingTable) -> None:
    found = table.resolve(
        "dossier.submitted", PORTAL, {"agency": "000.00.12.H40", "province": "08"}
    )
    assert found.translation is not None and not found.translation.translated


def test_ambiguous_unit_is_rejected_not_guessed(table: RoutingTable) -> None:
    rejection = _rejection(
        table, "dossier.submitted", PORTAL, {"agency": "000.04.01.H26", "commune": "00007"}
    )
    assert rejection.reason is Reason.AMBIGUOUS_UNIT
    assert "split across 00008, 00025" in rejection.detail


AGENCY_ONLY = """\
version: 1
sources:
  dossier.submitted: ["000.00.00.G22/portal"]
targets:
  hanoi: { agency: 000.00.00.H26, adapter: rest, endpoint: "http://127.0.0.1:18101/" }
  census: { agency: 000.00.00.G99, adapter: rest, endpoint: "http://127.0.0.1:18107/",
            needs_current_units: true }
routes:
  - name: hanoi
    match: { type: dossier.submitted, agency: "*.H26" }
    to: hanoi
  - name: census
    match: { type: dossier.submitted, agency: "*.G99" }
    to: census
"""


def test_an_ambiguous_commune_no_route_reads_is_forwarded_as_written_and_flagged(
    tmp_path: Path,
) -> None:
    table = _table(tmp_path, AGENCY_ONLY)
    found = table.resolve(
        "dossier.submitted", PORTAL, {"agency": "000.04.01.H26", "commune": "00007"}
    )
    assert found.targets == ("hanoi",)
    assert found.translation is not None and found.translation.commune == "00007"
    assert found.flags == (
        "kept as written, no route reads it: "
        "old commune 00007 (Phường Cống Vị) was split across 00008, 00025",
    )
    explained = str(
        table.explain("dossier.submitted", PORTAL, {"agency": "000.04.01.H26", "commune": "00007"})
    )
    assert "units: kept as written, no route reads it" in explained
    assert explained.splitlines()[-1] == "result: deliver to hanoi (routes: hanoi)"


def test_an_ambiguous_commune_is_refused_for_a_target_that_needs_current_codes(
    tmp_path: Path,
) -> None:
    table = _table(tmp_path, AGENCY_ONLY)
    attrs = {"agency": "000.00.00.G99", "commune": "00007"}
    rejection = _rejection(table, "dossier.submitted", PORTAL, attrs)
    assert rejection.reason is Reason.AMBIGUOUS_UNIT
    assert rejection.detail.endswith("(target census needs current unit codes)")
    explained = table.explain("dossier.submitted", PORTAL, attrs)
    assert (explained.fate, explained.detail) == (rejection.reason, rejection.detail)


def test_a_unit_code_in_neither_list_is_invalid_not_forwarded(tmp_path: Path) -> None:
    for table in (_table(tmp_path, AGENCY_ONLY), _table(tmp_path, ROUTES)):
        attrs = {"agency": "000.04.01.H26", "commune": "99999"}
        rejection = _rejection(table, "dossier.submitted", PORTAL, attrs)
        assert rejection.reason is Reason.INVALID
        assert rejection.detail == (
            "unit code in neither the current nor the pre-reform list: commune 99999"
        )
        assert table.explain("dossier.submitted", PORTAL, attrs).fate is Reason.INVALID


def test_unroutable_detail_says_what_was_translated(table: RoutingTable) -> None:
    rejection = _rejection(
        table, "dossier.submitted", PORTAL, {"agency": "000.00.00.G09", "province": "02"}
    )
    assert "province=08 (was 02) source=" in rejection.detail


# --- authorise ----------------------------------------------------------------------------------


def test_allowed_sources_pass(table: RoutingTable) -> None:
    table.authorise("dossier.submitted", PORTAL)
    table.authorise("dossier.status_changed", "000.00.00.H26")
    table.authorise("dossier.status_changed", "000.00.00.G12")


def test_unauthorised_source_is_rejected_with_the_allowed_list(table: RoutingTable) -> None:
    with pytest.raises(Rejection) as caught:
        table.authorise("payment.confirmed", "000.00.00.H29")
    assert caught.value.reason is Reason.UNAUTHORISED
    assert caught.value.detail == (
        "source 000.00.00.H29 may not send payment.confirmed (allowed: 000.00.00.G22/payment)"
    )
    with pytest.raises(Rejection):  # a glob must match the whole source
        table.authorise("dossier.status_changed", "000.00.00.H26/motcua")


def test_a_type_without_sources_accepts_no_source(table: RoutingTable) -> None:
    with pytest.raises(Rejection) as caught:
        table.authorise("feedback.submitted", PORTAL)
    assert caught.value.reason is Reason.UNAUTHORISED
    assert "allows no source" in caught.value.detail


# --- cache --------------------------------------------------------------------------------------


def test_cached_answers_equal_fresh_ones(table: RoutingTable) -> None:
    attrs = {"agency": "000.00.12.H40", "province": "02", "procedure": "1.000001"}
    first = table.resolve("dossier.submitted", PORTAL, attrs)
    again = table.resolve("dossier.submitted", PORTAL, dict(attrs))
    assert again == first
    assert table.cache_info().hits == 1


def test_attributes_no_route_reads_do_not_split_the_cache(table: RoutingTable) -> None:
    # No route of payment.confirmed looks at the procedure: one entry serves them all.
    for n in range(20):
        table.resolve(
            "payment.confirmed", PAYMENT, {"agency": "000.00.00.H26", "procedure": f"1.{n:06d}"}
        )
    assert table.cache_info().currsize == 1


def test_cached_rejections_are_raised_fresh_each_time(table: RoutingTable) -> None:
    attrs = {"agency": "000.00.00.G09"}
    first = _rejection(table, "dossier.submitted", PORTAL, attrs)
    second = _rejection(table, "dossier.submitted", PORTAL, attrs)
    assert first is not second
    assert (first.reason, first.detail) == (second.reason, second.detail)


def test_the_cache_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES, encoding="utf-8")
    table = RoutingTable(load_routes(path), FakeUnits(), cache_size=10)
    for n in range(50):
        table.resolve("payment.confirmed", PAYMENT, {"agency": f"000.00.{n:02d}.H26"})
    assert table.cache_info().currsize == 10


def test_table_refuses_a_config_routing_to_unknown_targets() -> None:
    with pytest.raises(ValueError, match="unknown target"):
        RoutesConfig.model_validate(
            {
                "version": 1,
                "targets": {},
                "routes": [{"name": "x", "match": {}, "to": "nowhere"}],
            }
        )


def test_table_built_from_a_config_made_in_code_has_no_lines() -> None:
    config = RoutesConfig.model_validate(
        {
            "version": 1,
            "sources": {"dossier.submitted": PORTAL},
            "targets": {
                "a": {"agency": "000.00.00.H26", "adapter": "rest", "endpoint": "http://x/"}
            },
            "routes": [{"name": "all", "match": {}, "to": "a"}],
        }
    )
    table = RoutingTable(config, None)
    assert table.resolve("dossier.submitted", PORTAL, {"province": "02"}).targets == ("a",)
    assert "line" not in str(table.explain("dossier.submitted", PORTAL, {}))
    assert table.targets["a"].read_timeout == 10.0


# --- explain ------------------------------------------------------------------------------------


def test_explain_names_the_first_condition_that_failed(table: RoutingTable) -> None:
    explanation = table.explain(
        "dossier.submitted", PORTAL, {"agency": "000.00.00.H29", "procedure": "1.000001"}
    )
    text = str(explanation)
    assert "agency 000.00.00.H29 does not match *.H26" in text
    assert "agency 000.00.00.H29 does not match 000.00.00.G12" in text
    assert "matched → hcmc; stops here" in text
    assert "not reached: route 'hcmc' matched first" in text
    assert explanation.targets == ("hcmc",) and explanation.fate is None
    assert text.splitlines()[-1] == "result: deliver to hcmc (routes: hcmc)"


def test_explain_cites_file_and_line_of_each_route(table: RoutingTable) -> None:
    text = str(
        table.explain("dossier.status_changed", "000.00.00.H26", {"agency": "000.04.01.H26"})
    )
    assert "routes.yaml:14  status-to-portal" in text and "status-to-portal" in text
    assert "source: allowed: 000.00.00.H26 matches any of ???.??.??.H??, ???.??.??.G??" in text
    assert "routes.yaml:4)" in text


def test_explain_shows_continue_and_routes_not_reached(table: RoutingTable) -> None:
    lines = table.explain("payment.confirmed", PAYMENT, {"agency": "000.00.00.H26"}).lines()
    assert any("payments-to-portal" in ln and "continues (continue: true)" in ln for ln in lines)
    assert any(
        "hcmc" in ln and ln.endswith("not reached: route 'hanoi' matched first") for ln in lines
    )
    attrs = {"agency": "000.00.00.H26", "province": "08"}
    lines = table.explain("dossier.submitted", PORTAL, attrs).lines()
    assert any("shared" in ln and ln.endswith("matched first (would match)") for ln in lines)


def test_explain_says_when_the_message_lacks_an_attribute(table: RoutingTable) -> None:
    text = str(table.explain("dossier.submitted", PORTAL, {"agency": "000.00.00.G12"}))
    assert "the message has no procedure (the route needs procedure any of 1.*, 2.000635)" in text


def test_explain_reports_unauthorised_without_raising(table: RoutingTable) -> None:
    explanation = table.explain("payment.confirmed", "000.00.00.H29", {"agency": "000.00.00.H26"})
    assert explanation.fate is Reason.UNAUTHORISED
    text = str(explanation)
    assert "source: refused: source 000.00.00.H29 may not send payment.confirmed" in text
    assert "(as if the source were allowed)" in text
    assert text.splitlines()[-1].startswith("result: dead letter, reason unauthorised:")


def test_explain_reports_unroutable_with_the_dead_letter_detail(table: RoutingTable) -> None:
    explanation = table.explain("dossier.submitted", PORTAL, {"agency": "000.00.00.G09"})
    assert explanation.fate is Reason.UNROUTABLE
    assert str(explanation).splitlines()[-1] == (
        "result: dead letter, reason unroutable: no route for dossier.submitted "
        "agency=000.00.00.G09 source=000.00.00.G22/portal"
    )


def test_explain_reports_ambiguous_units_and_translations(table: RoutingTable) -> None:
    ambiguous = table.explain(
        "dossier.submitted", PORTAL, {"agency": "000.04.01.H26", "commune": "00007"}
    )
    assert ambiguous.fate is Reason.AMBIGUOUS_UNIT
    assert "routes: not evaluated" in str(ambiguous)
    translated = str(
        table.explain("dossier.submitted", PORTAL, {"agency": "000.00.12.H40", "province": "02"})
    )
    assert "units: province 02 → 08 (Tỉnh Tuyên Quang)" in translated
    assert "province 08 (was 02) is not" not in translated  # shared matched
    missed = str(
        table.explain("dossier.submitted", PORTAL, {"agency": "000.00.00.G09", "province": "02"})
    )
    assert "agency 000.00.00.G09 does not match ???.??.??.H??" in missed


def test_explain_and_resolve_agree(table: RoutingTable) -> None:
    cases = [
        ("dossier.submitted", PORTAL, {"agency": "000.00.00.G12", "procedure": "1.000001"}),
        ("dossier.submitted", PORTAL, {"agency": "000.00.12.H40", "province": "02"}),
        ("payment.confirmed", PAYMENT, {"agency": "000.00.12.H29"}),
        ("dossier.status_changed", "000.00.00.H26", {"agency": "000.04.01.H26"}),
        ("dossier.submitted", PORTAL, {"agency": "000.00.00.G09", "commune": "00001"}),
    ]
    for type_, source, attrs in cases:
        found = table.resolve(type_, source, attrs)
        explained = table.explain(type_, source, attrs)
        assert (explained.targets, explained.routes) == (found.targets, found.routes)
