"""The generic SOAP kind without a network: requests built from the WSDL, answers classified."""

from pathlib import Path

import orjson
import pytest
from lxml import etree
from multidict import CIMultiDict, CIMultiDictProxy

from adapters import safexml
from adapters.base import Delivered, PermanentFailure, TargetSpec, TransientFailure
from adapters.http import Answer
from adapters.kinds.onestop import OneStopSoapAdapter
from adapters.kinds.soap import BUS_HEADERS, SOAP11, SOAP12, SoapAdapter, find_wsdl
from adapters.options import AdapterConfigError
from adapters.testing import BILLION_LAUGHS, EXTERNAL_ENTITY, soap_fault
from adapters.wsse import WSSE, WSU, check_username_token, password_digest, security_header
from bus.contract.envelope import Message

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "schemas" / "examples"


def message(name: str) -> Message:
    body = (EXAMPLES / name).read_bytes()
    return Message.from_doc(orjson.loads(body), body)


def spec(options: dict | None = None, adapter: str = "onestop-soap", **creds: str) -> TargetSpec:
    return TargetSpec(
        name="danang",
        agency="000.00.00.H48",
        adapter=adapter,
        endpoint="http://127.0.0.1:9/motcua/services/LienThong",
        connect_timeout=1.0,
        read_timeout=2.0,
        concurrency=2,
        options=options or {},
        credentials=creds or {"username": "motcua-dn", "password": "s3cret-pw"},
    )


def answer(status: int, body: bytes) -> Answer:
    return Answer(status, CIMultiDictProxy(CIMultiDict()), body)


DOSSIER = message("dossier.submitted.v1/valid/citizen-hanoi-online.json")


def test_a_dossier_becomes_the_wsdl_operation_with_security_and_bus_headers() -> None:
    adapter = OneStopSoapAdapter(spec())
    call, body, headers = adapter.build(DOSSIER)
    assert call.operation == "TiepNhanHoSo"
    assert headers["SOAPAction"] == '"http://motcua.gov.vn/lienthong/v1/TiepNhanHoSo"'
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    assert headers["Idempotency-Key"] == DOSSIER.id
    assert headers["traceparent"] == DOSSIER.traceparent
    root = safexml.parse(body)
    header = root.find(f"{{{SOAP11}}}Header")
    assert header.findtext(f"{{{BUS_HEADERS}}}IdempotencyKey") == DOSSIER.id
    assert header.findtext(f"{{{BUS_HEADERS}}}traceparent") == DOSSIER.traceparent
    security = header.find(f"{{{WSSE}}}Security")
    assert security.get(f"{{{SOAP11}}}mustUnderstand") == "1"
    assert check_username_token(security, "motcua-dn", "s3cret-pw")
    assert not check_username_token(security, "motcua-dn", "wrong")
    assert b"s3cret-pw" not in body  # a digest, never the password
    assert security.find(f"{{{WSU}}}Timestamp/{{{WSU}}}Expires") is not None
    hoso = safexml.find_local(root, "HoSo")
    assert safexml.text_of(hoso, "MaHoSo") == "000.04.01.H26-261125-0031"
    assert safexml.text_of(hoso, "NgayNopHoSo") == "20261125091437"  # Vietnam time
    assert safexml.text_of(hoso, "MaXa") == "00004"
    assert len([e for e in hoso.iter() if safexml.local_name(e) == "GiayTo"]) == 1


def test_each_message_gets_a_fresh_nonce_and_digest() -> None:
    adapter = OneStopSoapAdapter(spec())
    digests = {
        safexml.text_of(safexml.parse(adapter.build(DOSSIER)[1]), "Password") for _ in range(3)
    }
    assert len(digests) == 3


def test_password_digest_follows_the_username_token_profile() -> None:
    # Base64(SHA-1(nonce + created + password)): a vector computed by hand with hashlib.
    import base64
    import hashlib

    nonce, created = b"0123456789abcdef", "2026-11-25T02:00:00.000Z"
    expected = base64.b64encode(hashlib.sha1(nonce + created.encode() + b"pw").digest()).decode()
    assert password_digest(nonce, created, "pw") == expected


def test_password_text_when_the_agency_wants_it() -> None:
    header = security_header(SOAP11, username="u", password="pw", digest=False, timestamp=False)
    assert header.find(f"{{{WSSE}}}UsernameToken/{{{WSSE}}}Password").text == "pw"
    assert header.find(f"{{{WSU}}}Timestamp") is None
    assert check_username_token(header, "u", "pw")


