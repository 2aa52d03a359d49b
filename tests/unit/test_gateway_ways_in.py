"""The gateway's SOAP and payment-callback conversions without a broker: what a SOAP status
update and the platform's native confirmation become, and what a refusal looks like."""

from __future__ import annotations

import orjson
import pytest
import zeep
from lxml import etree

from adapters.kinds.payment_signature import SIGNED_FIELDS, platform_checksum
from adapters.soapns import SOAP11, SOAP12
from bus.contract.rejections import Reason, Rejection
from bus.contract.schemas import SchemaRegistry
from bus.ingress.payment_callback import NATIVE_OF_SIGNED, envelope_of, message_id
from bus.ingress.refusals import Refusal, Refused
from bus.ingress.soap_answers import fault
from bus.ingress.soap_endpoint import WSDL_FILE
from bus.ingress.soap_status import NS, check_against_xsd, load_xsd, vietnam_time
from bus.ingress.soap_status import envelope_of as soap_envelope_of
from bus.routes.model import Partner, Payments
from bus.routing.payment_checksum import PaymentChecksum

REGISTRY = SchemaRegistry.load()
XSD = load_xsd(WSDL_FILE)
SECRET = "partner-secret"
SOURCE = "000.00.00.G22/payment"


def test_the_shipped_wsdl_is_read_by_zeep_and_its_xsd_compiles() -> None:
    client = zeep.Client(str(WSDL_FILE))
    ports = client.wsdl.services["DvcBusIngress"].ports
    assert set(ports) == {"DvcBusIngressSoap", "DvcBusIngressSoap12"}
    assert XSD is not None


# --- SOAP ------------------------------------------------------------------------------------


def _operation(**values: str) -> etree._Element:
    fields = {
        "MaThongDiep": "01a2108b-d810-7b03-b730-dc76ad020dc5",
        "HeThongGui": "000.00.00.H26",
        "ThoiDiemPhatSinh": "20261125093210",
        **values,
    }
    t = f"{{{NS}}}"
    op = etree.Element(f"{t}DongBoTrangThaiHoSo")
    for name in ("MaThongDiep", "HeThongGui", "ThoiDiemPhatSinh"):
        etree.SubElement(op, f"{t}{name}").text = fields[name]
    status = etree.SubElement(op, f"{t}TrangThai")
    for name, text in (
        ("MaHoSo", "000.04.01.H26-261125-0031"),
        ("MaDonVi", "000.04.01.H26"),
        ("TrangThaiHoSo", "9"),
        ("SoThuTu", "7"),
        ("ThoiDiemXuLy", fields.get("ThoiDiemXuLy", "20261201080000")),
    ):
        etree.SubElement(status, f"{t}{name}").text = text
    handler = etree.SubElement(status, f"{t}ThongTinXuLy")
    etree.SubElement(handler, f"{t}NguoiXuLy").text = "Trần Văn Bình"
    etree.SubElement(status, f"{t}NoiDungXuLy").text = "Đã xử lý xong"
    return op


def test_a_soap_status_update_becomes_a_valid_canonical_envelope_the_same_every_time() -> None:
    op = _operation()
    check_against_xsd(XSD, op)
    body = soap_envelope_of(op, "00-628b49d96dcde97a430dd4f597705899-e09a968f793491e4-01")
    assert body == soap_envelope_of(op, "00-628b49d96dcde97a430dd4f597705899-e09a968f793491e4-01")
    doc = orjson.loads(body)
    assert REGISTRY.validate(doc) == ("dossier.status_changed", 1)
    assert doc["occurred_at"] == "2026-11-25T09:32:10+07:00"
    assert doc["correlation_id"] == doc["payload"]["dossier_no"]
    assert doc["payload"]["status_at"] == "2026-12-01T08:00:00+07:00"
    assert (doc["payload"]["status"], doc["payload"]["sequence"]) == (9, 7)
    assert doc["payload"]["note"] == "Đã xử lý xong"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20261125093210", "2026-11-25T09:32:10+07:00"),
        ("20261332093210", None),
        ("20260229000000", None),  # 2026 is no leap year
        ("2026112509321", None),
    ],
)
def test_a_platform_time_is_read_as_vietnam_time_or_refused(
    text: str, expected: str | None
) -> None:
    assert vietnam_time(text) == expected


def test_an_impossible_time_is_refused_naming_the_element() -> None:
    with pytest.raises(Refused) as caught:
        soap_envelope_of(_operation(ThoiDiemXuLy="20261301000000"))
    assert caught.value.refusal is Refusal.INVALID
    assert caught.value.errors[0]["element"] == "TrangThai/ThoiDiemXuLy"


