"""The router's decision for one ingress body, without a broker: forward, or park with a reason.

Built from the repository's real schemas and the routes loader; unit codes come from the
small stand-in table of ``routes_fixtures/fake_units.py`` (02 became 08, commune 00001
became 00097, commune 00007 was split).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from bus.contract.rejections import Reason
from bus.contract.schemas import SchemaRegistry
from bus.routes import RoutingTable, load_routes
from bus.routing.pipeline import Forward, Park, RouterPipeline
from tests.unit.routes_fixtures.fake_units import FakeUnits

ROUTES = """\
version: 1
sources:
  dossier.submitted: ["000.00.00.G22/portal"]
  dossier.status_changed: ["???.??.??.H??"]
  payment.confirmed: ["000.00.00.G22/payment"]
targets:
  portal: { agency: 000.00.00.G22, adapter: rest, endpoint: "http://127.0.0.1:18100/" }
  hanoi: { agency: 000.00.00.H26, adapter: rest, endpoint: "http://127.0.0.1:18101/" }
  archive: { agency: 000.00.00.G12, adapter: rest, endpoint: "http://127.0.0.1:18106/" }
  tuyenquang: { agency: 000.00.00.H99, adapter: rest, endpoint: "http://127.0.0.1:18104/" }
routes:
  - name: status-to-portal
    match: { type: dossier.status_changed }
    to: portal
  - name: hanoi
    match: { type: dossier.submitted, agency: "*.H26" }
    to: [hanoi, archive]
  - name: tuyenquang-by-province
    match: { type: dossier.submitted, agency: "*.H99", province: "08" }
    to: tuyenquang
  - name: by-new-commune
    match: { type: dossier.submitted, agency: "*.H98", commune: "00097" }
    to: hanoi