def test_the_soap_12_binding_sends_the_action_in_the_content_type() -> None:
    adapter = OneStopSoapAdapter(spec({"port": "MotCuaSoap12"}))
    _call, body, headers = adapter.build(message("payment.confirmed.v1/valid/success-vcb.json"))
    assert headers["Content-Type"] == (
        'application/soap+xml; charset=utf-8; action="http://motcua.gov.vn/lienthong/v1/'
        'BaoCaoThanhToan"'
    )
    assert "SOAPAction" not in headers
    assert etree.QName(safexml.parse(body)).namespace == SOAP12


@pytest.mark.parametrize("soap12", [False, True])
@pytest.mark.parametrize(
    ("code", "kind"), [("Server", TransientFailure), ("Client", PermanentFailure)]
)
def test_soap_faults_map_to_outcomes(soap12: bool, code: str, kind: type) -> None:
    adapter = OneStopSoapAdapter(spec({"port": "MotCuaSoap12"} if soap12 else {}))
    status, body = soap_fault(code, "Hệ thống bận", soap12=soap12)
    outcome = adapter.interpret(answer(status, body), "TiepNhanHoSo")
    assert isinstance(outcome, kind)
    assert "Hệ thống bận" in outcome.reason


@pytest.mark.parametrize(
    ("code", "kind", "detail"),
    [
        ("0", Delivered, None),
        ("2", Delivered, None),  # already recorded: success for an idempotent sender
        ("9", TransientFailure, "TiepNhanHoSo answered MaLoi 9: 'Thiếu SĐT 09******21'"),
        ("5", PermanentFailure, "TiepNhanHoSo answered MaLoi 5: 'Thiếu SĐT 09******21'"),
    ],
)
def test_the_result_code_of_the_answer_decides(code: str, kind: type, detail: str | None) -> None:
    adapter = OneStopSoapAdapter(spec())
    body = (
        f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><TiepNhanHoSoResponse xmlns="urn:x"><KetQua>'
        f"<MaLoi>{code}</MaLoi><MoTaLoi>Thiếu SĐT 0987654321</MoTaLoi>"
        "<SoBienNhan>BN-1</SoBienNhan></KetQua></TiepNhanHoSoResponse></s:Body></s:Envelope>"
    ).encode()
    outcome = adapter.interpret(answer(200, body), "TiepNhanHoSo")
    assert isinstance(outcome, kind)
    if kind is Delivered:
        assert outcome.reference == "BN-1"
    else:
        assert outcome.reason == detail


@pytest.mark.parametrize(
    ("status", "body", "kind", "fragment"),
    [
        (200, BILLION_LAUGHS, PermanentFailure, "DTD or entities"),
        (200, EXTERNAL_ENTITY, PermanentFailure, "DTD or entities"),
        (500, BILLION_LAUGHS, PermanentFailure, "DTD or entities"),
        (200, b"<html><body>OK</body></html>", PermanentFailure, "not a SOAP envelope"),
        (200, b"not xml at all", PermanentFailure, "not XML"),
        (503, b"<html><body><h1>503</h1><br></body></html>", TransientFailure, "HTTP 503"),
        (502, b"Bad gateway", TransientFailure, "HTTP 502"),
        (404, b"", PermanentFailure, "HTTP 404"),
        (200, f'<s:Envelope xmlns:s="{SOAP11}"><s:Body/></s:Envelope>'.encode(),
         PermanentFailure, "empty SOAP body"),
    ],
)  # fmt: skip
def test_answers_that_are_not_a_result_are_classified(
    status: int, body: bytes, kind: type, fragment: str
) -> None:
    outcome = OneStopSoapAdapter(spec()).interpret(answer(status, body), "TiepNhanHoSo")
    assert isinstance(outcome, kind)
    assert fragment in outcome.reason


def test_malformed_xml_is_permanent_quoting_its_first_bytes_masked() -> None:
    body = "<KetQua><MaLoi>5</MaLoi><MoTaLoi>SĐT 0987654321, CCCD 001190012345</KetQua>"
    outcome = OneStopSoapAdapter(spec()).interpret(answer(200, body.encode()), "TiepNhanHoSo")
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason.startswith("unreadable answer (HTTP 200, not well-formed XML: ")
    assert outcome.reason.endswith(
        f" {len(body.encode())} bytes): '<KetQua><MaLoi>5</MaLoi><MoTaLoi>SĐT 09******21, "
        "CCCD 001*******345</KetQua>'"
    )
    assert "0987654321" not in outcome.reason and "001190012345" not in outcome.reason


