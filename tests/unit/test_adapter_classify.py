"""The outcome classification rules every adapter kind applies (adapters.classify)."""

import asyncio
from types import SimpleNamespace

import aiohttp
import pytest

from adapters import classify
from adapters.base import PermanentFailure, TransientFailure
from adapters.classify import AnswerTooLarge


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 507])
def test_overload_gateway_and_server_statuses_are_transient(status: int) -> None:
    outcome = classify.for_status(status)
    assert isinstance(outcome, TransientFailure)
    assert outcome.reason == f"HTTP {status}"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422, 100])
def test_refusals_and_surprises_are_permanent(status: int) -> None:
    outcome = classify.for_status(status)
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason == f"HTTP {status}"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_permanent_and_says_where_it_pointed_masked(status: int) -> None:
    outcome = classify.for_status(
        status, location="https://motcua.hanoi.gov.vn/v2/hoso/0987654321?ticket=ST-1#top"
    )
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason == (
        f"HTTP {status}: redirect to 'https://motcua.hanoi.gov.vn/v2/hoso/09******21?…' "
        "not followed (check the target's endpoint)"
    )


def test_a_redirect_without_a_location_says_so_and_keeps_the_agencys_detail() -> None:
    outcome = classify.for_status(302, "'Phiên đã hết hạn'")
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason == (
        "HTTP 302: redirect without a Location, not followed; 'Phiên đã hết hạn'"
    )


@pytest.mark.parametrize(
    "code",
    ["soap:Server", "Server", "SOAP-ENV:Server.Busy", "env:Receiver", "s:Receiver"],
)
def test_soap_server_faults_are_transient(code: str) -> None:
    outcome = classify.soap_fault(code, "Lỗi hệ thống")
    assert isinstance(outcome, TransientFailure)
    assert "Lỗi hệ thống" in outcome.reason


@pytest.mark.parametrize(
    "code",
    ["soap:Client", "Client.Validation", "env:Sender", "soap:VersionMismatch",
     "soap:MustUnderstand", "ns1:InvalidDossier", ""],
)  # fmt: skip
def test_soap_client_and_unknown_faults_are_permanent(code: str) -> None:
    assert isinstance(classify.soap_fault(code, "x"), PermanentFailure)


def test_a_fault_string_is_quoted_masked() -> None:
    outcome = classify.soap_fault("soap:Client", "Số định danh 001190012345 không hợp lệ")
    assert "001190012345" not in outcome.reason
    assert "001*******345" in outcome.reason


def _key(port: int = 8443) -> SimpleNamespace:
    return SimpleNamespace(host="agency.example", port=port, ssl=True)


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (aiohttp.ConnectionTimeoutError(), "connect timeout after 1.5s"),
        (aiohttp.SocketTimeoutError(), "read timeout after 15s"),
        (TimeoutError(), "timeout: no complete answer within 16.5s (connect 1.5s + read 15s)"),
        (
            aiohttp.ClientConnectorError(_key(), ConnectionRefusedError(111, "refused")),
            "connection refused by agency.example:8443",
        ),
        (
            aiohttp.ClientConnectorError(_key(), OSError(113, "No route to host")),
            "cannot connect to agency.example:8443 (No route to host)",
        ),
        (aiohttp.ServerDisconnectedError(), "closed by the agency before its answer"),
        (aiohttp.ClientPayloadError("cut"), "closed in the middle of the answer"),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), "Connection reset by peer"),
    ],
)
def test_transport_failures_are_transient_with_a_plain_reason(
    exc: Exception, fragment: str
) -> None:
    outcome = classify.for_exception(exc, connect_timeout=1.5, read_timeout=15.0)
    assert isinstance(outcome, TransientFailure)
    assert fragment in outcome.reason


def test_an_oversized_answer_is_permanent_and_says_it_was_not_read() -> None:
    outcome = classify.for_exception(AnswerTooLarge(1024), connect_timeout=1, read_timeout=1)
    assert isinstance(outcome, PermanentFailure)
    assert "1024-byte cap" in outcome.reason and "not read further" in outcome.reason


def test_cancellation_is_never_swallowed() -> None:
    with pytest.raises(asyncio.CancelledError):
        classify.for_exception(asyncio.CancelledError(), connect_timeout=1, read_timeout=1)


def test_an_unreadable_answer_is_permanent_quoting_its_first_bytes_masked() -> None:
    body = b"<html>\x00 Loi: khach hang 0987654321, CCCD 001190012345" + b"x" * 5000
    outcome = classify.unreadable("HTTP 200, not JSON", body)
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason.startswith("unreadable answer (HTTP 200, not JSON, 5053 bytes): '<html>")
    assert "0987654321" not in outcome.reason and "001190012345" not in outcome.reason
    assert len(outcome.reason) < 220


def test_a_bug_inside_an_adapter_is_transient_and_reported_without_its_text() -> None:
    try:
        {"SoDinhDanh": 1}["001190012345"]
    except KeyError as exc:
        outcome = classify.for_bug(exc, "rest")
    assert isinstance(outcome, TransientFailure)
    assert outcome.reason.startswith("adapter error in rest: KeyError at test_adapter_classify.py:")
    assert "001190012345" not in outcome.reason