def test_an_xsd_problem_never_repeats_the_value() -> None:
    op = _operation(HeThongGui="x")
    op.find(f".//{{{NS}}}SoThuTu").text = "secret-value-42"
    with pytest.raises(Refused) as caught:
        check_against_xsd(XSD, op)
    (error,) = caught.value.errors
    assert error["element"] == "DongBoTrangThaiHoSo/TrangThai/SoThuTu"
    assert "secret-value-42" not in str(caught.value.errors)


@pytest.mark.parametrize(
    ("refusal", "version", "status", "code"),
    [
        (Refusal.INVALID, SOAP11, 500, "soap:Client"),
        (Refusal.BROKER_UNAVAILABLE, SOAP11, 500, "soap:Server"),
        (Refusal.INVALID, SOAP12, 400, "soap:Sender"),
        (Refusal.RATE_LIMITED, SOAP12, 500, "soap:Receiver"),
    ],
)
def test_a_fault_says_who_must_act_and_its_detail_is_the_wsdls_tuchoi(
    refusal: Refusal, version: str, status: int, code: str
) -> None:
    refused = Refused(
        refusal,
        "why",
        [{"path": "payload.agency", "element": "TrangThai/MaDonVi", "rule": "pattern"}],
        retry_after=2.5,
    )
    answer = fault(version, refused)
    assert answer.status == status
    assert answer.headers["Retry-After"] == "3"
    root = etree.fromstring(answer.body)
    assert code in answer.body.decode()
    (detail,) = root.iter(f"{{{NS}}}TuChoi")
    assert XSD.validate(detail), XSD.error_log
    assert detail.findtext(f"{{{NS}}}LyDo") == refusal.value


# --- the payment platform's callback ---------------------------------------------------------


def _native(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "messageType": "PAYMENT_RESULT",
        "errorCode": "00",
        "partnerCode": "VCB01",
        "referenceId": "DVCQG-20261125-000431",
        "amount": 8000,
        "currency": "VND",
        "transactionId": "FT26329812345678",
        "bankCode": "VCB",
        "transactionTime": "20261125092017",
        "dossierNo": "000.04.01.H26-261125-0031",
        "agencyCode": "000.04.01.H26",
        "result": 1,
        **changes,
    }
    signed = {
        key: "" if doc.get(name) is None else str(doc[name])
        for key, name in NATIVE_OF_SIGNED.items()
    }
    doc["checksum"] = platform_checksum(signed, SECRET)
    return doc


def _checker() -> PaymentChecksum:
    config = Payments(partners={"VCB01": Partner(secrets=["env:P"])})
    return PaymentChecksum.from_config(config, lambda _ref: SECRET)


def test_the_callback_keeps_the_signed_strings_verbatim_and_the_router_verifies_them() -> None:
    body, id_ = envelope_of(_native(), SOURCE)
    doc = orjson.loads(body)
    assert REGISTRY.validate(doc) == ("payment.confirmed", 2)
    signed = doc["payload"]["signed"]
    assert list(signed) == list(SIGNED_FIELDS)
    assert signed["amount"] == "8000" and doc["payload"]["amount"] == 8000
    assert signed["transaction_time"] == "20261125092017"
    assert signed["description"] == "" and "description" not in doc["payload"]
    assert doc["payload"]["paid_at"] == doc["occurred_at"] == "2026-11-25T09:20:17+07:00"
    assert (doc["id"], doc["source"]) == (id_, SOURCE)
    _checker().check(doc, 2)  # raises on a mismatch


def test_a_confirmation_altered_after_signing_is_still_built_and_the_router_refuses_it() -> None:
    native = _native(errorCode="24", result=4)
    native.update(errorCode="00", result=1)  # the checksum left as signed
    body, _ = envelope_of(native, SOURCE)
    with pytest.raises(Rejection) as caught:
        _checker().check(orjson.loads(body), 2)
    assert caught.value.reason is Reason.CHECKSUM_MISMATCH


def test_the_same_confirmation_has_the_same_id_and_another_one_another() -> None:
    first, again = envelope_of(_native(), SOURCE), envelope_of(_native(), SOURCE)
    assert first == again
    pending = envelope_of(_native(errorCode="09", result=3), SOURCE)
    assert pending[1] != first[1]
    doc = orjson.loads(first[0])
    forged = message_id(doc["payload"]["signed"], "success", "0" * 64)
    assert forged != first[1]
    assert first[1][14] == "7"  # a UUIDv7 shape: the envelope schema takes it


@pytest.mark.parametrize(
    ("change", "field"),
    [({"amount": 8000.0}, "amount"), ({"result": "2"}, "result"), ({"dossierNo": 5}, "dossierNo")],
)
def test_a_callback_field_of_the_wrong_kind_is_refused_by_its_name(
    change: dict[str, object], field: str
) -> None:
    with pytest.raises(Refused) as caught:
        envelope_of({**_native(), **change}, SOURCE)
    assert caught.value.refusal is Refusal.INVALID
    assert field in {e["field"] for e in caught.value.errors}
