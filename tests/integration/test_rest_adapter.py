"""The generic REST kind against real HTTP stand-ins: body, mapping, answers, timeouts, TLS."""

import asyncio
import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from adapters.base import Delivered, PermanentFailure, TargetSpec, TransientFailure
from adapters.kinds.rest import RestAdapter
from adapters.options import AdapterConfigError
from adapters.testing import Behaviour, Endpoint, StandinThread
from bus.contract.envelope import Message
from tests.integration.harness import ROOT, free_port

BODY = orjson.dumps(
    {
        "id": "01a21070-f5a8-745d-80bd-5ae508e1ed3d",
        "type": "dossier.status_changed",
        "version": 1,
        "source": "000.00.00.H26",
        "occurred_at": "2026-11-25T09:00:00+07:00",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "payload": {"dossier_no": "000.00.12.H26-261125-0001", "status": 2},
    }
)


def message() -> Message:
    return Message.from_doc(orjson.loads(BODY), BODY)


def spec(url: str, read_timeout: float = 2.0, **credentials: str) -> TargetSpec:
    return TargetSpec(
        name="hanoi",
        agency="000.00.00.H26",
        adapter="rest",
        endpoint=url,
        connect_timeout=1.0,
        read_timeout=read_timeout,
        concurrency=2,
        credentials=credentials,
    )


def deliver(target: TargetSpec) -> object:
    async def go() -> object:
        adapter = RestAdapter(target)
        await adapter.start()
        try:
            return await adapter.deliver(message())
        finally:
            await adapter.close()

    return asyncio.run(go())


@pytest.fixture
def agency():
    url = f"http://127.0.0.1:{free_port()}/motcua/api/hoso"
    with StandinThread([Endpoint("hanoi", url)]) as standin:
        yield url, standin


