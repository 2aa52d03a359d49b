"""The gateway's SOAP way in as a SOAP-era one-stop system meets it: a real `dvcbus run
gateway` process, the real broker, a SQLite store; its WSDL read by zeep, a request built by
zeep from it, and every refusal answered with a SOAP fault carrying the REST reason."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest
import zeep
from lxml import etree
from zeep.wsse.username import UsernameToken

from adapters.soapns import BUS_HEADERS, SOAP11, SOAP12, WSSE
from bus.broker.topology import Names
from bus.contract.ids import uuid7
from bus.ingress.soap_status import NS
from tests.integration.conftest import BusUnderTest, bus_under_test
from tests.integration.harness import (
    blocking_channel,
    catch_all_senders,
    queue_depth,
    wait_until,
)
from tests.integration.store_fixtures import sqlite_url
from tests.integration.test_gateway import (
    MAX_BODY,
    GatewayUnderTest,
    _declare_topology,
    _drain,
    _get_one,
    _hash,
    ingress_unbound,
    start_gateway,
)

pytestmark = pytest.mark.integration

TOKENS = {"hanoi": "hanoi-soap-token", "hcmc": "hcmc-soap-token", "portal": "portal-soap-token"}
SENDERS = f"""\
  hanoi:
    agencies: [000.00.00.H26]
    sources: [000.00.00.H26, 000.00.00.H26/*]
    types: [dossier.status_changed]
    auth: {{ bearer: [{_hash(TOKENS["hanoi"])}] }}
  hcmc:
    agencies: [000.00.00.H29]
    sources: [000.00.00.H29]
    types: [dossier.status_changed]
    auth: {{ bearer: [{_hash(TOKENS["hcmc"])}] }}
    rate_limit: 1/m
  portal:
    agencies: [000.00.00.G22]
    sources: [000.00.00.G22/portal]
    types: [dossier.submitted]
    auth: {{ bearer: [{_hash(TOKENS["portal"])}] }}
"""
FIELDS = {
    "MaHoSo": "000.04.01.H26-261125-0031",
    "MaDonVi": "000.04.01.H26",
    "MaTTHC": "2.000635",
    "TrangThaiHoSo": "2",
    "TrangThaiTruoc": "1",
    "SoThuTu": "1",
    "ThoiDiemXuLy": "20261125093204",
}


def senders_text(names: Names) -> str:
    return catch_all_senders(names) + SENDERS


def status_request(
    message_id: str | None = None,
    *,
    version: str = SOAP11,
    username: str | None = "hanoi",
    password: str | None = TOKENS["hanoi"],
    password_type: str | None = None,
    source: str = "000.00.00.H26",
    key: str | None = None,
    **fields: str | None,
) -> bytes:
    """A DongBoTrangThaiHoSo request as a one-stop system writes it (SOAP 1.1 or 1.2)."""
    values = {**FIELDS, **fields}
    header = ""
    if username is not None:
        kind = f' Type="{password_type}"' if password_type else ""
        header += (
            f"<wsse:Security><wsse:UsernameToken><wsse:Username>{username}</wsse:Username>"
            f"<wsse:Password{kind}>{password}</wsse:Password></wsse:UsernameToken>"
            "</wsse:Security>"
        )
    if key is not None:
        header += f"<bus:IdempotencyKey>{key}</bus:IdempotencyKey>"
    inner = "".join(
        f"<t:{name}>{values[name]}</t:{name}>"
        for name in ("MaHoSo", "MaDonVi", "MaTTHC", "TrangThaiHoSo", "TrangThaiTruoc")
        if values[name] is not None
    )
    inner += f"<t:SoThuTu>{values['SoThuTu']}</t:SoThuTu>"
    inner += f"<t:ThoiDiemXuLy>{values['ThoiDiemXuLy']}</t:ThoiDiemXuLy>"
    inner += (
        "<t:ThongTinXuLy><t:NguoiXuLy>Trần Văn Bình</t:NguoiXuLy>"
        "<t:DonViXuLy>Bộ phận Một cửa</t:DonViXuLy></t:ThongTinXuLy>"
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{version}" xmlns:wsse="{WSSE}" xmlns:bus="{BUS_HEADERS}"'
        f' xmlns:t="{NS}"><soap:Header>{header}</soap:Header><soap:Body>'
        f"<t:DongBoTrangThaiHoSo><t:MaThongDiep>{message_id or uuid7()}</t:MaThongDiep>"
        f"<t:HeThongGui>{source}</t:HeThongGui>"
        "<t:ThoiDiemPhatSinh>20261125093210</t:ThoiDiemPhatSinh>"
        f"<t:TrangThai>{inner}</t:TrangThai></t:DongBoTrangThaiHoSo>"
        "</soap:Body></soap:Envelope>"
    ).encode()


@dataclass
class Fault:
    http: int
    headers: dict[str, str]
    code: str  # soap:Client / soap:Server (1.1), soap:Sender / soap:Receiver (1.2)
    reason: str  # TuChoi/LyDo
    status: int  # TuChoi/MaHttp
    detail: str
    errors: list[dict[str, str]]
    raw: bytes


def soap_post(
    gw: GatewayUnderTest, body: bytes, version: str = SOAP11, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    content_type = (
        "text/xml; charset=utf-8" if version == SOAP11 else "application/soap+xml; charset=utf-8"
    )
    try:
        conn.request(
            "POST", "/v1/soap", body=body, headers={"Content-Type": content_type, **(headers or {})}
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def fault_of(status: int, headers: dict[str, str], raw: bytes) -> Fault:
    root = etree.fromstring(raw)
    version = root.tag[1:].split("}")[0]
    t = f"{{{NS}}}"
    why = root.find(f".//{t}TuChoi")
    assert why is not None, raw
    if version == SOAP11:
        code = root.findtext(".//faultcode") or ""
    else:
        code = root.findtext(f".//{{{SOAP12}}}Code/{{{SOAP12}}}Value") or ""
    errors = [
        {
            "path": e.findtext(f"{t}DuongDan") or "",
            "element": e.findtext(f"{t}PhanTu") or "",
            "rule": e.findtext(f"{t}QuyTac") or "",
            "expected": e.findtext(f"{t}YeuCau") or "",
        }
        for e in why.findall(f"{t}Loi")
    ]
    return Fault(
        status,
        headers,
        code,
        why.findtext(f"{t}LyDo") or "",
        int(why.findtext(f"{t}MaHttp") or 0),
        why.findtext(f"{t}MoTa") or "",
        errors,
        raw,
    )


def refused(gw: GatewayUnderTest, body: bytes, version: str = SOAP11, **headers: str) -> Fault:
    status, got, raw = soap_post(gw, body, version, headers)
    assert got["content-type"].startswith(
        "text/xml" if version == SOAP11 else "application/soap+xml"
    ), raw
    return fault_of(status, got, raw)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    """A gateway on a fresh namespace whose topology is declared (no router consumes)."""
    tmp = tmp_path_factory.mktemp("gateway-soap")
    with bus_under_test(tmp, sqlite_url(tmp)) as bus:
        (tmp / "senders.yaml").write_text(senders_text(bus.names), encoding="utf-8")
        _declare_topology(bus)
        gw = start_gateway(bus)
        ready = wait_until(lambda: gw.request("GET", "/readyz", token=None).status == 200, 30)
        assert ready, gw.process.log_text()
        yield gw


def wsdl_client(gw: GatewayUnderTest, tmp: Path, **kwargs: Any) -> zeep.Client:
    """zeep, as a SOAP toolkit would, from the WSDL the gateway serves."""
    status, headers, wsdl = _get(gw, "/v1/soap?wsdl")
    assert status == 200 and headers["content-type"].startswith("text/xml")
    path = tmp / "ingress.wsdl"
    path.write_bytes(wsdl)
    return zeep.Client(str(path), **kwargs)


def _get(gw: GatewayUnderTest, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# --- the WSDL --------------------------------------------------------------------------------


def test_the_wsdl_is_served_and_read_by_zeep_with_its_operation_at_the_gateway(
    gateway: GatewayUnderTest, tmp_path: Path
) -> None:
    client = wsdl_client(gateway, tmp_path)
    service = client.wsdl.services["DvcBusIngress"]
    for port_name in ("DvcBusIngressSoap", "DvcBusIngressSoap12"):
        port = service.ports[port_name]
        assert port.binding_options["address"] == f"http://127.0.0.1:{gateway.port}/v1/soap"
        assert "DongBoTrangThaiHoSo" in port.binding._operations
    assert _get(gateway, "/v1/soap")[0] == 405  # only ?wsdl is served by GET


# --- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["DvcBusIngressSoap", "DvcBusIngressSoap12"])
def test_a_request_zeep_builds_from_the_wsdl_is_accepted_after_the_broker_confirmed(
    gateway: GatewayUnderTest, tmp_path: Path, port: str
) -> None:
    _drain(gateway.ingress)
    client = wsdl_client(
        gateway, tmp_path, wsse=UsernameToken("hanoi", TOKENS["hanoi"], use_digest=False)
    )
    service = client.bind("DvcBusIngress", port)
    message_id = uuid7()
    result = service.DongBoTrangThaiHoSo(
        MaThongDiep=message_id,
        HeThongGui="000.00.00.H26",
        ThoiDiemPhatSinh="20261125093210",
        TrangThai={
            "MaHoSo": "000.04.01.H26-261125-0031",
            "MaDonVi": "000.04.01.H26",
            "TrangThaiHoSo": 4,
            "TrangThaiTruoc": 2,
            "SoThuTu": 2,
            "ThoiDiemXuLy": "20261125100000",
            "ThongTinXuLy": {"NguoiXuLy": "Trần Văn Bình"},
        },
    )
    assert (result.MaLoi, result.MaThongDiep) == ("0", message_id)
    got = _get_one(gateway.ingress)  # the broker held it before the answer
    assert got is not None
    props, body = got
    assert props.headers["x-dvcbus-sender"] == "hanoi"
    assert json.loads(body) == {
        "id": message_id,
        "type": "dossier.status_changed",
        "version": 1,
        "source": "000.00.00.H26",
        "occurred_at": "2026-11-25T09:32:10+07:00",
        "correlation_id": "000.04.01.H26-261125-0031",
        "payload": {
            "dossier_no": "000.04.01.H26-261125-0031",
            "agency": "000.04.01.H26",
            "status": 4,
            "previous_status": 2,
            "sequence": 2,
            "status_at": "2026-11-25T10:00:00+07:00",
            "handler": {"name": "Trần Văn Bình"},
        },
    }


def test_the_same_idempotency_key_gets_the_first_answer_and_one_message(
    gateway: GatewayUnderTest,
) -> None:
    _drain(gateway.ingress)
    message_id, key = uuid7(), uuid7()
    first = soap_post(gateway, status_request(message_id, key=key))
    # A retry: the toolkit writes a new envelope (its own headers), the same message.
    again = soap_post(gateway, status_request(message_id, key=key, version=SOAP12), SOAP12)
    assert (first[0], again[0]) == (200, 200), first[2] + again[2]
    assert b"<dvc:MaLoi>0</dvc:MaLoi>" in first[2]
    assert b"<dvc:MaLoi>2</dvc:MaLoi>" in again[2]
    assert message_id.encode() in again[2]
    assert queue_depth(gateway.ingress) == 1


# --- refused, each with a fault naming the REST reason ---------------------------------------


def test_no_credentials_is_a_client_fault_unauthenticated(gateway: GatewayUnderTest) -> None:
    fault = refused(gateway, status_request(username=None))
    assert (fault.http, fault.code) == (500, "soap:Client")
    assert (fault.reason, fault.status) == ("unauthenticated", 401)
    assert "UsernameToken" in fault.detail


@pytest.mark.parametrize(
    ("username", "password", "kind"),
    [
        ("hanoi", "not-the-token", None),
        ("hcmc", TOKENS["hanoi"], None),  # a real token under another sender's name
        ("hanoi", TOKENS["hanoi"], "http://docs.oasis-open.org/wss/2004/01/"
         "oasis-200401-wss-username-token-profile-1.0#PasswordDigest"),
    ],
)  # fmt: skip
def test_a_wrong_password_or_token_is_unauthenticated(
    gateway: GatewayUnderTest, username: str, password: str, kind: str | None
) -> None:
    fault = refused(
        gateway, status_request(username=username, password=password, password_type=kind)
    )
    assert (fault.reason, fault.status) == ("unauthenticated", 401)
    assert TOKENS["hanoi"] not in fault.raw.decode()


def test_a_wrong_bearer_header_is_unauthenticated_before_the_body_is_read(
    gateway: GatewayUnderTest,
) -> None:
    fault = refused(gateway, status_request(), Authorization="Bearer nobody-has-this")
    assert (fault.reason, fault.status) == ("unauthenticated", 401)


def test_a_bearer_header_authenticates_without_a_username_token(
    gateway: GatewayUnderTest,
) -> None:
    status, _, raw = soap_post(
        gateway,
        status_request(username=None),
        headers={"Authorization": f"Bearer {TOKENS['hanoi']}"},
    )
    assert status == 200, raw


def test_http_basic_with_the_sender_id_and_token_authenticates(gateway: GatewayUnderTest) -> None:
    good = base64.b64encode(f"hanoi:{TOKENS['hanoi']}".encode()).decode()
    status, _, raw = soap_post(
        gateway, status_request(username=None), headers={"Authorization": f"Basic {good}"}
    )
    assert status == 200, raw
    wrong = base64.b64encode(f"hcmc:{TOKENS['hanoi']}".encode()).decode()
    fault = refused(gateway, status_request(username=None), Authorization=f"Basic {wrong}")
    assert (fault.reason, fault.status) == ("unauthenticated", 401)


def test_a_source_the_sender_may_not_claim_is_source_not_allowed(
    gateway: GatewayUnderTest,
) -> None:
    fault = refused(gateway, status_request(source="000.00.00.H29", version=SOAP12), SOAP12)
    assert (fault.http, fault.code) == (400, "soap:Sender")
    assert (fault.reason, fault.status) == ("source_not_allowed", 403)
    assert "may not claim source 000.00.00.H29" in fault.detail
    assert b"<soap:Value>dvc:source_not_allowed</soap:Value>" in fault.raw


def test_a_type_the_sender_may_not_send_is_type_not_allowed(gateway: GatewayUnderTest) -> None:
    fault = refused(
        gateway,
        status_request(username="portal", password=TOKENS["portal"], source="000.00.00.G22/portal"),
    )
    assert (fault.reason, fault.status) == ("type_not_allowed", 403)
    assert "may not send dossier.status_changed" in fault.detail


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<soap:Envelope xmlns:soap='x'><unclosed>", "not XML"),
        (b'{"json": "is not SOAP"}', "not XML"),
        (b"<Envelope><Body/></Envelope>", "not a SOAP message"),
        (f"<s:Envelope xmlns:s='{SOAP11}'><s:Body/></s:Envelope>".encode(), "exactly one"),
        (b"<a>" * 1000 + b"</a>" * 1000, "Excessive depth"),  # nesting is bounded too
    ],
)
def test_a_body_that_is_not_a_soap_message_is_malformed(
    gateway: GatewayUnderTest, body: bytes, words: str
) -> None:
    fault = refused(gateway, body)
    assert (fault.reason, fault.status) == ("malformed", 422)
    assert words in fault.detail


@pytest.mark.parametrize(("version", "marked"), [(SOAP11, "1"), (SOAP12, "true")])
def test_a_header_marked_must_understand_that_the_bus_does_not_know_is_a_must_understand_fault(
    gateway: GatewayUnderTest, version: str, marked: str
) -> None:
    body = status_request(version=version).replace(
        b"<soap:Header>",
        f'<soap:Header><x:Routing xmlns:x="urn:other" soap:mustUnderstand="{marked}"/>'.encode(),
    )
    fault = refused(gateway, body, version)
    assert (fault.code, fault.reason, fault.status) == ("soap:MustUnderstand", "bad_request", 400)
    assert "Routing" in fault.detail
    # WS-Security marked mustUnderstand, as toolkits send it, is understood.
    marked_security = status_request(version=version).replace(
        b"<wsse:Security>", f'<wsse:Security soap:mustUnderstand="{marked}">'.encode()
    )
    assert soap_post(gateway, marked_security, version)[0] == 200


def test_a_fault_is_in_the_soap_version_of_the_envelope_whatever_the_content_type(
    gateway: GatewayUnderTest,
) -> None:
    body = status_request(version=SOAP12, source="000.00.00.H29")
    status, headers, raw = soap_post(gateway, body, SOAP11)  # sent as text/xml
    fault = fault_of(status, headers, raw)
    assert (fault.http, fault.code, fault.reason) == (400, "soap:Sender", "source_not_allowed")
    assert headers["content-type"].startswith("application/soap+xml")


def test_an_unknown_operation_is_unknown_type(gateway: GatewayUnderTest) -> None:
    body = status_request().replace(b"DongBoTrangThaiHoSo>", b"TiepNhanHoSo>")
    fault = refused(gateway, body)
    assert (fault.reason, fault.status) == ("unknown_type", 422)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&lol4;
</soap:Body></soap:Envelope>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&secret;
</soap:Body></soap:Envelope>"""
UTF16_DTD = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>'


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, UTF16_DTD.encode("utf-16")],
    ids=["entity-bomb", "external-entity", "utf16-dtd"],
)
def test_hostile_xml_is_refused_and_never_expanded(gateway: GatewayUnderTest, body: bytes) -> None:
    _drain(gateway.ingress)
    fault = refused(gateway, body)
    assert (fault.reason, fault.status) == ("hostile_xml", 422)
    assert b"root:" not in fault.raw and b"lollol" not in fault.raw
    assert queue_depth(gateway.ingress) == 0


def test_an_xsd_violation_names_the_element(gateway: GatewayUnderTest) -> None:
    fault = refused(gateway, status_request(SoThuTu="abc"))
    assert (fault.reason, fault.status) == ("invalid", 422)
    (error,) = fault.errors
    assert (error["element"], error["rule"]) == ("DongBoTrangThaiHoSo/TrangThai/SoThuTu", "xsd")
    assert "abc" not in fault.raw.decode()


def test_a_schema_violation_has_the_json_path_and_the_element(gateway: GatewayUnderTest) -> None:
    fault = refused(gateway, status_request(MaDonVi="HN-123", TrangThaiHoSo="42"))
    assert (fault.reason, fault.status) == ("invalid", 422)
    found = {(e["path"], e["element"], e["rule"]) for e in fault.errors}
    assert ("payload.agency", "TrangThai/MaDonVi", "pattern") in found
    assert ("payload.status", "TrangThai/TrangThaiHoSo", "maximum") in found, found
    assert "HN-123" not in fault.raw.decode()


def test_an_impossible_time_is_invalid_naming_the_element(gateway: GatewayUnderTest) -> None:
    fault = refused(gateway, status_request(ThoiDiemXuLy="20261332250000"))
    assert (fault.reason, fault.status) == ("invalid", 422)
    assert [(e["path"], e["element"]) for e in fault.errors] == [
        ("payload.status_at", "TrangThai/ThoiDiemXuLy")
    ]


def test_a_body_over_the_cap_is_too_large(gateway: GatewayUnderTest) -> None:
    body = status_request(MaTTHC="x" * MAX_BODY)
    fault = refused(gateway, body)
    assert (fault.reason, fault.status) == ("too_large", 413)


def test_a_sender_above_its_rate_gets_a_server_fault_with_retry_after(
    gateway: GatewayUnderTest,
) -> None:
    hcmc = {"username": "hcmc", "password": TOKENS["hcmc"], "source": "000.00.00.H29"}
    soap_post(gateway, status_request(**hcmc))  # its one request a minute
    fault = refused(gateway, status_request(**hcmc))
    assert (fault.http, fault.code) == (500, "soap:Server")
    assert (fault.reason, fault.status) == ("rate_limited", 429)
    assert int(fault.headers["retry-after"]) >= 1


def test_a_message_the_broker_does_not_hold_is_a_server_fault_to_retry(
    gateway: GatewayUnderTest,
) -> None:
    with ingress_unbound(gateway):
        fault = refused(gateway, status_request(version=SOAP12), SOAP12)
    assert (fault.http, fault.code) == (500, "soap:Receiver")
    assert (fault.reason, fault.status) == ("broker_unavailable", 503)
    assert "no queue" in fault.detail
    assert int(fault.headers["retry-after"]) >= 1


def test_soap_requests_are_counted_by_reason_and_leave_a_hop(gateway: GatewayUnderTest) -> None:
    message_id = uuid7()
    status, _, raw = soap_post(gateway, status_request(message_id, key="soap-audit-1"))
    assert status == 200, raw
    refused(gateway, BILLION_LAUGHS)
    metrics = gateway.request("GET", "/metrics", token=None).body
    assert 'dvcbus_gateway_requests_total{outcome="refused",reason="hostile_xml"}' in metrics
    store = gateway.bus.store
    found: list[Any] = []

    def recorded() -> bool:
        found[:] = [
            r for r in store.audit_records(message_ids=[message_id]) if r.stage == "gateway"
        ]
        return bool(found)

    assert wait_until(recorded, 20)
    (hop,) = found
    assert hop.event == "accepted"
    assert "sender hanoi" in hop.detail and "via soap" in hop.detail
    assert "idempotency key soap-audit-1" in hop.detail
    published = _published_body(gateway, message_id)
    assert hop.body_sha256 == hashlib.sha256(published).hexdigest()


def _published_body(gateway: GatewayUnderTest, message_id: str) -> bytes:
    """The body of ``message_id`` on the ingress queue (the others are put back)."""
    conn, ch = blocking_channel()
    try:
        tags: list[int] = []
        found = b""
        while True:
            method, props, body = ch.basic_get(gateway.ingress, auto_ack=False)
            if method is None:
                break
            tags.append(method.delivery_tag)
            if props.message_id == message_id:
                found = body
        for tag in tags:
            ch.basic_nack(tag, requeue=True)
        assert found, f"{message_id} is not on the ingress queue"
        return found
    finally:
        if conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                conn.close()


# --- through the whole bus -------------------------------------------------------------------


def test_a_status_update_over_soap_reaches_the_portal(bus: BusUnderTest) -> None:
    senders = senders_text(bus.names)
    bus.routes_file.with_name("senders.yaml").write_text(senders, encoding="utf-8")
    bus.start_router()
    bus.start_dispatcher()
    gw = start_gateway(bus)
    assert wait_until(lambda: gw.request("GET", "/readyz", token=None).status == 200, 30)
    message_id = uuid7()
    status, _, raw = soap_post(gw, status_request(message_id))
    assert status == 200, raw

    def delivered() -> bool:
        return (message_id, "portal", "delivered") in set(bus.store.outcomes([message_id]))

    assert wait_until(delivered, 20), (bus.store.outcomes([message_id]), bus.receipts())
    (call,) = [r for r in bus.standins.received("portal") if r.idempotency_key == message_id]
    assert b"000.04.01.H26-261125-0031" in call.body
    # The sender follows it like a REST one: GET with its token.
    where = gw.request("GET", f"/v1/messages/{message_id}", token=TOKENS["hanoi"])
    assert (where.status, where.body["id"]) == (200, message_id), where.body
    assert gw.request("GET", f"/v1/messages/{message_id}", token=TOKENS["portal"]).status == 404
