"""The three reference adapters against their stand-ins on loopback (no broker needed)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import urllib.request
from collections.abc import Iterator

import orjson
import pytest

from adapters.base import Adapter, Delivered, PermanentFailure, TargetSpec, TransientFailure
from adapters.kinds.onestop import OneStopSoapAdapter
from adapters.kinds.payment import PaymentConfirmationAdapter, payment_checksum
from adapters.kinds.portal_sync import PortalSyncAdapter
from adapters.testing import Behaviour, Endpoint, StandinThread
from adapters.wsse import WSSE, check_username_token
from bus.contract.envelope import Message
from tests.integration.harness import ROOT, free_port

EXAMPLES = ROOT / "schemas" / "examples"
SECRET = "partner-secret-hn"


def example(name: str, **payload: object) -> Message:
    doc = orjson.loads((EXAMPLES / name).read_bytes())
    doc["payload"].update(payload)
    return Message.from_doc(doc, orjson.dumps(doc))


def variant(message: Message, n: int, **payload: object) -> Message:
    """The same message with a new id and the payload changes (a distinct delivery)."""
    doc = orjson.loads(message.body)
    doc["id"] = doc["id"][:-4] + f"{n:04x}"
    doc["payload"].update(payload)
    return Message.from_doc(doc, orjson.dumps(doc))


def spec(kind: str, path: str, port: int, **credentials: str) -> TargetSpec:
    return TargetSpec(
        name=kind,
        agency="000.00.00.G22",
        adapter=kind,
        endpoint=f"http://127.0.0.1:{port}{path}",
        connect_timeout=1.0,
        read_timeout=2.0,
        concurrency=16,
        credentials=credentials,
    )


@pytest.fixture
def stand_ins() -> Iterator[tuple[dict[str, TargetSpec], StandinThread]]:
    port = free_port()
    specs = {
        "portal-sync": spec("portal-sync", "/api/dongbo", port, username="u", password="p"),
        "onestop-soap": spec(
            "onestop-soap",
            "/motcua/services/LienThong",
            port,
            username="motcua-dn",
            password="pw-dn",
        ),
        "payment-confirmation": spec(
            "payment-confirmation", "/motcua/api/thanhtoan", port, secret=SECRET
        ),
    }
    classes: dict[str, type[Adapter]] = {
        "portal-sync": PortalSyncAdapter,
        "onestop-soap": OneStopSoapAdapter,
        "payment-confirmation": PaymentConfirmationAdapter,
    }
    eps = [Endpoint(k, s.endpoint, classes[k].standin_profile(s)) for k, s in specs.items()]
    with StandinThread(eps) as standin:
        yield specs, standin


def deliver(adapter_cls: type[Adapter], target: TargetSpec, *batches: list[Message]) -> list:
    """Deliver each batch concurrently (batches one after the other) with one adapter."""

    async def go() -> list:
        adapter = adapter_cls(target)
        await adapter.start()
        outcomes: list = []
        try:
            for batch in batches:
                outcomes += await asyncio.gather(*(adapter.deliver(m) for m in batch))
        finally:
            await adapter.close()
        return outcomes

    return asyncio.run(go())


# --- portal-sync ---------------------------------------------------------------------------

RECEIVED = example("dossier.status_changed.v1/valid/received.json")  # status 2
SUPPLEMENT = example("dossier.status_changed.v1/valid/supplement-requested.json")  # status 5
RETURNED = example("dossier.status_changed.v1/valid/result-returned-utc.json")  # status 10


def test_portal_sync_inserts_then_updates_a_dossier_that_already_exists(stand_ins) -> None:
    specs, standin = stand_ins
    first, again = deliver(PortalSyncAdapter, specs["portal-sync"], [RECEIVED], [RECEIVED])
    assert isinstance(first, Delivered) and isinstance(again, Delivered)
    paths = [r.path for r in standin.received("portal-sync")]
    assert paths == [
        "/api/dongbo/hoso/them-moi",
        "/api/dongbo/hoso/them-moi",  # "Hồ sơ ... đã tồn tại" (error_code -2)
        "/api/dongbo/hoso/cap-nhat",
    ]
    insert = orjson.loads(standin.received("portal-sync")[0].body)
    assert insert["MaHoSo"] == "000.04.01.H26-261125-0031"
    assert insert["TrangThaiHoSo"] == 2
    assert insert["ThoiDiemXuLy"] == "20261125093204"  # yyyyMMddHHmmss, Vietnam time
    assert insert["MaDongBo"] == RECEIVED.id
    assert standin.auth_calls("portal-sync") == 1  # one session login for all calls
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in standin.received())


def test_portal_sync_closes_a_record_with_an_update(stand_ins) -> None:
    specs, standin = stand_ins
    _, outcome = deliver(PortalSyncAdapter, specs["portal-sync"], [RECEIVED], [RETURNED])
    assert isinstance(outcome, Delivered)
    call = standin.received("portal-sync")[-1]
    assert call.path == "/api/dongbo/hoso/cap-nhat"
    body = orjson.loads(call.body)
    assert body["TrangThaiHoSo"] == 10
    assert body["NgayTraKetQua"] == "20261127100459"  # 03:04:59Z is 10:04:59 in Vietnam


def test_processing_done_and_result_returned_keep_their_own_dates(stand_ins) -> None:
    """Status 9's date is when processing finished, 10's when the result was returned: the
    second update must not overwrite the first's date."""
    specs, standin = stand_ins
    done = variant(RETURNED, 9, status=9, status_at="2026-11-26T08:00:00+07:00")
    returned = variant(RETURNED, 10, status=10, status_at="2026-11-27T10:04:59+07:00")
    outcomes = deliver(PortalSyncAdapter, specs["portal-sync"], [RECEIVED], [done], [returned])
    assert all(isinstance(o, Delivered) for o in outcomes)
    updates = [orjson.loads(r.body) for r in standin.received("portal-sync")[-2:]]
    assert updates[0]["NgayKetThucXuLy"] == "20261126080000"
    assert "NgayTraKetQua" not in updates[0]
    assert updates[1]["NgayTraKetQua"] == "20261127100459"
    assert "NgayKetThucXuLy" not in updates[1]