def test_delivery_carries_the_exact_body_idempotency_key_and_traceparent(agency) -> None:
    url, standin = agency
    outcome = deliver(spec(url, token="s3cret"))
    assert isinstance(outcome, Delivered)
    assert outcome.reference == "hanoi-1"
    (received,) = standin.received("hanoi")
    assert received.body == BODY
    assert received.headers["Idempotency-Key"] == "01a21070-f5a8-745d-80bd-5ae508e1ed3d"
    assert (
        received.headers["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    )
    assert received.headers["Authorization"] == "Bearer s3cret"


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_overload_and_gateway_errors_are_transient(agency, status: int) -> None:
    url, standin = agency
    standin.program("hanoi", Behaviour(status=status))
    outcome = deliver(spec(url))
    assert isinstance(outcome, TransientFailure)
    assert str(status) in outcome.reason


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_refusals_are_permanent(agency, status: int) -> None:
    url, standin = agency
    standin.program("hanoi", Behaviour(status=status))
    outcome = deliver(spec(url))
    assert isinstance(outcome, PermanentFailure)
    assert str(status) in outcome.reason


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_permanent_not_followed_and_names_where_it_pointed(
    agency, status: int
) -> None:
    url, standin = agency
    standin.program("hanoi", Behaviour(act="redirect", status=status))
    outcome = deliver(spec(url))
    assert isinstance(outcome, PermanentFailure)
    # The stand-in points back at itself, below a path quoting a phone number: masked.
    assert outcome.reason == (
        f"HTTP {status}: redirect to '{url}/chuyen-huong/09******21' not followed "
        "(check the target's endpoint)"
    )
    (only,) = standin.received("hanoi")  # the POST; no GET to where it pointed
    assert only.method == "POST"


def test_a_redirect_reason_leaves_out_the_query_of_where_it_pointed(agency) -> None:
    url, standin = agency
    location = "https://sso.dichvucong.gov.vn/dang-nhap?ticket=ST-4711-secret&sdt=0987654321"
    standin.program("hanoi", Behaviour(act="redirect", location=location))
    outcome = deliver(spec(url))
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason == (
        "HTTP 302: redirect to 'https://sso.dichvucong.gov.vn/dang-nhap?…' not followed "
        "(check the target's endpoint)"
    )


def test_a_slow_agency_is_cut_at_the_read_timeout_as_transient(agency) -> None:
    url, standin = agency
    standin.program("hanoi", Behaviour(delay=3.0))
    outcome = deliver(spec(url, read_timeout=0.5))
    assert isinstance(outcome, TransientFailure)
    assert "timeout" in outcome.reason


def test_a_portal_style_failure_with_http_200_is_not_delivered_without_a_declared_rule(
    agency,
) -> None:
    url, standin = agency
    standin.program("hanoi", Behaviour(body={"error_code": "-1", "message": "Lỗi hệ thống"}))
    outcome = deliver(spec(url))
    assert outcome == PermanentFailure(
        "agency error_code -1 (no declared success rule): 'Lỗi hệ thống'"
    )


def test_a_slow_drip_answer_is_cut_at_connect_plus_read_not_at_the_deadline(agency) -> None:
    url, standin = agency
    # One byte every 0.3 s: each read is in time for the 1 s read timeout, the answer is not.
    standin.program("hanoi", Behaviour(act="drip", drip_interval=0.3, drip_seconds=8.0))
    started = time.monotonic()
    outcome = deliver(spec(url, read_timeout=1.0))
    elapsed = time.monotonic() - started
    assert isinstance(outcome, TransientFailure), outcome
    assert outcome.reason == "timeout: no complete answer within 2s (connect 1s + read 1s)"
    assert elapsed < 2.0 + 0.8


def test_connection_refused_is_transient() -> None:
    outcome = deliver(spec(f"http://127.0.0.1:{free_port()}/nobody-home"))
    assert isinstance(outcome, TransientFailure)
    assert "connection failed" in outcome.reason


# --- declared mapping, URL templates, answer rules ------------------------------------------

DOSSIER = ROOT / "schemas/examples/dossier.submitted.v1/valid/citizen-hanoi-online.json"


def deliver_with(target: TargetSpec, *messages: Message) -> list:
    async def go() -> list:
        adapter = RestAdapter(target)
        await adapter.start()
        try:
            return [await adapter.deliver(m) for m in messages]
        finally:
            await adapter.close()

    return asyncio.run(go())


def options_spec(endpoint: str, **options: object) -> TargetSpec:
    return TargetSpec(
        name="hanoi",
        agency="000.00.00.H26",
        adapter="rest",
        endpoint=endpoint,
        connect_timeout=1.0,
        read_timeout=2.0,
        concurrency=2,
        options=options,
    )


def dossier() -> Message:
    body = DOSSIER.read_bytes()
    return Message.from_doc(orjson.loads(body), body)


def test_the_body_is_mapped_to_the_agencys_names_and_the_url_built_from_the_message(
    agency,
) -> None:
    url, standin = agency
    target = options_spec(
        url,
        method="PUT",
        url="{endpoint}/{payload.dossier_no}/trang-thai",
        headers={"X-Nguon": "DVCBUS"},
        body={
            "MaHoSo": "payload.dossier_no",
            "TrangThaiHoSo": "payload.status",
            "NgayCapNhat": {"from": "occurred_at", "format": "yyyyMMddHHmmss"},
        },
    )
    (outcome,) = deliver_with(target, message())
    assert isinstance(outcome, Delivered)
    (received,) = standin.received("hanoi")
    assert received.method == "PUT"
    assert received.path == "/motcua/api/hoso/000.00.12.H26-261125-0001/trang-thai"
    assert orjson.loads(received.body) == {
        "MaHoSo": "000.00.12.H26-261125-0001",
        "TrangThaiHoSo": 2,
        "NgayCapNhat": "20261125090000",
    }
    assert received.headers["X-Nguon"] == "DVCBUS"
    assert received.headers["Idempotency-Key"] == "01a21070-f5a8-745d-80bd-5ae508e1ed3d"


def test_each_message_type_may_have_its_own_call(agency) -> None:
    url, standin = agency
    target = options_spec(
        url,
        types={
            "dossier.submitted": {"url": "{endpoint}/moi", "body": {"Ma": "payload.dossier_no"}}
        },
    )
    deliver_with(target, message(), dossier())
    status_call, dossier_call = standin.received("hanoi")
    assert status_call.path == "/motcua/api/hoso" and status_call.body == BODY
    assert dossier_call.path == "/motcua/api/hoso/moi"
    assert orjson.loads(dossier_call.body) == {"Ma": "000.04.01.H26-261125-0031"}


@pytest.mark.parametrize(
    ("answer", "kind", "reason"),
    [
        ({"error_code": "0", "message": "OK", "reference": "R1"}, Delivered, None),
        ({"error_code": 0}, Delivered, None),
        ({"error_code": "-9", "message": "Hệ thống bận"}, TransientFailure,
         "agency error_code -9: 'Hệ thống bận'"),
        ({"error_code": "5", "message": "Sai SĐT 0987654321"}, PermanentFailure,
         "agency error_code 5: 'Sai SĐT 09******21'"),
        ({"message": "no code"}, PermanentFailure, "unreadable answer (HTTP 200, no error_code"),
    ],
)  # fmt: skip
def test_a_json_error_code_decides_beyond_the_status(agency, answer, kind, reason) -> None:
    url, standin = agency
    standin.program("hanoi", Behaviour(body=answer))
    target = options_spec(
        url, response={"error_code": {"field": "error_code", "success": ["0"], "transient": ["-9"]}}
    )
    (outcome,) = deliver_with(target, message())
    assert isinstance(outcome, kind)
    if reason:
        assert outcome.reason.startswith(reason)


def test_already_exists_on_insert_is_retried_once_as_the_declared_update(agency) -> None:
    url, standin = agency
    standin.program(
        "hanoi", Behaviour(body={"error_code": "-2", "message": "Hồ sơ đã tồn tại"}, times=1)
    )
    target = options_spec(
        url,
        url="{endpoint}/them-moi",
        response={
            "error_code": {"success": ["0"]},
            "already_exists": {
                "message_contains": ["đã tồn tại"],
                "retry_as": {"method": "PUT", "url": "{endpoint}/cap-nhat/{payload.dossier_no}"},
            },
        },
    )
    (outcome,) = deliver_with(target, message())
    assert isinstance(outcome, Delivered)
    insert, update = standin.received("hanoi")
    assert (insert.method, insert.path) == ("POST", "/motcua/api/hoso/them-moi")
    assert (update.method, update.path) == (
        "PUT",
        "/motcua/api/hoso/cap-nhat/000.00.12.H26-261125-0001",
    )
    assert update.headers["Idempotency-Key"] == insert.headers["Idempotency-Key"]


def test_an_update_answered_already_exists_is_not_retried_again(agency) -> None:
    url, standin = agency
    standin.program("hanoi", Behaviour(status=409))
    target = options_spec(
        url, response={"already_exists": {"status": [409], "retry_as": {"method": "PUT"}}}
    )
    (outcome,) = deliver_with(target, message())
    assert isinstance(outcome, PermanentFailure) and outcome.reason == "HTTP 409"
    assert len(standin.received("hanoi")) == 2


ALREADY_EXISTS_RULES = {
    "error_code": {"success": ["0"], "transient": ["-9"]},
    "already_exists": {
        "message_contains": ["đã tồn tại"],
        "retry_as": {"method": "PUT", "url": "{endpoint}/cap-nhat/{payload.dossier_no}"},
    },
}


@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [
        # accepted: the text says it existed, the code says it is recorded
        (Behaviour(body={"error_code": "0", "message": "Hồ sơ đã tồn tại, đã ghi nhận"}),
         Delivered),
        # busy: retried later as the same insert, never turned into an update
        (Behaviour(body={"error_code": "-9", "message": "Bận: hồ sơ đã tồn tại trong hàng đợi"}),
         TransientFailure),
        (Behaviour(status=503, body={"error_code": "1", "message": "Hồ sơ đã tồn tại"}),
         TransientFailure),
    ],
    ids=["accepted", "busy-error-code", "http-503"],
)  # fmt: skip
def test_already_exists_text_in_a_success_or_a_transient_answer_does_not_turn_into_an_update(
    agency, behaviour: Behaviour, kind: type
) -> None:
    url, standin = agency
    behaviour.times = 1
    standin.program("hanoi", behaviour)
    target = options_spec(url, url="{endpoint}/them-moi", response=ALREADY_EXISTS_RULES)
    (outcome,) = deliver_with(target, message())
    assert isinstance(outcome, kind)
    (insert,) = standin.received("hanoi")  # no update call
    assert (insert.method, insert.path) == ("POST", "/motcua/api/hoso/them-moi")


def test_already_exists_text_in_a_refusal_still_turns_into_the_update(agency) -> None:
    url, standin = agency
    standin.program(
        "hanoi", Behaviour(body={"error_code": "-2", "message": "Hồ sơ đã tồn tại"}, times=1)
    )
    target = options_spec(url, url="{endpoint}/them-moi", response=ALREADY_EXISTS_RULES)
    (outcome,) = deliver_with(target, message())
    assert isinstance(outcome, Delivered)
    assert [r.method for r in standin.received("hanoi")] == ["POST", "PUT"]


@pytest.mark.parametrize(
    ("behaviour", "kind", "fragment"),
    [
        (Behaviour(act="garbage"), PermanentFailure, "unreadable answer (HTTP 200, not JSON"),
        (Behaviour(act="empty"), Delivered, None),
        (Behaviour(act="close"), TransientFailure, "closed in the middle of the answer"),
        (Behaviour(act="huge", size_mb=100), PermanentFailure, "cap"),
    ],
)
def test_broken_answers_are_classified(agency, behaviour, kind, fragment) -> None:
    url, standin = agency
    standin.program("hanoi", behaviour)
    (outcome,) = deliver_with(options_spec(url), message())
    assert isinstance(outcome, kind)
    if fragment:
        assert fragment in outcome.reason
        assert "001190012345" not in outcome.reason


def test_plain_text_answers_can_be_accepted_when_declared(agency) -> None:
    url, standin = agency
    standin.program("hanoi", Behaviour(act="garbage"))
    (outcome,) = deliver_with(options_spec(url, response={"expect": "any"}), message())
    assert isinstance(outcome, Delivered)


def test_an_unknown_option_stops_the_adapter_naming_it() -> None:
    with pytest.raises(AdapterConfigError, match=r"option 'respnse': unknown option"):
        RestAdapter(options_spec("http://127.0.0.1:9/x", respnse={}))
    with pytest.raises(AdapterConfigError, match=r"option 'tls\.verify': unknown option"):
        RestAdapter(options_spec("https://127.0.0.1:9/x", tls={"verify": False}))


# --- TLS: CA bundle, mutual TLS, no silent way out ------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    d = tmp_path_factory.mktemp("pki")

    def ssl_cmd(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl_cmd("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=Agency test CA")  # fmt: skip
    for name, extra in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        ssl_cmd("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={name}")  # fmt: skip
        (d / f"{name}.ext").write_text(extra + "\n")
        ssl_cmd("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                f"{name}.ext")  # fmt: skip
    return {p.stem + p.suffix: p for p in d.iterdir()}


@pytest.fixture
def tls_agency(pki: dict[str, Path]) -> Iterator[str]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca.pem"]))
    ctx.load_cert_chain(pki["server.pem"], pki["server.key"])
    ctx.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: the agency wants our certificate
    url = f"https://127.0.0.1:{free_port()}/motcua/api/hoso"
    with StandinThread([Endpoint("hanoi", url)], ssl_context=ctx):
        yield url


def test_an_agency_certificate_from_an_unknown_ca_is_not_trusted(tls_agency: str) -> None:
    (outcome,) = deliver_with(options_spec(tls_agency), message())
    assert isinstance(outcome, TransientFailure)
    assert outcome.reason == "TLS failure: self-signed certificate in certificate chain"


def test_mutual_tls_with_the_agencys_ca_and_our_client_certificate(
    tls_agency: str, pki: dict[str, Path]
) -> None:
    tls = {"ca_file": str(pki["ca.pem"])}
    (without_client_cert,) = deliver_with(options_spec(tls_agency, tls=tls), message())
    assert isinstance(without_client_cert, TransientFailure)
    tls.update(client_cert=str(pki["client.pem"]), client_key=str(pki["client.key"]))
    (outcome,) = deliver_with(options_spec(tls_agency, tls=tls), message())
    assert isinstance(outcome, Delivered)


def test_a_tls_file_that_does_not_exist_is_named(tmp_path: Path) -> None:
    with pytest.raises(AdapterConfigError, match=r"option 'tls\.ca_file': .*file not found"):
        RestAdapter(options_spec("https://127.0.0.1:9/x", tls={"ca_file": str(tmp_path / "x")}))


def test_the_standins_receipts_endpoint_answers_with_bodies_over_http(agency) -> None:
    """``GET /_standin/requests?bodies=1`` is what an operator or a test reads from outside."""
    url, _ = agency
    assert isinstance(deliver(spec(url, token="s3cret")), Delivered)
    base = url.split("/motcua")[0]
    with urllib.request.urlopen(f"{base}/_standin/requests?bodies=1", timeout=10) as answer:
        assert answer.status == 200
        doc = json.loads(answer.read())
    (received,) = doc["requests"]
    assert received["headers"]["Idempotency-Key"] == "01a21070-f5a8-745d-80bd-5ae508e1ed3d"
    assert received["target"] == "hanoi"
