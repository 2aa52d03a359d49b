"""bus.contract.schemas: loading the contract, precise and PII-free problems, annotations."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bus.contract.rejections import Reason, Rejection
from bus.contract.schemas import (
    PII_KINDS,
    Problem,
    SchemaLoadError,
    SchemaRegistry,
    format_problems,
    properties,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = SCHEMAS / "examples"
REGISTRY = SchemaRegistry.load()


def example(rel: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / rel).read_text(encoding="utf-8"))


SUBMITTED = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
STATUS = example("dossier.status_changed.v1/valid/received.json")
PAYMENT = example("payment.confirmed.v1/valid/success-vcb.json")


def rejection(doc: Any) -> Rejection:
    with pytest.raises(Rejection) as caught:
        REGISTRY.validate(doc)
    return caught.value


# --------------------------------------------------------------------------- loading


def test_load_default_directory_knows_the_three_types() -> None:
    assert REGISTRY.message_types == [
        ("dossier.status_changed", 1),
        ("dossier.submitted", 1),
        ("dossier.submitted", 2),
        ("payment.confirmed", 1),
        ("payment.confirmed", 2),
    ]


def test_load_honours_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_dir = _copy_schemas(tmp_path)
    (copy_dir / "payment.confirmed.v1.json").unlink()
    monkeypatch.setenv("DVCBUS_SCHEMAS", str(copy_dir))
    assert ("payment.confirmed", 1) not in SchemaRegistry.load().message_types


def _copy_schemas(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    target.mkdir()
    for path in SCHEMAS.glob("*.json"):
        shutil.copy(path, target / path.name)
    return target


def _edit(directory: Path, name: str, edit: Any) -> None:
    path = directory / name
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_broken_json_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    directory = _copy_schemas(tmp_path)
    path = directory / "dossier.status_changed.v1.json"
    path.write_text(path.read_text(encoding="utf-8")[:-40], encoding="utf-8")
    with pytest.raises(SchemaLoadError, match=r"dossier\.status_changed\.v1\.json: not valid JSON"):
        SchemaRegistry.load(directory)


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        (
            "payment.confirmed.v1.json",
            lambda d: d["properties"]["amount"].update(type="integr"),
            "not a valid draft-07 schema",
        ),
        (
            "payment.confirmed.v1.json",
            lambda d: d["properties"]["paid_at"].update({"$ref": "https://example.com/x.json"}),
            "no URLs",
        ),
        (
            "payment.confirmed.v1.json",
            lambda d: d["properties"]["paid_at"].update(minLength=1),
            "beside \\$ref",
        ),
        (
            "payment.confirmed.v1.json",
            lambda d: d["properties"]["reference"].update(format="uuid"),
            "'format' is not allowed",
        ),
        (
            "payment.confirmed.v1.json",
            lambda d: d["properties"]["error_code"].update(pattern="^\\d{2}$"),
            "\\\\d",
        ),
        (
            "payment.confirmed.v1.json",
            lambda d: d["properties"]["payer"]["properties"]["name"].update({"x-pii": "secret"}),
            "x-pii 'secret'",
        ),
        (
            "payment.confirmed.v1.json",
            lambda d: d["properties"]["partner_code"].update({"x-route": "agency"}),
            "marks both",
        ),
        (
            "common.v1.json",
            lambda d: d["definitions"]["sha256"].update(pattern="^[0-9a-f]{64}$x"),
            "'\\$' may only end",
        ),
    ],
    ids=[
        "bad-type",
        "remote-ref",
        "ref-sibling",
        "format",
        "backslash-d",
        "pii-kind",
        "duplicate-route",
        "dollar-inside",
    ],
)
def test_schema_house_rules_are_enforced_at_load(
    tmp_path: Path, name: str, edit: Any, message: str
) -> None:
    directory = _copy_schemas(tmp_path)
    _edit(directory, name, edit)
    with pytest.raises(SchemaLoadError, match=message) as caught:
        SchemaRegistry.load(directory)
    assert name in str(caught.value)


def test_missing_envelope_is_refused(tmp_path: Path) -> None:
    directory = _copy_schemas(tmp_path)
    (directory / "envelope.v1.json").unlink()
    with pytest.raises(SchemaLoadError, match=r"envelope\.v1\.json: missing"):
        SchemaRegistry.load(directory)


# --------------------------------------------------------------------------- validate


def test_validate_returns_type_and_version() -> None:
    assert REGISTRY.validate(SUBMITTED) == ("dossier.submitted", 1)
    assert REGISTRY.validate(STATUS) == ("dossier.status_changed", 1)
    assert REGISTRY.validate(PAYMENT) == ("payment.confirmed", 1)


def test_validate_does_not_modify_the_message() -> None:
    doc = copy.deepcopy(SUBMITTED)
    REGISTRY.validate(doc)
    assert doc == SUBMITTED


def test_unknown_version_is_unknown_type_naming_the_known_ones() -> None:
    doc = copy.deepcopy(SUBMITTED)
    doc["version"] = 3
    exc = rejection(doc)
    assert exc.reason is Reason.UNKNOWN_TYPE
    assert exc.detail == (
        "no schema for dossier.submitted v3; known: dossier.status_changed v1, "
        "dossier.submitted v1, dossier.submitted v2, payment.confirmed v1, payment.confirmed v2"
    )
    assert REGISTRY.problems(doc)[0].path == "version"
    doc["type"] = "dossier.archived"
    assert REGISTRY.problems(doc)[0] == Problem(
        "type",
        "unknown_type",
        "one of dossier.status_changed v1, dossier.submitted v1, dossier.submitted v2, "
        "payment.confirmed v1, payment.confirmed v2",
    )


def test_not_an_object_is_invalid_at_the_root() -> None:
    exc = rejection([SUBMITTED])
    assert exc.reason is Reason.INVALID
    assert exc.detail == "<root>: type object"


def test_payload_problem_paths_are_prefixed_and_dotted() -> None:
    doc = copy.deepcopy(SUBMITTED)
    doc["payload"]["documents"][0]["sha256"] = "abc"
    assert str(rejection(doc).detail) == "payload.documents[0].sha256: pattern ^[0-9a-f]{64}$"


def test_problem_texts_per_rule() -> None:
    doc = copy.deepcopy(STATUS)
    del doc["payload"]["dossier_no"]
    doc["payload"]["status"] = 11
    doc["payload"]["sequence"] = "1"
    doc["payload"]["handler"]["nickname"] = "Bình"
    doc["payload"]["agency"] = "H26"
    problems = [str(p) for p in REGISTRY.problems(doc)]
    assert problems == [
        "payload: required property 'dossier_no'",
        "payload.agency: pattern ^[0-9]{3}\\.[0-9]{2}\\.[0-9]{2}\\.[GH][0-9]{2}$",
        "payload.handler: additionalProperties property 'nickname' not allowed",
        "payload.sequence: type integer",
        "payload.status: maximum <= 10",
    ]
    pay = copy.deepcopy(PAYMENT)
    pay["payload"]["currency"] = "USD"
    pay["payload"]["result"] = "ok"
    pay["payload"]["amount"] = 0
    assert [str(p) for p in REGISTRY.problems(pay)] == [
        "payload.amount: minimum >= 1",
        'payload.currency: const "VND"',
        'payload.result: enum one of "success", "pending", "failed"',
    ]


def test_detail_keeps_the_first_five_problems() -> None:
    doc = copy.deepcopy(PAYMENT)
    for key in (
        "reference",
        "dossier_no",
        "agency",
        "transaction_id",
        "partner_code",
        "bank_code",
        "amount",
    ):
        del doc["payload"][key]
    detail = rejection(doc).detail
    assert detail.count("required property") == 5
    assert detail.endswith("; and 2 more")


def test_problems_are_ordered_deterministically() -> None:
    doc = copy.deepcopy(SUBMITTED)
    doc["payload"]["fees"][0]["amount"] = -1
    doc["payload"]["applicant"]["phone"] = "1"
    doc["payload"]["documents"][0]["size_bytes"] = 0
    first = REGISTRY.problems(doc)
    assert [p.path for p in first] == [
        "payload.applicant.phone",
        "payload.documents[0].size_bytes",
        "payload.fees[0].amount",
    ]
    assert REGISTRY.problems(copy.deepcopy(doc)) == first


# ------------------------------------------------------------ no personal data in problems


@pytest.mark.parametrize(
    ("field", "value", "digits"),
    [
        ("id_number", "0011900123456", "0011900123456"),
        ("phone", "0912.345.678", "345"),
        ("phone", "０９８７６５４３２１", "８７６５４３２１"),  # full-width digits are refused
        ("email", "nguyen.van.an@@example.com", "nguyen.van.an"),
    ],
)
def test_rejection_never_quotes_the_offending_value(field: str, value: str, digits: str) -> None:
    doc = copy.deepcopy(SUBMITTED)
    doc["payload"]["applicant"][field] = value
    exc = rejection(doc)
    assert exc.reason is Reason.INVALID
    assert f"payload.applicant.{field}: pattern" in exc.detail
    for text in (exc.detail, str(exc), repr(exc), *map(str, REGISTRY.problems(doc))):
        assert digits not in text
        assert value not in text
    assert exc.__cause__ is None and exc.__context__ is None  # no chained validator message


def test_extra_property_that_looks_like_data_is_not_named() -> None:
    doc = copy.deepcopy(SUBMITTED)
    doc["payload"]["applicant"]["001190012345"] = "Nguyễn Văn An"
    detail = rejection(doc).detail
    assert "001190012345" not in detail and "Nguyễn" not in detail
    assert "<unnamed, 12 characters>" in detail


def test_enum_and_type_problems_do_not_quote_values() -> None:
    doc = copy.deepcopy(SUBMITTED)
    doc["payload"]["applicant"]["type"] = "Nguyễn Văn An 0912345678"
    doc["payload"]["summary"] = 123456789012
    detail = rejection(doc).detail
    assert "0912345678" not in detail and "123456789012" not in detail


def test_problem_str_format() -> None:
    assert str(Problem("", "required", "property 'id'")) == "<root>: required property 'id'"
    assert str(Problem("payload.status", "maximum", "<= 10")) == "payload.status: maximum <= 10"


# --------------------------------------------------------------------------- route attributes


def test_route_attributes_of_a_submitted_dossier() -> None:
    assert REGISTRY.route_attributes(SUBMITTED) == {
        "agency": "000.04.01.H26",
        "procedure": "2.000635",
        "province": "01",
        "commune": "00004",
    }


def test_route_attributes_leave_out_absent_optional_fields() -> None:
    assert REGISTRY.route_attributes(STATUS) == {"agency": "000.04.01.H26", "procedure": "2.000635"}
    minimal = example("payment.confirmed.v1/valid/pending-napas-minimal.json")
    assert REGISTRY.route_attributes(minimal) == {"agency": "000.10.05.H17"}
    assert REGISTRY.route_attributes(PAYMENT) == {
        "agency": "000.04.01.H26",
        "procedure": "2.000635",
    }


def test_set_route_attribute_translates_pre_reform_codes_in_place() -> None:
    doc = example("dossier.submitted.v1/valid/pre-reform-unit-codes.json")
    assert REGISTRY.route_attributes(doc)["commune"] == "08710"  # Phường Liên Bảo, Vĩnh Phúc
    REGISTRY.set_route_attribute(doc, "commune", "08716")  # → Phường Vĩnh Phúc, Phú Thọ
    REGISTRY.set_route_attribute(doc, "province", "25")
    assert doc["payload"]["applicant"]["address"]["commune_code"] == "08716"
    assert doc["payload"]["applicant"]["address"]["province_code"] == "25"
    assert REGISTRY.validate(doc) == ("dossier.submitted", 1)


def test_set_route_attribute_for_status_and_payment() -> None:
    status = copy.deepcopy(STATUS)
    REGISTRY.set_route_attribute(status, "agency", "000.00.00.H17")
    assert status["payload"]["agency"] == "000.00.00.H17"
    payment = copy.deepcopy(PAYMENT)
    REGISTRY.set_route_attribute(payment, "procedure", "1.001612")
    assert REGISTRY.route_attributes(payment)["procedure"] == "1.001612"


def test_set_route_attribute_refuses_what_is_not_there() -> None:
    with pytest.raises(KeyError, match="no routing attribute 'commune'"):
        REGISTRY.set_route_attribute(copy.deepcopy(STATUS), "commune", "00004")
    minimal = example("payment.confirmed.v1/valid/pending-napas-minimal.json")
    with pytest.raises(KeyError, match="carries no 'procedure'"):
        REGISTRY.set_route_attribute(minimal, "procedure", "1.001612")


# --------------------------------------------------------------------------- annotations


def test_pii_fields_of_a_submitted_dossier() -> None:
    pii = REGISTRY.pii_fields("dossier.submitted", 1)
    assert pii[("payload", "applicant", "id_number")] == "id_number"
    assert pii[("payload", "applicant", "phone")] == "phone"
    assert pii[("payload", "applicant", "full_name")] == "name"
    assert pii[("payload", "applicant", "email")] == "email"
    assert pii[("payload", "applicant", "address", "street")] == "address"
    assert pii[("payload", "documents", "*", "url")] == "free_text"
    assert set(pii.values()) <= PII_KINDS
    assert REGISTRY.pii_fields("payment.confirmed", 1)[("payload", "payer", "name")] == "name"
    assert REGISTRY.pii_fields("dossier.status_changed", 1)[("payload", "note")] == "free_text"


def test_pii_fields_is_a_copy() -> None:
    REGISTRY.pii_fields("dossier.submitted", 1).clear()
    assert REGISTRY.pii_fields("dossier.submitted", 1)


def test_vi_names() -> None:
    vi = REGISTRY.vi_names("dossier.status_changed", 1)
    assert vi[("payload", "status")] == "TrangThaiHoSo"
    assert vi[("payload", "dossier_no")] == "MaHoSo"
    assert vi[("id",)] == "MaThongDiep"
    sub = REGISTRY.vi_names("dossier.submitted", 1)
    assert sub[("payload", "applicant", "address", "commune_code")] == "MaXa"
    assert sub[("payload", "documents", "*", "sha256")] == "MaBam"
    with pytest.raises(KeyError, match=r"no schema for dossier\.archived v1"):
        REGISTRY.vi_names("dossier.archived", 1)


def _all_schemas() -> list[tuple[str, dict[str, Any]]]:
    out = [("envelope", REGISTRY._envelope.schema)]
    out += [(f"{t}.v{v}", REGISTRY._types[(t, v)].compiled.schema) for t, v in REGISTRY._types]
    return out


@pytest.mark.parametrize(("name", "schema"), _all_schemas(), ids=[n for n, _ in _all_schemas()])
def test_every_property_is_documented_for_agency_teams(name: str, schema: dict[str, Any]) -> None:
    undocumented = [
        ".".join(path)
        for path, prop in properties(schema)
        if not prop.get("description") or not prop.get("x-vi-name")
    ]
    assert not undocumented, f"{name}: properties without description or x-vi-name: {undocumented}"


def test_every_pii_and_route_field_is_a_declared_property() -> None:
    for type_, version in REGISTRY.message_types:
        declared = set(REGISTRY.vi_names(type_, version))
        assert set(REGISTRY.pii_fields(type_, version)) <= declared
        routes = dict(REGISTRY._types[(type_, version)].routes)
        assert set(routes.values()) <= declared
        assert "agency" in routes, f"{type_} v{version} has no agency routing attribute"


def test_readme_documents_every_field_name() -> None:
    """The page agency teams read must not fall behind the schemas."""
    readme = (SCHEMAS / "README.md").read_text(encoding="utf-8")
    missing = sorted(
        {
            name
            for type_, version in REGISTRY.message_types
            for name in REGISTRY.vi_names(type_, version).values()
            if name not in readme
        }
    )
    assert not missing, f"x-vi-names not in schemas/README.md: {missing}"


def test_problems_are_written_as_path_rule_expected_then_a_count_of_the_rest() -> None:
    problems = [
        Problem("payload.applicant.id_number", "pattern", "^[0-9]{12}$"),
        Problem("", "required", "property 'id'"),
        Problem("payload.fees[0].amount", "minimum", ">= 0"),
    ]
    assert format_problems(problems, limit=2) == (
        "payload.applicant.id_number: pattern ^[0-9]{12}$; <root>: required property 'id'"
        "; and 1 more"
    )
    assert format_problems(problems[:1]) == "payload.applicant.id_number: pattern ^[0-9]{12}$"