def test_a_status_for_a_dossier_the_portal_does_not_know_is_inserted(stand_ins) -> None:
    """Symmetric to "already exists → update": "không tồn tại" → insert (a counter dossier),
    with the owner, channel and receiving date when the message has them."""
    specs, standin = stand_ins
    counter = variant(
        RETURNED, 1, owner={"name": "Nguyễn Thị Hoa"}, channel="counter",
        received_at="2026-11-20T08:30:00+07:00",
    )  # fmt: skip
    (outcome,) = deliver(PortalSyncAdapter, specs["portal-sync"], [counter])
    assert isinstance(outcome, Delivered)
    calls = standin.received("portal-sync")
    assert [r.path for r in calls] == ["/api/dongbo/hoso/cap-nhat", "/api/dongbo/hoso/them-moi"]
    inserted = orjson.loads(calls[1].body)
    assert inserted["TrangThaiHoSo"] == 10 and inserted["NgayTraKetQua"] == "20261127100459"
    assert inserted["ChuHoSo"] == "Nguyễn Thị Hoa" and inserted["KenhNop"] == "counter"
    assert inserted["NgayTiepNhan"] == "20261120083000"
    (plain,) = deliver(PortalSyncAdapter, specs["portal-sync"], [variant(RETURNED, 2)])
    assert isinstance(plain, Delivered)
    assert not {"ChuHoSo", "KenhNop", "NgayTiepNhan"} & set(
        orjson.loads(standin.received("portal-sync")[-1].body)
    )  # not in the message: not sent


