"""dossier.submitted v2 beside v1: what v2 accepts and refuses, v1 unchanged, both routed alike.

Built on the published examples and the repository's routes.yaml and agency registry, so a
drift of the contract or of the example routes shows here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from bus.contract.admin_units import AdminUnits
from bus.contract.rejections import Reason, Rejection
from bus.contract.schemas import SchemaLoadError, SchemaRegistry
from bus.routes import RoutingTable, load_routes
from bus.routes.agencies import AgencyRegistry
from bus.routing.pipeline import Forward, RouterPipeline
from tests.unit.test_schemas import REGISTRY, SCHEMAS, example

ROOT = Path(__file__).resolve().parents[2]

V1_CITIZEN = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
V2_CITIZEN = example("dossier.submitted.v2/valid/citizen-hanoi-full-online-paid.json")
V2_ORGANISATION = example("dossier.submitted.v2/valid/organisation-hcmc-counter-no-phone.json")


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        REGISTRY.validate(doc)
    except Rejection as rej:
        assert rej.reason is Reason.INVALID
        found = [str(p) for p in REGISTRY.problems(doc)]
        assert rej.detail.startswith(found[0])
        return found
    assert REGISTRY.problems(doc) == []
    return []


def with_applicant(doc: dict[str, Any], **fields: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for key, value in fields.items():
        if value is None:
            doc["payload"]["applicant"].pop(key, None)
        else:
            doc["payload"]["applicant"][key] = value
    return doc


# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    "phone",
    [
        "0987654321",  # mobile 09
        "0356789012",  # mobile 03
        "+84903123456",
        "02438251234",  # Hà Nội landline: 024 + 8 digits
        "02838291234",  # TP Hồ Chí Minh: 028 + 8 digits
        "02363821234",  # Đà Nẵng: 0236 + 7 digits
        "02033825123",  # Quảng Ninh 0203
        "02993821234",  # Sóc Trăng 0299
        "+842363821234",
    ],
)
def test_v2_accepts_mobiles_and_landlines(phone: str) -> None:
    assert problems(with_applicant(V2_CITIZEN, phone=phone)) == []


@pytest.mark.parametrize(
    "phone",
    [
        "0243825123",  # Hà Nội landline one digit short
        "024382512345",  # one digit too many
        "02173821234",  # 0217: no province has it
        "02363821234 ",
        "0236.382.1234",
        "0123456789",  # the pre-2018 11-digit mobile prefixes are gone; 01 is nothing now
        "+8402363821234",  # +84 keeps no trunk 0
        "84987654321",
    ],
)
def test_v2_refuses_what_is_no_vietnamese_number(phone: str) -> None:
    found = problems(with_applicant(V2_CITIZEN, phone=phone))
    assert found and found[0].startswith("payload.applicant.phone: pattern ")


def test_v1_is_unchanged_a_landline_is_still_refused_there() -> None:
    found = problems(with_applicant(V1_CITIZEN, phone="02438251234"))
    assert found == ["payload.applicant.phone: pattern ^(0|\\+84)(3|5|7|8|9)[0-9]{8}$"]


def test_a_phone_is_required_only_for_a_citizens_dossier_not_made_at_a_counter() -> None:
    no_phone = with_applicant(V2_CITIZEN, phone=None)
    assert problems(no_phone) == ["payload.applicant: required property 'phone'"]
    postal = copy.deepcopy(no_phone)
    postal["payload"]["channel"] = "postal"
    assert problems(postal) == ["payload.applicant: required property 'phone'"]
    counter = copy.deepcopy(no_phone)
    counter["payload"].update(channel="direct", received_at="2026-11-25T09:20:00+07:00")
    assert problems(counter) == []
    assert "phone" not in V2_ORGANISATION["payload"]["applicant"]
    assert problems(V2_ORGANISATION) == []
    online_organisation = copy.deepcopy(V2_ORGANISATION)
    online_organisation["payload"].update(channel="online", service_level="partial_online")
    assert problems(online_organisation) == []


# --------------------------------------------------------------------------- id numbers


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        (("applicant",), "000000000000", "province code of the 63"),
        (("applicant",), "003190012345", "province code of the 63"),
        (("applicant",), "001399012345", "not in the future"),
        (("applicant",), "000000000", "not all zeros"),
        (("applicant", "representative"), "097085001234", "province code of the 63"),
        (("submitter",), "000000000", "not all zeros"),
    ],
)
def test_v2_refuses_id_numbers_no_citizen_can_hold_naming_the_place(
    where: tuple[str, ...], value: str, expected: str
) -> None:
    doc = copy.deepcopy(V2_ORGANISATION if "representative" in where else V2_CITIZEN)
    node = doc["payload"]
    for key in where:
        node = node.setdefault(key, {"full_name": "Trần Văn Bình"})
    node["id_number"] = value
    with pytest.raises(Rejection) as caught:
        REGISTRY.validate(doc)
    path = "payload." + ".".join(where) + ".id_number"
    assert caught.value.reason is Reason.INVALID
    assert caught.value.detail.startswith(f"{path}: citizen_id ")
    assert expected in caught.value.detail
    assert value not in caught.value.detail


def test_v1_still_accepts_the_ids_v2_refuses() -> None:
    for value in ("000000000000", "003190012345", "000000000"):
        assert problems(with_applicant(V1_CITIZEN, id_number=value)) == []
        assert problems(with_applicant(V2_CITIZEN, id_number=value))


def test_a_semantic_problem_is_listed_in_path_order_with_the_schemas() -> None:
    doc = with_applicant(V2_CITIZEN, id_number="000000000000")
    doc["payload"]["documents"][0]["sha256"] = "ABC"
    doc["payload"]["submitter"] = {"full_name": "Trần Văn Bình", "id_number": "000000000"}
    assert [(p.split(":")[0]) for p in problems(doc)] == [
        "payload.applicant.id_number",
        "payload.documents[0].sha256",
        "payload.submitter.id_number",
    ]


def test_an_id_that_fails_its_pattern_gets_only_the_pattern_problem() -> None:
    assert problems(with_applicant(V2_CITIZEN, id_number="0000")) == [
        "payload.applicant.id_number: pattern ^([0-9]{12}|[0-9]{9})$"
    ]


def test_an_unknown_x_check_is_refused_at_load_naming_the_file(tmp_path: Path) -> None:
    for path in SCHEMAS.glob("*.json"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    common = json.loads((tmp_path / "common.v1.json").read_text(encoding="utf-8"))
    common["definitions"]["citizen_id"]["x-check"] = "luhn"
    (tmp_path / "common.v1.json").write_text(json.dumps(common), encoding="utf-8")
    with pytest.raises(SchemaLoadError, match=r"common\.v1\.json.*x-check 'luhn' is not one of"):
        SchemaRegistry.load(tmp_path)


# --------------------------------------------------------------------------- new fields


def test_an_organisation_names_its_representative_and_role() -> None:
    doc = copy.deepcopy(V2_ORGANISATION)
    assert doc["payload"]["applicant"]["representative"]["role"] == "Giám đốc"
    del doc["payload"]["applicant"]["representative"]
    assert problems(doc) == ["payload.applicant: required property 'representative'"]
    doc["payload"]["applicant"]["representative"] = {"full_name": "Lê Văn Hùng"}
    assert problems(doc) == ["payload.applicant.representative: required property 'role'"]


def test_counter_dossiers_carry_their_receiving_date_online_ones_their_service_level() -> None:
    counter = copy.deepcopy(V2_ORGANISATION)
    del counter["payload"]["received_at"]
    assert problems(counter) == ["payload: required property 'received_at'"]
    online = copy.deepcopy(V2_CITIZEN)
    del online["payload"]["service_level"]
    assert problems(online) == ["payload: required property 'service_level'"]
    online["payload"]["service_level"] = "level_4"
    assert problems(online)[0].startswith("payload.service_level: enum ")
    del online["payload"]["result_delivery"]
    assert "payload: required property 'result_delivery'" in problems(online)


def test_a_fee_line_links_to_its_payment_reference() -> None:
    fee = V2_CITIZEN["payload"]["fees"][0]
    assert fee["payment_reference"] == "DVCQG-261125-000317"
    doc = copy.deepcopy(V2_CITIZEN)
    doc["payload"]["fees"][0]["payment_reference"] = "x" * 65
    assert problems(doc) == ["payload.fees[0].payment_reference: pattern ^[A-Za-z0-9._-]{1,64}$"]


def test_v2s_new_personal_fields_are_masked_like_the_others() -> None:
    pii = REGISTRY.pii_fields("dossier.submitted", 2)
    assert pii[("payload", "submitter", "id_number")] == "id_number"
    assert pii[("payload", "submitter", "phone")] == "phone"
    assert pii[("payload", "applicant", "representative", "full_name")] == "name"
    assert pii[("payload", "applicant", "representative", "id_number")] == "id_number"
    assert ("payload", "applicant", "representative", "role") not in pii


# --------------------------------------------------------------------------- routing


@pytest.fixture(scope="module")
def pipeline() -> RouterPipeline:
    units = AdminUnits.load()
    config = load_routes(ROOT / "routes.yaml", units=units)
    agencies = AgencyRegistry.load(ROOT / "agencies.yaml", set(units.current_provinces()))
    return RouterPipeline(REGISTRY, RoutingTable(config, units, agencies=agencies), 1 << 20)


@pytest.mark.parametrize(
    ("v1", "v2"),
    [
        ("citizen-hanoi-online.json", "citizen-hanoi-full-online-paid.json"),
        ("organisation-hcmc-direct.json", "organisation-hcmc-counter-no-phone.json"),
        ("citizen-danang-minimal.json", "citizen-danang-landline-submitted-by-relative.json"),
    ],
)
def test_v1_and_v2_of_a_dossier_are_both_accepted_and_routed_alike(
    pipeline: RouterPipeline, v1: str, v2: str
) -> None:
    first = pipeline.decide(orjson.dumps(example(f"dossier.submitted.v1/valid/{v1}")))
    second = pipeline.decide(orjson.dumps(example(f"dossier.submitted.v2/valid/{v2}")))
    assert isinstance(first, Forward) and isinstance(second, Forward), (first, second)
    assert first.targets and (first.targets, first.routes) == (second.targets, second.routes)


def test_the_router_parks_a_v2_dossier_with_an_impossible_id_invalid(
    pipeline: RouterPipeline,
) -> None:
    doc = with_applicant(V2_CITIZEN, id_number="003190012345")
    decision = pipeline.decide(orjson.dumps(doc))
    assert not isinstance(decision, Forward)
    assert decision.reason is Reason.INVALID
    assert decision.detail.startswith("payload.applicant.id_number: citizen_id ")
    assert "003190012345" not in decision.detail
