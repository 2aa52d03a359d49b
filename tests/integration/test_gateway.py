"""The HTTP gateway as a sender meets it: a real `dvcbus run gateway` process on loopback,
the real broker, a SQLite store. No router runs, so what the gateway published waits on the
ingress queue to be counted and read."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pika
import pytest

from bus.broker.connection import ChannelOps, connect
from bus.broker.topology import declare
from bus.contract.ids import uuid7
from tests.integration import senders_file
from tests.integration.conftest import BusUnderTest, bus_under_test
from tests.integration.harness import (
    AMQP_URL,
    BusProcess,
    blocking_channel,
    free_port,
    queue_depth,
    wait_until,
)
from tests.integration.store_fixtures import sqlite_url

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "schemas" / "examples"
TOKENS = {"portal": "portal-token-1", "hanoi": "hanoi-token-1", "slow": "slow-token-1"}
MAX_BODY = 8192


def _hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


SENDERS = (
    senders_file.HEAD
    + senders_file.portal(f"auth: {{ bearer: [{_hash(TOKENS['portal'])}] }}", "rate_limit: 10000/s")
    + """\
  hanoi:
    agencies: [000.00.00.H26]
    sources: [000.00.00.H26, 000.00.00.H26/*]
    types: [dossier.status_changed]
    auth: { bearer: [env:TEST_HANOI_TOKEN] }
"""
    + f"""\
  slow:
    agencies: [000.00.00.H29]
    sources: [000.00.00.H29]
    types: [dossier.status_changed]
    auth: {{ bearer: [{_hash(TOKENS["slow"])}] }}
    rate_limit: 1/m
"""
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class GatewayUnderTest:
    bus: BusUnderTest
    port: int
    process: BusProcess

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        token: str | None = TOKENS["portal"],
        headers: dict[str, str] | None = None,
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            raw = resp.read()
            parsed = json.loads(raw) if raw and raw[:1] in b"{[" else raw.decode()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed)
        finally:
            conn.close()

    def post(self, body: bytes, token: str | None = TOKENS["portal"], **headers: str) -> Answer:
        return self.request("POST", "/v1/messages", body, token, headers)

    @property
    def ingress(self) -> str:
        return self.bus.names.ingress_queue


def _declare_topology(bus: BusUnderTest) -> None:
    async def run() -> None:
        # the administrator declares the test namespace (the bus's router would, as its user)
        conn, _closed = await connect(AMQP_URL, name="test-gateway-setup")
        try:
            await declare(await ChannelOps.open(conn), bus.topology)
        finally:
            conn.close()

    asyncio.run(run())


def start_gateway(bus: BusUnderTest, **env: str) -> GatewayUnderTest:
    port = free_port()
    env = {
        "TEST_HANOI_TOKEN": TOKENS["hanoi"],
        "DVCBUS_GATEWAY_MAX_BODY_BYTES": str(MAX_BODY),
        **env,
    }
    proc = bus.process("run", "gateway", "--http-port", str(port), **env)
    gateway = GatewayUnderTest(bus, port, proc)

    def listening() -> bool:
        try:
            return gateway.request("GET", "/livez", token=None).status == 200
        except OSError:
            return False

    assert wait_until(listening, 30), proc.log_text()
    return gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    """A gateway on a fresh namespace whose topology is declared (no router consumes)."""
    tmp = tmp_path_factory.mktemp("gateway")
    with bus_under_test(tmp, sqlite_url(tmp)) as bus:
        (tmp / "senders.yaml").write_text(SENDERS, encoding="utf-8")
        _declare_topology(bus)
        gw = start_gateway(bus)
        ready = wait_until(lambda: gw.request("GET", "/readyz", token=None).status == 200, 30)
        assert ready, gw.process.log_text()
        yield gw


def message(
    kind: str = "dossier.submitted.v1/valid/citizen-hanoi-online.json", **changes: Any
) -> dict[str, Any]:
    doc = json.loads((EXAMPLES / kind).read_text(encoding="utf-8"))
    doc["id"] = uuid7()
    doc.update(changes)
    return doc


@contextlib.contextmanager
def ingress_unbound(gateway: GatewayUnderTest) -> Iterator[None]:
    """No queue behind the ingress exchange while inside: what the gateway publishes then is
    returned by the broker (mandatory), and must not be answered as held."""
    conn, ch = blocking_channel()
    names = gateway.bus.names
    try:
        ch.queue_unbind(names.ingress_queue, names.ingress_exchange, routing_key="#")
        yield
    finally:
        ch.queue_bind(names.ingress_queue, names.ingress_exchange, routing_key="#")
        conn.close()


def body_of(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


STATUS = "dossier.status_changed.v1/valid/received.json"


def _get_one(queue: str) -> tuple[Any, bytes] | None:
    conn, ch = blocking_channel()
    try:
        method, props, body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            return None
        ch.basic_nack(method.delivery_tag, requeue=True)
        return props, body
    finally:
        conn.close()


def _drain(queue: str) -> None:
    conn, ch = blocking_channel()
    try:
        ch.queue_purge(queue)
    finally:
        conn.close()


# --- who may send ----------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "not-a-token-anyone-has"])
def test_no_token_or_a_wrong_token_is_401_with_www_authenticate(
    gateway: GatewayUnderTest, token: str | None
) -> None:
    answer = gateway.post(body_of(message()), token=token)
    assert answer.status == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.body["reason"] == "unauthenticated"


def test_a_source_the_sender_may_not_claim_is_403_naming_it(gateway: GatewayUnderTest) -> None:
    answer = gateway.post(body_of(message(source="000.00.00.G22/payment")))
    assert answer.status == 403
    assert answer.body["reason"] == "source_not_allowed"
    assert "may not claim source 000.00.00.G22/payment" in answer.body["detail"]


def test_a_type_the_sender_may_not_send_is_403_naming_it(gateway: GatewayUnderTest) -> None:
    doc = message(STATUS)  # a status update of Hà Nội's, posted with the portal's token
    doc["source"] = "000.00.00.G22/portal"
    answer = gateway.post(body_of(doc))
    assert answer.status == 403
    assert answer.body["reason"] == "type_not_allowed"
    assert "may not send dossier.status_changed" in answer.body["detail"]


# --- what may be sent ------------------------------------------------------------------------


def test_a_body_over_the_cap_is_413_unread(gateway: GatewayUnderTest) -> None:
    doc = message()
    doc["payload"]["summary"] = "x" * MAX_BODY
    answer = gateway.post(body_of(doc))
    assert answer.status == 413
    assert answer.body["reason"] == "too_large"


@pytest.mark.parametrize(
    ("body", "reason", "words"),
    [
        (b"{not json", "malformed", "not JSON"),
        (b'{"id": "a", "id": "b"}', "malformed", 'duplicate key "id" at $'),
        (b"[1, 2]", "malformed", "not an object"),
    ],
)
def test_a_body_that_is_not_one_json_object_is_422(
    gateway: GatewayUnderTest, body: bytes, reason: str, words: str
) -> None:
    answer = gateway.post(body)
    assert answer.status == 422
    assert answer.body["reason"] == reason
    assert words in answer.body["detail"]


def test_a_schema_violation_is_422_with_the_exact_json_path(gateway: GatewayUnderTest) -> None:
    doc = message()
    doc["payload"]["applicant"]["id_number"] = "12AB"
    del doc["payload"]["procedure_code"]
    answer = gateway.post(body_of(doc))
    assert answer.status == 422
    assert answer.body["reason"] == "invalid"
    paths = {(e["path"], e["rule"]) for e in answer.body["errors"]}
    assert ("payload.applicant.id_number", "pattern") in paths
    assert ("payload", "required") in paths
    assert "12AB" not in json.dumps(answer.body)  # the value is never quoted


# --- accepted --------------------------------------------------------------------------------


def test_an_accepted_message_is_on_the_ingress_queue_with_its_sender(
    gateway: GatewayUnderTest,
) -> None:
    _drain(gateway.ingress)
    doc = message(STATUS)
    answer = gateway.post(body_of(doc), token=TOKENS["hanoi"])
    assert answer.status == 202, answer.body
    assert answer.body == {"id": doc["id"]}
    assert answer.headers["location"] == f"/v1/messages/{doc['id']}"
    assert queue_depth(gateway.ingress) == 1
    got = _get_one(gateway.ingress)
    assert got is not None
    props, body = got
    assert json.loads(body) == doc
    assert props.headers["x-dvcbus-sender"] == "hanoi"
    assert props.message_id == doc["id"]


def test_the_same_key_and_body_get_the_first_answer_and_one_message(
    gateway: GatewayUnderTest,
) -> None:
    _drain(gateway.ingress)
    key = uuid7()
    body = body_of(message())
    first = gateway.post(body, **{"Idempotency-Key": key})
    again = gateway.post(body, **{"Idempotency-Key": key})
    assert (first.status, again.status) == (202, 202)
    assert again.body == first.body
    assert again.headers["location"] == first.headers["location"]
    assert queue_depth(gateway.ingress) == 1

    other = gateway.post(body_of(message()), **{"Idempotency-Key": key})
    assert other.status == 422
    assert other.body["reason"] == "idempotency_conflict"
    assert queue_depth(gateway.ingress) == 1


def test_a_key_is_the_senders_own(gateway: GatewayUnderTest) -> None:
    key = uuid7()
    portal = gateway.post(body_of(message()), **{"Idempotency-Key": key})
    hanoi = gateway.post(
        body_of(message(STATUS)), token=TOKENS["hanoi"], **{"Idempotency-Key": key}
    )
    assert (portal.status, hanoi.status) == (202, 202)
    assert portal.body != hanoi.body


def test_a_refused_request_does_not_keep_its_key(gateway: GatewayUnderTest) -> None:
    key = uuid7()
    doc = message(source="000.00.00.G22/payment")
    assert gateway.post(body_of(doc), **{"Idempotency-Key": key}).status == 403
    doc["source"] = "000.00.00.G22/portal"
    # another body under the same key: allowed, since the refusal was not remembered
    assert gateway.post(body_of(doc), **{"Idempotency-Key": key}).status == 202


def test_a_message_id_is_one_message(gateway: GatewayUnderTest) -> None:
    doc = message()
    assert gateway.post(body_of(doc)).status == 202
    assert gateway.post(body_of(doc)).status == 202  # a resend: the bus delivers it once
    doc["payload"]["summary"] = "another text"
    answer = gateway.post(body_of(doc))
    assert answer.status == 409
    assert answer.body["reason"] == "id_conflict"


def test_get_answers_the_sender_and_no_one_else(gateway: GatewayUnderTest) -> None:
    doc = message()
    assert gateway.post(body_of(doc)).status == 202
    mine = gateway.request("GET", f"/v1/messages/{doc['id']}")
    assert mine.status == 200
    assert mine.body["id"] == doc["id"]
    assert mine.body["type"] == "dossier.submitted"
    assert mine.body["state"] == "accepted"  # no router runs here
    theirs = gateway.request("GET", f"/v1/messages/{doc['id']}", token=TOKENS["hanoi"])
    assert theirs.status == 404
    assert gateway.request("GET", f"/v1/messages/{uuid7()}").status == 404
    assert gateway.request("GET", f"/v1/messages/{doc['id']}", token=None).status == 401


def test_a_sender_above_its_rate_gets_429_with_retry_after(gateway: GatewayUnderTest) -> None:
    doc = message(STATUS, source="000.00.00.H29")
    doc["payload"]["agency"] = "000.00.00.H29"
    first = gateway.post(body_of(doc), token=TOKENS["slow"])
    second = gateway.post(body_of(message(STATUS)), token=TOKENS["slow"])
    assert first.status != 429
    assert second.status == 429
    assert int(second.headers["retry-after"]) >= 1


def test_a_sender_reading_statuses_above_its_rate_gets_429_with_retry_after(
    gateway: GatewayUnderTest,
) -> None:
    path = f"/v1/messages/{uuid7()}"
    first = gateway.request("GET", path, token=TOKENS["slow"])
    second = gateway.request("GET", path, token=TOKENS["slow"])
    assert first.status == 404  # within its rate: no such message of its
    assert second.status == 429
    assert second.body["reason"] == "rate_limited"
    assert int(second.headers["retry-after"]) >= 1
    metrics = gateway.request("GET", "/metrics", token=None).body
    assert 'dvcbus_gateway_reads_total{outcome="rate_limited"}' in metrics
    assert 'dvcbus_gateway_reads_total{outcome="not_found"}' in metrics
    assert "dvcbus_gateway_confirms_pending " in metrics


def test_every_answer_is_counted_and_leaves_a_hop_in_the_audit_trail(
    gateway: GatewayUnderTest,
) -> None:
    doc = message()
    assert gateway.post(body_of(doc), **{"Idempotency-Key": "audit-key-1"}).status == 202
    assert gateway.post(body_of(doc), token="wrong").status == 401
    metrics = gateway.request("GET", "/metrics", token=None).body
    assert 'dvcbus_gateway_requests_total{outcome="accepted",reason=""}' in metrics
    assert 'dvcbus_gateway_requests_total{outcome="refused",reason="unauthenticated"}' in metrics
    assert "dvcbus_gateway_request_duration_seconds_bucket" in metrics

    store = gateway.bus.store
    found: list[Any] = []

    def recorded() -> bool:
        found[:] = [r for r in store.audit_records(message_ids=[doc["id"]]) if r.stage == "gateway"]
        return len(found) >= 1

    assert wait_until(recorded, 20)
    hop = found[0]
    assert hop.event == "accepted"
    assert hop.body_sha256 == hashlib.sha256(body_of(doc)).hexdigest()
    assert "sender portal" in hop.detail and "idempotency key audit-key-1" in hop.detail


# --- the broker cannot take it ---------------------------------------------------------------


def test_an_unreachable_broker_is_503_with_retry_after(gateway: GatewayUnderTest) -> None:
    closed = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    cut_off = start_gateway(gateway.bus, DVCBUS_AMQP_URL=closed)
    try:
        assert cut_off.request("GET", "/readyz", token=None).status == 503
        answer = cut_off.post(body_of(message()))
        assert answer.status == 503
        assert answer.body["reason"] == "broker_unavailable"
        assert int(answer.headers["retry-after"]) >= 1
    finally:
        cut_off.process.terminate()


def test_a_type_with_no_queue_behind_the_exchange_is_503_not_lost(
    gateway: GatewayUnderTest,
) -> None:
    with ingress_unbound(gateway):
        answer = gateway.post(body_of(message()))
    assert answer.status == 503, answer.body
    assert "no queue" in answer.body["detail"]
    assert answer.headers["retry-after"]


def test_the_gateway_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with bus_under_test(tmp_path, sqlite_url(tmp_path)) as bus:
        (tmp_path / "senders.yaml").write_text(SENDERS, encoding="utf-8")
        _declare_topology(bus)
        gw = start_gateway(bus)
        assert wait_until(lambda: gw.request("GET", "/readyz", token=None).status == 200, 30)
        assert gw.post(body_of(message())).status == 202
        started = time.monotonic()
        assert gw.process.terminate() == 0
        assert time.monotonic() - started < 15
        assert "gateway.listening" in gw.process.log_text()


def test_one_key_sent_at_once_many_times_publishes_once(gateway: GatewayUnderTest) -> None:
    _drain(gateway.ingress)
    key, body = uuid7(), body_of(message())
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda _: gateway.post(body, **{"Idempotency-Key": key}), range(16))
        )
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {202, 409}, statuses
    assert statuses[202] >= 1
    assert {a.body["id"] for a in answers if a.status == 202} == {json.loads(body)["id"]}
    assert queue_depth(gateway.ingress) == 1


def test_concurrent_posts_are_confirmed_together(
    gateway: GatewayUnderTest, figures: Callable[[str, dict[str, Any]], None]
) -> None:
    """Many requests in flight at once each get their own confirm: all 202, all on the queue."""
    _drain(gateway.ingress)
    count, concurrency = 600, 32
    bodies = [body_of(message()) for _ in range(count)]
    url = f"http://127.0.0.1:{gateway.port}/v1/messages"
    headers = {"Authorization": f"Bearer {TOKENS['portal']}", "Content-Type": "application/json"}

    async def run() -> tuple[list[int], list[float], float]:
        statuses: list[int] = []
        latencies: list[float] = []
        space = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession() as session:

            async def one(body: bytes) -> None:
                async with space:
                    started = time.perf_counter()
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        statuses.append(resp.status)
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(one(b) for b in bodies))
            return statuses, latencies, time.perf_counter() - started

    statuses, latencies, elapsed = asyncio.run(run())
    latencies.sort()
    figures(
        "gateway_concurrent_posts",
        {
            "requests": count,
            "concurrency": concurrency,
            "requests_per_s": round(count / elapsed),
            "p50_ms": round(latencies[count // 2] * 1000, 1),
            "p99_ms": round(latencies[int(count * 0.99)] * 1000, 1),
        },
    )
    assert Counter(statuses) == {202: count}
    assert wait_until(lambda: queue_depth(gateway.ingress) == count, 10)


# --- with the whole bus ----------------------------------------------------------------------

CASHIER = f"""\
  cashier:                      # may claim a source routes.yaml does not let pay
    agencies: [000.00.00.G22]
    sources: [000.00.00.G22/cashier]
    types: [payment.confirmed]
    auth: {{ bearer: [{_hash("cashier-token-1")}] }}
"""


def test_get_follows_a_message_through_the_bus(tmp_path: Path) -> None:
    # The gateway runs as the namespace's gateway user: the router trusts its header.
    with bus_under_test(tmp_path, sqlite_url(tmp_path)) as bus:
        (tmp_path / "senders.yaml").write_text(SENDERS + CASHIER, encoding="utf-8")
        bus.start_router()
        bus.start_dispatcher()
        gw = start_gateway(bus)
        assert wait_until(lambda: gw.request("GET", "/readyz", token=None).status == 200, 30)

        dossier = message()
        assert gw.post(body_of(dossier)).status == 202
        payment = message("payment.confirmed.v1/valid/success-vcb.json")
        payment["source"] = "000.00.00.G22/cashier"
        assert gw.post(body_of(payment), token="cashier-token-1").status == 202

        def state(doc: dict[str, Any], token: str, wanted: str) -> dict[str, Any]:
            seen: dict[str, Any] = {}

            def reached() -> bool:
                seen.update(gw.request("GET", f"/v1/messages/{doc['id']}", token=token).body)
                return seen.get("state") == wanted

            assert wait_until(reached, 30, 0.25), seen
            return seen

        delivered = state(dossier, TOKENS["portal"], "delivered")
        assert delivered["router"]["event"] == "routed"
        assert delivered["targets"]
        assert all(t["state"] == "delivered" for t in delivered["targets"].values())

        refused = state(payment, "cashier-token-1", "dead_lettered")
        assert refused["router"]["reason"] == "unauthorised"
        assert "000.00.00.G22/cashier" in refused["router"]["detail"]


_ = pika  # the harness's channels are pika's


def test_a_lost_channel_is_503_and_the_gateway_comes_back(gateway: GatewayUnderTest) -> None:
    """The ingress exchange deleted under a running gateway: the broker closes its channel;
    requests get 503 until the exchange is back, then 202 again, without a restart."""
    names = gateway.bus.names
    conn, ch = blocking_channel()
    try:
        ch.exchange_delete(names.ingress_exchange)
    finally:
        conn.close()
    try:
        answer = gateway.post(body_of(message()))
        assert answer.status == 503
        assert answer.body["reason"] == "broker_unavailable"
        assert wait_until(lambda: gateway.request("GET", "/readyz", token=None).status == 503, 10)
    finally:
        _declare_topology(gateway.bus)
    assert wait_until(lambda: gateway.request("GET", "/readyz", token=None).status == 200, 20)
    assert gateway.post(body_of(message())).status == 202
    assert "gateway.channel_lost" in gateway.process.log_text()


def test_a_chunked_body_over_the_cap_is_413_without_reading_it_all(
    gateway: GatewayUnderTest,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {TOKENS['portal']}", "Transfer-Encoding": "chunked"}
        conn.request(
            "POST", "/v1/messages", body=iter([b"{" + b" " * 5000] * 3), headers=headers,
            encode_chunked=True,
        )  # fmt: skip
        resp = conn.getresponse()
        assert resp.status == 413
        assert json.loads(resp.read())["reason"] == "too_large"
    finally:
        conn.close()


def test_a_body_that_comes_too_slowly_is_408(gateway: GatewayUnderTest) -> None:
    slow = start_gateway(gateway.bus, DVCBUS_GATEWAY_BODY_TIMEOUT="0.5")
    try:
        with socket.create_connection(("127.0.0.1", slow.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
                + f"Authorization: Bearer {TOKENS['portal']}\r\n\r\n".encode()
                + b'{"id": '
            )
            answer = sock.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 408"), answer
        assert '"reason":"slow_body"' in answer
    finally:
        slow.process.terminate()


# --- a full ingress queue --------------------------------------------------------------------


def _policy(name: str, body: dict[str, Any] | None) -> None:
    """PUT (or DELETE, with no body) a policy on the default vhost through the management API."""
    import base64
    import urllib.request

    url = f"http://127.0.0.1:15672/api/policies/%2F/{name}"
    headers = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    req = urllib.request.Request(
        url, data=data, method="PUT" if body else "DELETE", headers=headers
    )
    urllib.request.urlopen(req, timeout=10).close()


def test_a_full_ingress_queue_is_503_with_retry_after_and_nothing_is_lost_once_it_drains(
    tmp_path: Path,
) -> None:
    """The ingress queue at its max-length (a policy, overflow reject-publish): the broker
    nacks the publish, the sender hears 503 with Retry-After and nothing is on the queue for
    it; every 202 is. Once a router drains the queue, the refused request sent again with
    the same key is accepted, and every accepted message is delivered."""
    cap = 3
    with bus_under_test(tmp_path, sqlite_url(tmp_path)) as bus:
        (tmp_path / "senders.yaml").write_text(SENDERS, encoding="utf-8")
        _declare_topology(bus)
        gw = start_gateway(bus)
        assert wait_until(lambda: gw.request("GET", "/readyz", token=None).status == 200, 30)
        policy = f"{bus.names.namespace}-full"
        _policy(
            policy,
            {
                "pattern": f"^{re.escape(bus.names.ingress_queue)}$",
                "apply-to": "queues",
                "definition": {"max-length": cap, "overflow": "reject-publish"},
            },
        )
        try:
            accepted: list[str] = []
            refused: tuple[bytes, str, Answer] | None = None
            for _ in range(40):  # the policy takes a moment to apply
                body, key = body_of(message()), uuid7()
                answer = gw.post(body, **{"Idempotency-Key": key})
                if answer.status == 503:
                    refused = (body, key, answer)
                    break
                assert answer.status == 202, answer.body
                accepted.append(answer.body["id"])
                time.sleep(0.05)
            assert refused is not None, f"no 503 after {len(accepted)} accepted"
            body, key, answer = refused
            assert answer.body["reason"] == "broker_unavailable"
            assert "ingress queue full" in answer.body["detail"]
            assert int(answer.headers["retry-after"]) >= 1
            assert len(accepted) >= cap
            assert queue_depth(gw.ingress) == len(accepted)  # every 202, and only those
            # the broker answers (a nack is a confirm): every gateway feeds this one queue,
            # so being full is no reason to take this one out of a load balancer
            assert gw.request("GET", "/readyz", token=None).status == 200

            bus.start_router()
            bus.start_dispatcher()
            assert wait_until(lambda: queue_depth(gw.ingress) == 0, 30)
            again = gw.post(body, **{"Idempotency-Key": key})
            assert again.status == 202, again.body
            accepted.append(again.body["id"])
            assert again.body["id"] == json.loads(body)["id"]
        finally:
            _policy(policy, None)

        def delivered(mid: str) -> bool:
            return gw.request("GET", f"/v1/messages/{mid}").body.get("state") == "delivered"

        for mid in accepted:
            assert wait_until(lambda m=mid: delivered(m), 30, 0.25), mid