def test_a_hostile_document_is_refused_without_being_quoted() -> None:
    outcome = OneStopSoapAdapter(spec()).interpret(answer(200, EXTERNAL_ENTITY), "TiepNhanHoSo")
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason == (
        "XML answer refused (HTTP 200): XML answer declares a DTD or entities "
        "(refused: never expanded)"
    )


def test_a_redirect_is_permanent_and_names_where_it_pointed() -> None:
    moved = Answer(
        302,
        CIMultiDictProxy(CIMultiDict({"Location": "https://motcua.danang.gov.vn/LienThong2"})),
        b"<html><body>Moved</body></html>",
    )
    outcome = OneStopSoapAdapter(spec()).interpret(moved, "TiepNhanHoSo")
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason == (
        "HTTP 302: redirect to 'https://motcua.danang.gov.vn/LienThong2' not followed "
        "(check the target's endpoint)"
    )


def test_a_message_that_does_not_fit_the_operation_is_permanent() -> None:
    doc = orjson.loads(DOSSIER.body)
    del doc["payload"]["procedure_code"]
    broken = Message.from_doc(doc, orjson.dumps(doc))
    import asyncio

    outcome = asyncio.run(OneStopSoapAdapter(spec()).deliver(broken))
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason.startswith("message does not fit TiepNhanHoSo: Missing element MaTTHC")


def test_a_type_without_an_operation_is_permanent() -> None:
    import asyncio

    status = message("dossier.status_changed.v1/valid/received.json")
    outcome = asyncio.run(OneStopSoapAdapter(spec()).deliver(status))
    assert isinstance(outcome, PermanentFailure)
    assert "no SOAP operation is configured for dossier.status_changed" in outcome.reason


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"operations": {"dossier.submitted": {"operation": "NopHoSo"}}},
         "'NopHoSo' is not an operation of the WSDL's port"),
        ({"port": "MotCuaRest"}, "option 'port': 'MotCuaRest' is not a port of MotCuaService"),
        ({"wsdl": "no-such.wsdl"}, "option 'wsdl': no-such.wsdl is neither a file"),
        ({"wsse": {"digest": True}}, "option 'wsse.digest': unknown option"),
        ({"operations": {"dossier.submitted": {"operation": "TiepNhanHoSo",
                                               "parameters": {"HoSo": {"from": 1, "value": 2}}}}},
         "give exactly one of"),
    ],
)  # fmt: skip
def test_configuration_errors_name_the_option(options: dict, message: str) -> None:
    with pytest.raises(AdapterConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OneStopSoapAdapter(spec(options))


def test_missing_credentials_are_named_never_shown() -> None:
    with pytest.raises(AdapterConfigError, match="wsse needs credentials username, password"):
        OneStopSoapAdapter(spec(token="abc"))


def test_a_wsdl_importing_a_remote_schema_is_refused_without_touching_the_network(
    tmp_path: Path,
) -> None:
    wsdl = (ROOT / "config/wsdl/motcua-lienthong.wsdl").read_text(encoding="utf-8")
    wsdl = wsdl.replace(
        'elementFormDefault="qualified">',
        'elementFormDefault="qualified"><xs:import namespace="urn:evil" '
        'schemaLocation="http://169.254.169.254/evil.xsd"/>',
        1,
    )
    path = tmp_path / "remote-import.wsdl"
    path.write_text(wsdl, encoding="utf-8")
    with pytest.raises(AdapterConfigError, match="remote documents are never fetched"):
        SoapAdapter(spec({"wsdl": str(path), "operations": {}}, adapter="soap"))


@pytest.mark.parametrize("name", ["motcua-lienthong.wsdl", "config/wsdl/motcua-lienthong.wsdl"])
def test_the_shipped_wsdl_is_found_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)  # as a service started elsewhere than the checkout
    assert find_wsdl(name) == ROOT / "config" / "wsdl" / "motcua-lienthong.wsdl"
    OneStopSoapAdapter(spec())  # the reference adapter builds from it


def test_a_deployments_own_wsdl_comes_before_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "config" / "wsdl" / "motcua-lienthong.wsdl"
    own.parent.mkdir(parents=True)
    own.write_bytes((ROOT / "config/wsdl/motcua-lienthong.wsdl").read_bytes())
    monkeypatch.chdir(tmp_path)
    assert find_wsdl("motcua-lienthong.wsdl") == own


def test_the_generic_kind_needs_its_operations_declared() -> None:
    with pytest.raises(AdapterConfigError, match="option 'operations': Field required"):
        SoapAdapter(spec({"wsdl": "motcua-lienthong.wsdl"}, adapter="soap"))
