"""TLS and client certificates on a real gateway process: a CA, a server certificate and
client certificates made at test time; mTLS, certificates of nobody or of another sender,
and a reverse proxy's client-certificate header from a trusted address and from another.

Loopback has every 127.x address: the test's "proxy" connects from 127.0.0.2, the only
address in gateway_trusted_proxies; anything from 127.0.0.1 is a client, not a proxy."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from tests.integration import senders_file
from tests.integration.certificates import Issued, issue, make_ca
from tests.integration.conftest import BusUnderTest, bus_under_test
from tests.integration.harness import BusProcess, blocking_channel, free_port, wait_until
from tests.integration.store_fixtures import sqlite_url
from tests.integration.test_gateway import STATUS, _declare_topology, message

pytestmark = pytest.mark.integration

HANOI_TOKEN = "hanoi-tls-token"
HCMC_TOKEN = "hcmc-tls-token"  # a sender with a token and no certificate
PROXY = "127.0.0.2"


@dataclass
class Pki:
    ca: Issued
    server: Issued
    portal: Issued  # registered by its subject, no token: the certificate is its identity
    hanoi: Issued  # registered by fingerprint, with a bearer token: it must present both
    stranger: Issued  # from the same CA, registered for nobody
    rogue: Issued  # from another CA


def _senders(pki: Pki) -> str:
    token = "sha256:" + hashlib.sha256(HANOI_TOKEN.encode()).hexdigest()
    hcmc = "sha256:" + hashlib.sha256(HCMC_TOKEN.encode()).hexdigest()
    certificate = '  certificate: { subject: "CN=portal.test,O=dvc-bus tests,C=VN" }'
    return (
        senders_file.HEAD
        + senders_file.portal("auth:", certificate)
        + f"""\
  hanoi:
    agencies: [000.00.00.H26]
    sources: [000.00.00.H26, 000.00.00.H26/*]
    types: [dossier.status_changed]
    auth:
      bearer: [{token}]
      certificate: {{ fingerprint: ["{pki.hanoi.fingerprint}"] }}
  hcmc:
    agencies: [000.00.00.H29]
    sources: [000.00.00.H29]
    types: [dossier.status_changed]
    auth: {{ bearer: [{hcmc}] }}
"""
    )


@dataclass
class TlsGateway:
    bus: BusUnderTest
    port: int
    process: BusProcess
    pki: Pki

    def post(
        self,
        doc: dict[str, Any],
        *,
        cert: Issued | None = None,
        token: str | None = None,
        header: Issued | str | None = None,
        source: str = "127.0.0.1",
    ) -> httpx.Response:
        """POST ``doc`` over TLS from ``source``, presenting ``cert`` in the handshake and
        ``header`` as the proxy's client-certificate header (URL-encoded PEM)."""
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert_file))
        if cert is not None:
            context.load_cert_chain(*cert.files)
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if header is not None:
            pem = header.pem.decode() if isinstance(header, Issued) else header
            headers["X-Client-Cert"] = quote(pem, safe="")
        transport = httpx.HTTPTransport(verify=context, local_address=source)
        with httpx.Client(transport=transport, timeout=30) as client:
            return client.post(
                f"https://127.0.0.1:{self.port}/v1/messages",
                content=orjson.dumps(doc),
                headers=headers,
            )


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    tmp = tmp_path_factory.mktemp("gateway-tls")
    certs = tmp / "certs"
    ca, other = make_ca(certs, "Test CA"), make_ca(certs, "Other CA")
    pki = Pki(
        ca,
        issue(ca, certs, "gateway.test", server=True),
        issue(ca, certs, "portal.test"),
        issue(ca, certs, "hanoi.test"),
        issue(ca, certs, "stranger.test"),
        issue(other, certs, "rogue.test"),
    )
    with bus_under_test(tmp, sqlite_url(tmp)) as bus:
        (tmp / "senders.yaml").write_text(_senders(pki), encoding="utf-8")
        _declare_topology(bus)
        port = free_port()
        proc = bus.process(
            "run", "gateway", "--http-port", str(port),
            DVCBUS_GATEWAY_TLS_CERT=str(pki.server.cert_file),
            DVCBUS_GATEWAY_TLS_KEY=str(pki.server.key_file),
            DVCBUS_GATEWAY_TLS_CLIENT_CA=str(ca.cert_file),
            DVCBUS_GATEWAY_TRUSTED_PROXIES=PROXY,
        )  # fmt: skip
        gw = TlsGateway(bus, port, proc, pki)

        def ready() -> bool:
            try:
                url = f"https://127.0.0.1:{port}/readyz"
                context = ssl.create_default_context(cafile=str(ca.cert_file))
                return httpx.get(url, verify=context, timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        assert wait_until(ready, 30), proc.log_text()
        yield gw


def _sender_of(queue: str, message_id: str) -> str | None:
    """The x-dvcbus-sender of ``message_id`` on ``queue`` (every message stays there)."""
    conn, ch = blocking_channel()
    try:
        while True:
            method, props, _ = ch.basic_get(queue, auto_ack=False)
            if method is None:
                return None
            if props.message_id == message_id:
                return (props.headers or {}).get("x-dvcbus-sender")
    finally:
        conn.close()


def _status() -> dict[str, Any]:
    return message(STATUS)


# --- over the gateway's own TLS ----------------------------------------------------------


def test_a_certificate_registered_by_its_subject_is_the_senders_identity(
    tls_gateway: TlsGateway,
) -> None:
    gw = tls_gateway
    doc = message()
    answer = gw.post(doc, cert=gw.pki.portal)
    assert answer.status_code == 202, answer.text
    assert _sender_of(gw.bus.names.ingress_queue, doc["id"]) == "portal"

    def hop() -> list[Any]:
        return list(gw.bus.store.audit_records(message_ids=[doc["id"]]))

    assert wait_until(lambda: len(hop()) >= 1, 20)
    assert f"certificate {gw.pki.portal.fingerprint}" in hop()[0].detail


def test_a_token_with_its_senders_registered_certificate_is_accepted(
    tls_gateway: TlsGateway,
) -> None:
    gw = tls_gateway
    answer = gw.post(_status(), cert=gw.pki.hanoi, token=HANOI_TOKEN)
    assert answer.status_code == 202, answer.text


def test_a_certificate_registered_for_nobody_is_403(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    answer = gw.post(message(), cert=gw.pki.stranger)
    assert answer.status_code == 403
    assert answer.json()["reason"] == "certificate_not_registered"
    assert f"certificate {gw.pki.stranger.fingerprint}" in answer.json()["detail"]
    assert "not registered for any sender" in answer.json()["detail"]


def test_another_senders_certificate_or_none_is_403_for_a_sender_that_has_one(
    tls_gateway: TlsGateway,
) -> None:
    gw = tls_gateway
    borrowed = gw.post(_status(), cert=gw.pki.portal, token=HANOI_TOKEN)
    assert borrowed.status_code == 403
    assert borrowed.json()["reason"] == "certificate_not_registered"
    assert "is not registered for sender hanoi" in borrowed.json()["detail"]
    bare = gw.post(_status(), token=HANOI_TOKEN)  # its token alone is not enough
    assert bare.status_code == 403
    assert "must present its client certificate" in bare.json()["detail"]
    hcmc = _status()
    hcmc["source"] = "000.00.00.H29"
    mixed = gw.post(hcmc, cert=gw.pki.hanoi, token=HCMC_TOKEN)  # needs none, shows Hà Nội's
    assert mixed.status_code == 403
    assert "is registered for another sender than hcmc" in mixed.json()["detail"]
    assert gw.post(hcmc, token=HCMC_TOKEN).status_code == 202
    assert gw.post(hcmc, cert=gw.pki.stranger, token=HCMC_TOKEN).status_code == 202


def test_a_certificate_from_another_ca_does_not_get_through_the_handshake(
    tls_gateway: TlsGateway,
) -> None:
    gw = tls_gateway
    with pytest.raises(httpx.TransportError):
        gw.post(message(), cert=gw.pki.rogue)


def test_no_certificate_and_no_token_is_401(tls_gateway: TlsGateway) -> None:
    answer = tls_gateway.post(message())
    assert answer.status_code == 401 and answer.json()["reason"] == "unauthenticated"


# --- a reverse proxy's header ------------------------------------------------------------


def test_the_header_from_a_trusted_proxy_names_the_sender(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    doc = message()
    answer = gw.post(doc, header=gw.pki.portal, source=PROXY)
    assert answer.status_code == 202, answer.text
    assert _sender_of(gw.bus.names.ingress_queue, doc["id"]) == "portal"
    with_token = gw.post(_status(), header=gw.pki.hanoi, token=HANOI_TOKEN, source=PROXY)
    assert with_token.status_code == 202, with_token.text


def test_the_header_from_any_other_address_is_ignored(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    alone = gw.post(message(), header=gw.pki.portal)  # a client naming a cert it lacks
    assert alone.status_code == 401
    with_token = gw.post(_status(), header=gw.pki.hanoi, token=HANOI_TOKEN)
    assert with_token.status_code == 403
    assert (
        "X-Client-Cert from 127.0.0.1, not a trusted proxy, is ignored"
        in (with_token.json()["detail"])
    )


def test_a_trusted_proxys_header_is_still_checked_against_the_ca(
    tls_gateway: TlsGateway,
) -> None:
    gw = tls_gateway
    rogue = gw.post(message(), header=gw.pki.rogue, source=PROXY)
    assert rogue.status_code == 403
    assert "does not chain to gateway_tls_client_ca" in rogue.json()["detail"]
    junk = gw.post(message(), header="not a certificate", source=PROXY)
    assert junk.status_code == 403 and "holds no certificate" in junk.json()["detail"]
    stranger = gw.post(message(), header=gw.pki.stranger, source=PROXY)
    assert stranger.status_code == 403
    assert "not registered for any sender" in stranger.json()["detail"]


def test_the_python_client_sends_with_its_certificate(tls_gateway: TlsGateway) -> None:
    from dvcbus_client import GatewayClient

    gw = tls_gateway
    pki = gw.pki
    base = f"https://127.0.0.1:{gw.port}"
    with GatewayClient(base, verify=str(pki.ca.cert_file), cert=pki.portal.files) as client:
        doc = message()
        assert client.send(doc).id == doc["id"]
