"""dvcbus_client's own rules, without a gateway: what is retried, how long it waits, and that
an agency's system importing it gets nothing of the bus."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dvcbus_client import GatewayClient, GatewayUnavailable, Refused
from dvcbus_client.amqp import _encode


def client(handler, waits: list[float], **kwargs) -> GatewayClient:
    return GatewayClient(
        "http://gw.test", "t", transport=httpx.MockTransport(handler), sleep=waits.append, **kwargs
    )


def test_importing_the_client_imports_nothing_of_the_bus() -> None:
    code = (
        "import sys, dvcbus_client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bus', 'adapters')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_client_imports_only_the_standard_library_httpx_and_kombu() -> None:
    """Every import statement, function-local ones too: an agency installs these alone."""
    allowed = {"httpx", "kombu", "amqp", "dvcbus_client", "__future__"}
    allowed |= set(sys.stdlib_module_names)
    found = set()
    for path in (Path(__file__).resolve().parents[2] / "dvcbus_client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    assert found - allowed == set()
    assert {"httpx", "kombu"} <= found


def test_no_answer_and_no_retry_after_back_off_capped_with_the_same_key_and_body() -> None:
    seen: list[tuple[str | None, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("Idempotency-Key"), request.content))
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(seen) < 4:
            return httpx.Response(503, json={"reason": "broker_unavailable", "detail": "down"})
        return httpx.Response(202, json={"id": "m1"}, headers={"Location": "/v1/messages/m1"})

    waits: list[float] = []
    accepted = client(handler, waits, backoff=1.0, max_wait=3.0).send({"id": "m1", "é": 1})
    assert (accepted.id, accepted.attempts) == ("m1", 4)
    assert waits == [1.0, 2.0, 3.0]  # 1, 2, then 4 capped at max_wait
    assert len({key for key, _ in seen}) == 1 and len({body for _, body in seen}) == 1
    assert seen[0][1] == '{"id":"m1","é":1}'.encode()


def test_retry_after_is_honoured_for_429_and_in_flight_but_capped() -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "7"}, json={"reason": "rate_limited"}),
        httpx.Response(409, headers={"Retry-After": "1"}, json={"reason": "in_flight"}),
        httpx.Response(503, headers={"Retry-After": "600"}, json={"reason": "broker_unavailable"}),
    ]
    waits: list[float] = []
    with pytest.raises(GatewayUnavailable) as gave_up:
        client(lambda r: answers.pop(0), waits, attempts=3, max_wait=60).send(b"{}")
    assert waits == [7.0, 1.0]
    assert gave_up.value.last.startswith("503 broker_unavailable")


def test_a_409_id_conflict_is_a_refusal_not_a_retry() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"reason": "id_conflict", "detail": "give each its id"})

    waits: list[float] = []
    with pytest.raises(Refused) as refused:
        client(handler, waits).send(b"{}", idempotency_key="k1")
    assert (refused.value.status, refused.value.reason) == (409, "id_conflict")
    assert refused.value.idempotency_key == "k1" and waits == []


def test_an_amqp_message_needs_its_id_and_type() -> None:
    _body, message_id, type_ = _encode(b'{"id": "m1", "type": "dossier.submitted"}')
    assert (message_id, type_) == ("m1", "dossier.submitted")
    with pytest.raises(ValueError, match="string id and type"):
        _encode({"id": "m1"})


@pytest.mark.parametrize("status", [408, 500, 502, 504])
def test_a_slow_body_or_a_server_error_is_retried_with_the_same_key(status: int) -> None:
    keys: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        if len(keys) == 1:
            return httpx.Response(status, text="<html>bad gateway</html>")
        return httpx.Response(202, json={"id": "m1"})

    waits: list[float] = []
    assert client(handler, waits).send(b"{}").attempts == 2
    assert len(keys) == 2 and keys[0] == keys[1] and waits == [0.5]