"""
MAX_BYTES = 64 * 1024
EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
SUBMITTED = EXAMPLES / "dossier.submitted.v1" / "valid" / "citizen-hanoi-online.json"
STATUS = EXAMPLES / "dossier.status_changed.v1" / "valid" / "received.json"


@pytest.fixture(scope="module")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.load()


@pytest.fixture
def pipeline(tmp_path: Path, schemas: SchemaRegistry) -> RouterPipeline:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES, encoding="utf-8")
    table = RoutingTable(load_routes(path), FakeUnits())
    return RouterPipeline(schemas, table, MAX_BYTES)


def _submitted(**payload: Any) -> dict[str, Any]:
    doc = orjson.loads(SUBMITTED.read_bytes())
    doc["payload"].update(payload)
    return doc


def _address(doc: dict[str, Any], province: str, commune: str) -> dict[str, Any]:
    doc["payload"]["applicant"]["address"].update(province_code=province, commune_code=commune)
    return doc


def _park(pipeline: RouterPipeline, body: bytes) -> Park:
    decision = pipeline.decide(body)
    assert isinstance(decision, Park), decision
    return decision


def _forward(pipeline: RouterPipeline, body: bytes) -> Forward:
    decision = pipeline.decide(body)
    assert isinstance(decision, Forward), decision
    return decision


# --- forwarded ---------------------------------------------------------------------------


def test_a_valid_message_is_forwarded_unchanged_to_every_target_of_its_route(
    pipeline: RouterPipeline,
) -> None:
    body = orjson.dumps(_submitted())
    decision = _forward(pipeline, body)
    assert decision.targets == ("hanoi", "archive")
    assert decision.routes == ("hanoi",)
    assert decision.body is body  # current unit codes: the very bytes go on
    assert decision.unit_notes == ()


def test_a_forwarded_message_carries_its_identity_for_the_hops(pipeline: RouterPipeline) -> None:
    doc = _submitted()
    decision = _forward(pipeline, orjson.dumps(doc))
    assert decision.message_id == doc["id"]
    assert decision.message_type == "dossier.submitted"
    assert decision.dossier_no == "000.04.01.H26-261125-0031"
    assert decision.status is None  # only status updates carry one


def test_a_status_update_is_forwarded_to_its_one_target_with_its_status(
    pipeline: RouterPipeline,
) -> None:
    doc = orjson.loads(STATUS.read_bytes())
    decision = _forward(pipeline, orjson.dumps(doc))
    assert decision.targets == ("portal",)
    assert decision.routes == ("status-to-portal",)
    assert decision.message_type == "dossier.status_changed"
    assert decision.status == doc["payload"]["status"]
    assert decision.dossier_no == doc["payload"]["dossier_no"]


def test_old_unit_codes_are_routed_and_sent_on_as_the_current_ones(
    pipeline: RouterPipeline,
) -> None:
    doc = _address(_submitted(receiving_agency="000.00.00.H99"), "02", "00001")
    decision = _forward(pipeline, orjson.dumps(doc))
    assert decision.targets == ("tuyenquang",)
    assert decision.unit_notes == ("commune 00001 → 00097", "province 02 → 08 (Tỉnh Tuyên Quang)")
    sent = orjson.loads(decision.body)
    assert sent["payload"]["applicant"]["address"] == {
        **doc["payload"]["applicant"]["address"],
        "province_code": "08",
        "commune_code": "00097",
    }
    unchanged = copy.deepcopy(sent)
    unchanged["payload"]["applicant"]["address"].update(province_code="02", commune_code="00001")
    assert unchanged == doc  # nothing else is rewritten


def test_a_route_on_a_current_commune_takes_a_message_written_with_its_old_code(
    pipeline: RouterPipeline,
) -> None:
    doc = _address(_submitted(receiving_agency="000.00.00.H98"), "01", "00001")
    decision = _forward(pipeline, orjson.dumps(doc))
    assert (decision.targets, decision.routes) == (("hanoi",), ("by-new-commune",))
    assert decision.unit_notes == ("commune 00001 → 00097",)


# --- parked ------------------------------------------------------------------------------


def test_a_body_over_the_cap_is_parked_too_large_before_it_is_parsed(
    pipeline: RouterPipeline,
) -> None:
    body = orjson.dumps(_submitted(summary="x" * MAX_BYTES))
    decision = _park(pipeline, body)
    assert decision.reason is Reason.TOO_LARGE
    assert decision.detail == f"body is {len(body)} bytes, cap is {MAX_BYTES}"
    assert (decision.message_id, decision.message_type, decision.dossier_no) == (None, None, None)


def test_a_body_that_is_not_json_is_parked_malformed(pipeline: RouterPipeline) -> None:
    decision = _park(pipeline, b'{"id": ')
    assert decision.reason is Reason.MALFORMED
    assert decision.detail.startswith("not JSON: ")


def test_a_body_that_is_not_utf8_is_parked_malformed_naming_the_offset(
    pipeline: RouterPipeline,
) -> None:
    decision = _park(pipeline, b'{"id": "\xff"}')
    assert decision.reason is Reason.MALFORMED
    assert decision.detail == "not UTF-8: invalid byte at offset 8"


def test_json_that_is_not_an_object_is_parked_malformed(pipeline: RouterPipeline) -> None:
    decision = _park(pipeline, b"[1, 2]")
    assert (decision.reason, decision.detail) == (
        Reason.MALFORMED,
        "top level is a JSON list, not an object",
    )


def test_a_body_with_two_type_keys_is_parked_malformed_not_routed_on_either(
    pipeline: RouterPipeline,
) -> None:
    body = orjson.dumps(_submitted())
    assert body.startswith(b'{"id":')
    body = b'{"type":"dossier.status_changed",' + body[1:]  # a parser keeping the first differs
    decision = _park(pipeline, body)
    assert (decision.reason, decision.detail) == (Reason.MALFORMED, 'duplicate key "type" at $')


def test_an_invalid_payload_is_parked_with_the_exact_path_and_rule(
    pipeline: RouterPipeline,
) -> None:
    doc = _submitted(procedure_code="1.00161")
    decision = _park(pipeline, orjson.dumps(doc))
    assert decision.reason is Reason.INVALID
    assert decision.detail == r"payload.procedure_code: pattern ^[1-3]\.[0-9]{6}$"
    assert decision.message_id == doc["id"]
    assert decision.message_type == "dossier.submitted"
    assert decision.dossier_no == "000.04.01.H26-261125-0031"


def test_a_missing_required_field_is_named_at_its_parent_object(pipeline: RouterPipeline) -> None:
    doc = _submitted()
    del doc["payload"]["dossier_no"]
    decision = _park(pipeline, orjson.dumps(doc))
    assert decision.reason is Reason.INVALID
    assert decision.detail == "payload: required property 'dossier_no'"


def test_an_invalid_envelope_is_parked_invalid_and_an_unusable_id_is_not_quoted(
    pipeline: RouterPipeline,
) -> None:
    doc = _submitted()
    doc["id"] = 42
    decision = _park(pipeline, orjson.dumps(doc))
    assert decision.reason is Reason.INVALID
    assert decision.detail.startswith("id: type ")
    assert decision.message_id is None


def test_a_version_without_a_schema_is_parked_unknown_type(pipeline: RouterPipeline) -> None:
    doc = _submitted()
    doc["version"] = 3
    decision = _park(pipeline, orjson.dumps(doc))
    assert decision.reason is Reason.UNKNOWN_TYPE
    assert decision.detail.startswith("no schema for dossier.submitted v3; known: ")
    assert "dossier.submitted v1" in decision.detail


def test_a_source_not_allowed_to_send_the_type_is_parked_unauthorised(
    pipeline: RouterPipeline,
) -> None:
    doc = _submitted()
    doc["source"] = "000.00.00.G09/portal"
    decision = _park(pipeline, orjson.dumps(doc))
    assert decision.reason is Reason.UNAUTHORISED
    assert decision.detail == (
        "source 000.00.00.G09/portal may not send dossier.submitted (allowed: 000.00.00.G22/portal)"
    )


def test_validation_comes_before_authorisation(pipeline: RouterPipeline) -> None:
    doc = _submitted(procedure_code="1.00161")
    doc["source"] = "000.00.00.G09/portal"
    assert _park(pipeline, orjson.dumps(doc)).reason is Reason.INVALID


def test_a_message_no_route_takes_is_parked_unroutable_with_its_attributes(
    pipeline: RouterPipeline,
) -> None:
    doc = _submitted(receiving_agency="000.00.00.H29")
    decision = _park(pipeline, orjson.dumps(doc))
    assert decision.reason is Reason.UNROUTABLE
    assert decision.detail == (
        "no route for dossier.submitted agency=000.00.00.H29 procedure=2.000635 "
        "province=01 commune=00004 source=000.00.00.G22/portal"
    )
    assert decision.message_id == doc["id"]


def test_an_unroutable_message_with_old_unit_codes_names_what_it_was_written_with(
    pipeline: RouterPipeline,
) -> None:
    doc = _address(_submitted(receiving_agency="000.00.00.H29"), "02", "00001")
    decision = _park(pipeline, orjson.dumps(doc))
    assert decision.reason is Reason.UNROUTABLE
    assert "province=08 (was 02) commune=00097 (was 00001)" in decision.detail


def test_a_split_old_commune_is_parked_ambiguous_unit_rather_than_guessed(
    pipeline: RouterPipeline,
) -> None:
    doc = _address(_submitted(), "01", "00007")
    decision = _park(pipeline, orjson.dumps(doc))
    assert decision.reason is Reason.AMBIGUOUS_UNIT
    assert decision.detail == (
        "old commune 00007 (Phường Cống Vị) was split across 00008, 00025"
        " (routes for dossier.submitted read the commune)"
    )
    assert decision.dossier_no == "000.04.01.H26-261125-0031"