def test_a_dossier_the_portal_is_told_it_holds_is_updated_in_one_call(stand_ins) -> None:
    """POST /_standin/memory gives a fake API what the agency's system holds already (the
    benchmark tells the portal the dossiers its status updates are about)."""
    specs, standin = stand_ins
    known = variant(RETURNED, 3)
    origin = specs["portal-sync"].endpoint.split("/api/")[0]
    told = {"target": "portal-sync", "key": "records", "entries": {known.dossier_no: {}}}
    request = urllib.request.Request(
        f"{origin}/_standin/memory", data=orjson.dumps(told), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert orjson.loads(answer.read()) == {"ok": True, "held": 1}
    (outcome,) = deliver(PortalSyncAdapter, specs["portal-sync"], [known])
    assert isinstance(outcome, Delivered)
    assert [r.path for r in standin.received("portal-sync")] == ["/api/dongbo/hoso/cap-nhat"]


def test_a_progress_entry_for_an_unknown_dossier_is_inserted_instead(stand_ins) -> None:
    specs, standin = stand_ins
    batch = [variant(SUPPLEMENT, n) for n in range(2)]
    results = [
        {"MaDongBo": batch[0].id, "error_code": "0"},
        {"MaDongBo": batch[1].id, "error_code": "-3", "message": "Hồ sơ không tồn tại"},
    ]
    standin.program("portal-sync", Behaviour(body={"error_code": "0", "ket_qua": results}, times=1))
    outcomes = deliver(PortalSyncAdapter, specs["portal-sync"], batch)
    assert [type(o) for o in outcomes] == [Delivered, Delivered]
    last = standin.received("portal-sync")[-1]
    assert last.path == "/api/dongbo/hoso/them-moi"
    assert orjson.loads(last.body)["MaDongBo"] == batch[1].id


def test_a_late_status_flagged_as_history_is_a_progress_entry(stand_ins) -> None:
    """A late "received" must not insert or update the record's current state."""
    specs, standin = stand_ins
    late = dataclasses.replace(RECEIVED, flags=("status-history",))
    (outcome,) = deliver(PortalSyncAdapter, specs["portal-sync"], [late])
    assert isinstance(outcome, Delivered)
    (call,) = standin.received("portal-sync")
    assert call.path == "/api/dongbo/hoso/tien-do"
    assert call.headers["X-Bus-Flags"] == "status-history"


def test_portal_sync_sends_progress_in_batches_with_an_outcome_per_entry(stand_ins) -> None:
    specs, standin = stand_ins
    batch = [variant(SUPPLEMENT, n) for n in range(12)]
    outcomes = deliver(PortalSyncAdapter, specs["portal-sync"], batch)
    assert all(isinstance(o, Delivered) for o in outcomes)
    received = standin.received("portal-sync")
    assert len(received) == 12  # one record per entry...
    assert len({r.seq for r in received}) == 12
    assert {r.body for r in received} == {received[0].body}  # ...of one call
    assert {r.idempotency_key for r in received} == {m.id for m in batch}
    entries = orjson.loads(received[0].body)
    assert [e["MaDongBo"] for e in entries] == [m.id for m in batch]
    assert received[0].headers["X-Batch-Size"] == "12"
    assert received[0].headers["Idempotency-Key"].startswith("batch-")


def test_portal_sync_batches_respect_the_size_the_api_wants(stand_ins) -> None:
    specs, standin = stand_ins
    target = specs["portal-sync"]
    small = dataclasses.replace(target, options={"batch": {"size": 5, "wait": 0.2}})
    outcomes = deliver(PortalSyncAdapter, small, [variant(SUPPLEMENT, n) for n in range(12)])
    assert all(isinstance(o, Delivered) for o in outcomes)
    calls = {r.body for r in standin.received()}  # one body per call, one record per entry
    assert sorted(len(orjson.loads(body)) for body in calls) == [2, 5, 5]


def test_a_refused_entry_fails_alone_and_a_failed_call_fails_every_entry(stand_ins) -> None:
    specs, standin = stand_ins
    batch = [variant(SUPPLEMENT, n) for n in range(3)]
    standin.program(
        "portal-sync",
        Behaviour(
            body={
                "error_code": "0",
                "ket_qua": [
                    {"MaDongBo": batch[0].id, "error_code": "0"},
                    {"MaDongBo": batch[1].id, "error_code": "-1", "message": "Sai trạng thái"},
                    {"MaDongBo": batch[2].id, "error_code": "0"},
                ],
            },
            times=1,
        ),
    )
    standin.program("portal-sync", Behaviour(status=503, times=1))
    first = deliver(PortalSyncAdapter, specs["portal-sync"], batch)
    assert [type(o) for o in first] == [Delivered, PermanentFailure, Delivered]
    assert first[1].reason == "portal error_code -1 for this entry: 'Sai trạng thái'"
    second = deliver(PortalSyncAdapter, specs["portal-sync"], batch)
    assert all(isinstance(o, TransientFailure) and o.reason.startswith("HTTP 503") for o in second)


def test_an_entry_the_portal_left_out_of_its_results_is_not_delivered(stand_ins) -> None:
    specs, standin = stand_ins
    batch = [variant(SUPPLEMENT, n) for n in range(3)]
    results = [
        {"MaDongBo": batch[0].id, "error_code": "0"},
        {"MaDongBo": batch[2].id, "error_code": "0"},
    ]
    standin.program("portal-sync", Behaviour(body={"error_code": "0", "ket_qua": results}, times=1))
    outcomes = deliver(PortalSyncAdapter, specs["portal-sync"], batch)
    assert [type(o) for o in outcomes] == [Delivered, TransientFailure, Delivered]
    assert outcomes[1].reason == (
        f"the portal did not answer for this entry: no MaDongBo {batch[1].id} in ket_qua"
    )


def test_a_progress_answer_without_per_entry_results_delivers_no_entry(stand_ins) -> None:
    specs, standin = stand_ins
    batch = [variant(SUPPLEMENT, n) for n in range(2)]
    standin.program("portal-sync", Behaviour(body={"error_code": "0"}, times=1))
    standin.program(
        "portal-sync",
        Behaviour(body={"error_code": "0", "ket_qua": [{"MaDongBo": batch[0].id}]}, times=1),
    )
    first = deliver(PortalSyncAdapter, specs["portal-sync"], batch)
    assert [o.reason for o in first if isinstance(o, TransientFailure)] == [
        "the portal did not answer per entry: no ket_qua list"
    ] * 2
    second = deliver(PortalSyncAdapter, specs["portal-sync"], batch)
    assert [type(o) for o in second] == [TransientFailure, TransientFailure]
    assert second[0].reason == (
        "the portal did not answer for this entry: its ket_qua result has no error_code"
    )


def test_portal_sync_busy_answer_is_transient(stand_ins) -> None:
    specs, standin = stand_ins
    standin.program("portal-sync", Behaviour(body={"error_code": "-9", "message": "Hệ thống bận"}))
    (outcome,) = deliver(PortalSyncAdapter, specs["portal-sync"], [RECEIVED])
    assert isinstance(outcome, TransientFailure)
    assert outcome.reason == "agency error_code -9: 'Hệ thống bận'"


# --- onestop-soap --------------------------------------------------------------------------


def test_onestop_receives_a_dossier_and_a_payment_report_over_soap(stand_ins) -> None:
    specs, standin = stand_ins
    dossier = example("dossier.submitted.v1/valid/organisation-hcmc-direct.json")
    pay = example("payment.confirmed.v1/valid/success-bidv-above-2-31.json")
    outcomes = deliver(OneStopSoapAdapter, specs["onestop-soap"], [dossier, pay])
    assert [type(o) for o in outcomes] == [Delivered, Delivered]
    assert outcomes[0].reference.startswith("BN-onestop-soap-")
    dossier_call, payment_call = standin.received("onestop-soap")
    assert dossier_call.headers["SOAPAction"].endswith('/TiepNhanHoSo"')
    assert payment_call.headers["SOAPAction"].endswith('/BaoCaoThanhToan"')
    from adapters import safexml

    envelope = safexml.parse(payment_call.body)
    assert safexml.text_of(envelope, "SoTien") == "12000000000"  # beyond 2^31, xs:long
    assert safexml.text_of(envelope, "IdempotencyKey") == pay.id
    security = safexml.find_local(envelope, "Security")
    assert security is not None and security.tag == f"{{{WSSE}}}Security"
    assert check_username_token(security, "motcua-dn", "pw-dn")


def test_onestop_cuts_a_slow_drip_answer_at_connect_plus_read(stand_ins) -> None:
    specs, standin = stand_ins
    standin.program(
        "onestop-soap", Behaviour(act="drip", drip_interval=0.3, drip_seconds=8.0, times=1)
    )
    started = time.monotonic()
    (outcome,) = deliver(
        OneStopSoapAdapter,
        specs["onestop-soap"],
        [example("dossier.submitted.v1/valid/organisation-hcmc-direct.json")],
    )
    assert isinstance(outcome, TransientFailure), outcome
    assert outcome.reason.startswith("timeout: no complete answer within 3s")
    assert time.monotonic() - started < 3.0 + 0.8


def test_onestop_reports_a_payment_above_ten_trillion_dong_whole(stand_ins) -> None:
    specs, standin = stand_ins
    pay = example("payment.confirmed.v1/valid/success-vcb-above-10-13.json")
    (outcome,) = deliver(OneStopSoapAdapter, specs["onestop-soap"], [pay])
    assert isinstance(outcome, Delivered), outcome
    from adapters import safexml

    (call,) = standin.received("onestop-soap")
    assert safexml.text_of(safexml.parse(call.body), "SoTien") == "15000000000000"  # 1.5 × 10^13


# --- payment-confirmation ------------------------------------------------------------------


def signed(message: Message, secret: str = SECRET, n: int = 0, **change: object) -> Message:
    doc = orjson.loads(message.body)
    p = doc["payload"]
    p["checksum"] = payment_checksum(
        [p["reference"], p["transaction_id"], p["amount"], p["paid_at"]], secret
    )
    p.update(change)
    if n:
        doc["id"] = doc["id"][:-4] + f"{n:04x}"
    return Message.from_doc(doc, orjson.dumps(doc))


PAYMENT = example("payment.confirmed.v1/valid/success-vcb.json")


def test_a_payment_is_verified_then_delivered_with_the_platforms_checksum(stand_ins) -> None:
    specs, standin = stand_ins
    good = signed(PAYMENT)
    first, repeat = deliver(
        PaymentConfirmationAdapter, specs["payment-confirmation"], [good], [good]
    )
    assert isinstance(first, Delivered) and first.reference.startswith("PT-")
    assert isinstance(repeat, Delivered)  # errorCode 02: already recorded
    body = orjson.loads(standin.received("payment-confirmation")[0].body)
    assert body["checksum"] == good.payload["checksum"]
    assert body["transactionTime"] == good.payload["paid_at"]  # checksummed values verbatim
    assert body["transactionTimeVN"] == "20261125092017"
    assert (body["referenceId"], body["amount"], body["result"]) == (
        "DVCQG-20261125-000431",
        8000,
        1,
    )


@pytest.mark.parametrize(
    "tampered",
    [
        {"amount": 80000},  # altered after signing
        {"transaction_id": "FT00000000000000"},
        {"checksum": "0" * 64},
    ],
)
def test_an_altered_payment_is_never_delivered(stand_ins, tampered: dict) -> None:
    specs, standin = stand_ins
    (outcome,) = deliver(
        PaymentConfirmationAdapter, specs["payment-confirmation"], [signed(PAYMENT, **tampered)]
    )
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason.startswith("checksum does not match")
    assert SECRET not in outcome.reason
    assert standin.received("payment-confirmation") == []


def test_a_payment_signed_with_another_partners_secret_is_refused(stand_ins) -> None:
    specs, standin = stand_ins
    (outcome,) = deliver(
        PaymentConfirmationAdapter, specs["payment-confirmation"], [signed(PAYMENT, "other")]
    )
    assert isinstance(outcome, PermanentFailure)
    assert standin.received() == []


@pytest.mark.parametrize(("reply_secret", "kind"), [(SECRET, Delivered), ("x", PermanentFailure)])
def test_the_agencys_signed_answer_is_verified(stand_ins, reply_secret: str, kind: type) -> None:
    specs, standin = stand_ins
    reference = PAYMENT.payload["reference"]
    checksum = payment_checksum(["00", reference], reply_secret)
    standin.program(
        "payment-confirmation",
        Behaviour(body={"errorCode": "00", "referenceId": reference, "checksum": checksum}),
    )
    (outcome,) = deliver(
        PaymentConfirmationAdapter, specs["payment-confirmation"], [signed(PAYMENT)]
    )
    assert isinstance(outcome, kind)


@pytest.mark.parametrize(("code", "kind"), [("99", TransientFailure), ("01", PermanentFailure)])
def test_the_agencys_error_codes_are_classified(stand_ins, code: str, kind: type) -> None:
    specs, standin = stand_ins
    standin.program("payment-confirmation", Behaviour(body={"errorCode": code, "message": "x"}))
    (outcome,) = deliver(
        PaymentConfirmationAdapter, specs["payment-confirmation"], [signed(PAYMENT)]
    )
    assert isinstance(outcome, kind)
    assert outcome.reason == f"agency errorCode {code}: 'x'"


def test_the_payment_kind_takes_payments_only(stand_ins) -> None:
    specs, _ = stand_ins
    (outcome,) = deliver(PaymentConfirmationAdapter, specs["payment-confirmation"], [RECEIVED])
    assert isinstance(outcome, PermanentFailure)
