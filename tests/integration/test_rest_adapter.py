"""The generic REST kind against a real HTTP stand-in: body, headers, timeouts, classification."""

import asyncio

import orjson
import pytest

from adapters.base import Delivered, PermanentFailure, TargetSpec, TransientFailure
from adapters.rest import RestAdapter
from bus.envelope import Message
from bus.standin import Behaviour, Endpoint, StandinThread
from tests.integration.harness import free_port

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


def test_a_slow_agency_is_cut_at_the_read_timeout_as_transient(agency) -> None:
    url, standin = agency
    standin.program("hanoi", Behaviour(delay=3.0))
    outcome = deliver(spec(url, read_timeout=0.5))
    assert isinstance(outcome, TransientFailure)
    assert "timeout" in outcome.reason


def test_connection_refused_is_transient() -> None:
    outcome = deliver(spec(f"http://127.0.0.1:{free_port()}/nobody-home"))
    assert isinstance(outcome, TransientFailure)
    assert "connection failed" in outcome.reason
