"""Every adapter kind delivering through the real bus (router, dispatcher, RabbitMQ, stand-ins)."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from adapters import safexml
from adapters.kinds.payment_signature import sign_as_platform
from adapters.wsse import check_username_token
from bus.contract.ids import uuid7
from tests.integration.harness import ROOT, collect_dead, send, wait_until

EXAMPLES = ROOT / "schemas" / "examples"
PAYMENT_SECRET = "demo-secret"  # as in bus_env; the examples are signed with it


def doc(name: str) -> dict[str, Any]:
    return orjson.loads((EXAMPLES / name).read_bytes())


def fresh(document: dict[str, Any], **payload: Any) -> dict[str, Any]:
    document = {**document, "id": uuid7(), "payload": {**document["payload"], **payload}}
    return document


def sign(document: dict[str, Any]) -> dict[str, Any]:
    document["payload"] = sign_as_platform(document["payload"], PAYMENT_SECRET)
    return document


def body(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document)


def test_the_reference_adapters_and_a_mapped_rest_target_deliver_through_the_bus(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    danang = fresh(doc("dossier.submitted.v1/valid/citizen-danang-minimal.json"))
    payment = sign(fresh(doc("payment.confirmed.v2/valid/success-vcb.json")))  # Hà Nội
    status = doc("dossier.status_changed.v1/valid/received.json")
    shared = fresh(status, agency="000.00.07.H40")  # a shared-platform province: sync API
    shared["source"] = "000.00.00.H40"
    progress = fresh(shared, status=4, previous_status=2, sequence=2)
    justice = fresh(
        doc("dossier.submitted.v1/valid/citizen-hanoi-online.json"),
        receiving_agency="000.00.00.G12",
        procedure_code="1.001193",
    )
    messages = [danang, payment, shared, progress, justice]
    assert all(r.ok for r in send(bus.names, [body(m) for m in messages]))

    expected = {
        "danang": {danang["id"]},
        "hanoi-payments": {payment["id"]},
        "portal": {payment["id"]},
        "portal-sync": {shared["id"], progress["id"]},
        "justice": {justice["id"]},
        "justice-archive": {justice["id"]},
    }

    def arrived() -> bool:
        got = {t: {r.idempotency_key for r in bus.standins.received(t)} for t in expected}
        return all(expected[t] <= got[t] for t in expected)

    assert wait_until(arrived, 30), {t: len(bus.standins.received(t)) for t in expected}
    wanted = {(mid, target, "delivered") for target, ids in expected.items() for mid in ids}
    assert wait_until(lambda: wanted <= set(bus.store.outcomes()), 10), "adapters' outcomes"

    # onestop-soap: TiepNhanHoSo, with a valid WS-Security digest and the bus's SOAP header.
    (soap_call,) = bus.standins.received("danang")
    envelope = safexml.parse(soap_call.body)
    assert safexml.text_of(envelope, "MaHoSo") == danang["payload"]["dossier_no"]
    assert safexml.text_of(envelope, "IdempotencyKey") == danang["id"]
    security = safexml.find_local(envelope, "Security")
    assert check_username_token(security, "test-danang", "test-danang-password")

    # payment-confirmation: verified by the router, the signed strings carried to the agency.
    (pay_call,) = bus.standins.received("hanoi-payments")
    sent = orjson.loads(pay_call.body)
    assert sent["checksum"] == payment["payload"]["checksum"]
    assert sent["signedFields"] == payment["payload"]["signed"]

    # portal-sync: one session login, an insert (status 2) and a progress entry (status 4).
    paths = sorted(r.path for r in bus.standins.received("portal-sync"))
    assert paths == ["/api/dongbo/hoso/them-moi", "/api/dongbo/hoso/tien-do"]
    assert bus.standins.auth_calls("portal-sync") == 1

    # generic REST with a declared mapping and basic auth: metadata only, no personal data.
    (archive_call,) = bus.standins.received("justice-archive")
    assert archive_call.method == "PUT"
    assert archive_call.path.endswith("/" + justice["payload"]["dossier_no"])
    credentials = base64.b64encode(b"test-archive:test-archive-password").decode()
    assert archive_call.headers["Authorization"] == f"Basic {credentials}"
    archived = orjson.loads(archive_call.body)
    assert archived["NgayNop"] == "20261125091437"
    applicant = justice["payload"]["applicant"]
    for personal in (applicant["full_name"], applicant["phone"], applicant["id_number"]):
        assert personal.encode() not in archive_call.body

    # The generic REST kind's default: the canonical body, unchanged, to the portal.
    (portal_call,) = bus.standins.received("portal")
    assert portal_call.body == body(payment)


def test_hostile_soap_answers_are_dead_lettered_and_the_dispatcher_keeps_delivering(bus) -> None:
    from adapters.testing.standin import Behaviour

    bus.start_router()
    dispatcher = bus.start_dispatcher()
    for act in ("billion_laughs", "xxe", "huge", "garbage"):
        bus.standins.program("danang", Behaviour(act=act, times=1))
    template = doc("dossier.submitted.v1/valid/citizen-danang-minimal.json")
    hostile = [fresh(template) for _ in range(4)]
    for message in hostile:  # one at a time, so each meets its own misbehaviour
        send(bus.names, [body(message)])
        assert wait_until(
            lambda m=message: any(
                r.idempotency_key == m["id"] for r in bus.standins.received("danang")
            ),
            20,
        )
    dead = collect_dead(bus.store, 4)
    assert {d.message_id for d in dead} == {m["id"] for m in hostile}
    assert all(d.reason == "rejected" and d.target == "danang" for d in dead)
    details = sorted(d.detail for d in dead)
    assert sum("DTD or entities" in d for d in details) == 2
    assert any("cap" in d and "not read further" in d for d in details)
    assert any(d.startswith("unreadable answer") and "001*******345" in d for d in details)
    assert dispatcher.alive

    good = fresh(template)
    send(bus.names, [body(good)])
    assert wait_until(
        lambda: any(r.idempotency_key == good["id"] for r in bus.standins.received("danang")), 20
    )
    assert dispatcher.alive


def test_the_generic_soap_kind_delivers_through_the_bus_from_its_wsdl(make_bus) -> None:
    def generic_soap_for_danang(routes: dict[str, Any]) -> None:
        routes["targets"]["danang"]["adapter"] = "soap"
        routes["targets"]["danang"]["options"] = {
            "wsdl": "motcua-lienthong.wsdl",
            "port": "MotCuaSoap12",
            "operations": {
                "dossier.submitted": {
                    "operation": "TiepNhanHoSo",
                    "parameters": {
                        "HoSo": {
                            "MaHoSo": "payload.dossier_no",
                            "MaTTHC": "payload.procedure_code",
                            "TenTTHC": "payload.procedure_name",
                            "MaCoQuanTiepNhan": "payload.receiving_agency",
                            "NgayNopHoSo": {"from": "payload.submitted_at",
                                            "format": "yyyyMMddHHmmss"},
                            "HinhThucNop": "payload.channel",
                            "NguoiNop": {
                                "LoaiDoiTuong": "payload.applicant.type",
                                "HoTen": "payload.applicant.full_name",
                                "SoDienThoai": "payload.applicant.phone",
                                "DiaChi": {
                                    "MaXa": "payload.applicant.address.commune_code",
                                    "MaTinh": "payload.applicant.address.province_code",
                                },
                            },
                            "TrichYeu": "payload.summary",
                            "DanhSachGiayTo": {"GiayTo": {"each": "payload.documents",
                                                          "fields": {"TenGiayTo": "name",
                                                                     "DuongDan": "url",
                                                                     "MaBam": "sha256",
                                                                     "KichThuoc": "size_bytes"}}},
                        }
                    },
                }
            },
            "wsse": {"password_digest": False, "timestamp": False},
            "response": {"result_code": {"element": "MaLoi", "success": ["0"]},
                         "reference": ["SoBienNhan"]},
        }  # fmt: skip

    bus = make_bus(tweak=generic_soap_for_danang)
    bus.start_router()
    bus.start_dispatcher()
    dossier = fresh(doc("dossier.submitted.v1/valid/citizen-danang-minimal.json"))
    send(bus.names, [body(dossier)])
    assert wait_until(lambda: bus.standins.received("danang"), 20)
    (call,) = bus.standins.received("danang")
    assert call.headers["Content-Type"].startswith("application/soap+xml")
    assert 'action="http://motcua.gov.vn/lienthong/v1/TiepNhanHoSo"' in call.headers["Content-Type"]
    envelope = safexml.parse(call.body)
    assert safexml.text_of(envelope, "Password") == "test-danang-password"  # PasswordText
    assert safexml.text_of(envelope, "MaHoSo") == dossier["payload"]["dossier_no"]
    delivered = (dossier["id"], "danang", "delivered")
    assert wait_until(lambda: delivered in bus.store.outcomes([dossier["id"]]), 10)
