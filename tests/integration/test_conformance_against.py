"""`dvcbus adapters test TARGET --against URL`: the safe rows against an agency's own server.

The servers here are plain HTTP servers of our own (not the stand-in), as an agency's
staging system would be: one refuses what it is sent (HTTP 400), one accepts everything.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
import yaml

from bus.contract.rejections import Rejection
from bus.contract.schemas import SchemaRegistry
from bus.kit.staging import AUTH_ROW, BROKEN_DOSSIER_NO, REFUSES_ROW, run_against
from bus.routes import RoutesConfig, load_routes
from tests.integration.harness import ROOT
from tests.integration.test_rest_adapter import pki  # noqa: F401 - the private CA fixture

TOKEN = "staging-token-3f9a1c"


class Agency:
    """A staging server: answers every request with ``status`` and records what it got."""

    def __init__(self, status: int, tls: ssl.SSLContext | None = None) -> None:
        self.status = status
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        agency = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                agency.received.append((self.path, dict(self.headers), body))
                code = "0" if agency.status < 300 else "-1"
                answer = orjson.dumps({"error_code": code, "message": "Dữ liệu không hợp lệ"})
                self.send_response(agency.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/staging/api/events"

    def __enter__(self) -> Agency:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.load()


@pytest.fixture(scope="module")
def routes() -> RoutesConfig:
    return load_routes(ROOT / "routes.yaml")


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DVCBUS_PORTAL_TOKEN", TOKEN)
    return TOKEN


def rows(report: object) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.detail) for c in report.checks}  # type: ignore[attr-defined]


@pytest.fixture
def refusing() -> Iterator[Agency]:
    with Agency(400) as agency:
        yield agency


def test_an_agency_refusing_the_invalid_examples_passes_every_safe_row(
    routes: RoutesConfig, schemas: SchemaRegistry, token: str, refusing: Agency
) -> None:
    report = run_against(routes, "portal", refusing.url, schemas=schemas)
    table = "\n".join(f"{n}: {p}: {d}" for n, (p, d) in rows(report).items())
    assert report.passed, table
    assert {
        "built from its options",
        AUTH_ROW,
        "timeouts configured and honoured",
        REFUSES_ROW,
        "no secret in logs or reasons",
        "calls only the staging endpoint",
    } <= set(rows(report)), table
    skipped = dict(report.skipped)
    assert skipped["TLS handshake with the agency"] == "the endpoint is http: there is no TLS"
    assert "read-only" in skipped["delivers each routed type"]


def test_nothing_valid_is_sent_and_the_real_credentials_are_used(
    routes: RoutesConfig, schemas: SchemaRegistry, token: str, refusing: Agency
) -> None:
    run_against(routes, "portal", refusing.url, schemas=schemas)
    assert refusing.received, "nothing reached the agency"
    for path, headers, body in refusing.received:
        assert path == "/staging/api/events"
        assert headers["Authorization"] == f"Bearer {token}"
        doc = orjson.loads(body)
        assert doc["payload"]["dossier_no"] == BROKEN_DOSSIER_NO
        with pytest.raises(Rejection):
            schemas.validate(doc)  # every message sent was invalid
    types = sorted(orjson.loads(body)["type"] for _, _, body in refusing.received)
    assert types == ["dossier.status_changed", "payment.confirmed"]  # one per routed type


def test_an_agency_accepting_everything_fails_the_refusal_row_by_name(
    routes: RoutesConfig, schemas: SchemaRegistry, token: str
) -> None:
    with Agency(200) as accepting:
        report = run_against(routes, "portal", accepting.url, schemas=schemas)
    assert [c.name for c in report.failed()] == [REFUSES_ROW]
    _passed, detail = rows(report)[REFUSES_ROW]
    assert f"the agency accepted dossier.status_changed with dossier_no {BROKEN_DOSSIER_NO}" in (
        detail
    )


def test_an_agency_refusing_our_credentials_fails_the_authentication_row(
    routes: RoutesConfig, schemas: SchemaRegistry, token: str
) -> None:
    with Agency(401) as locked:
        report = run_against(routes, "portal", locked.url, schemas=schemas)
    failed = {c.name for c in report.failed()}
    assert AUTH_ROW in failed
    assert REFUSES_ROW in failed  # a 401 is not a refusal of the message


def test_a_refused_login_is_an_authentication_failure_not_a_refusal_of_the_message(
    routes: RoutesConfig, schemas: SchemaRegistry, refusing: Agency, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DVCBUS_PORTAL_SYNC_USER", "dongbo")
    monkeypatch.setenv("DVCBUS_PORTAL_SYNC_PASSWORD", "staging-pass-77")
    report = run_against(routes, "portal-sync", refusing.url, schemas=schemas)
    assert {c.name for c in report.failed()} == {AUTH_ROW, REFUSES_ROW}
    assert "session login refused" in rows(report)[AUTH_ROW][1]
    assert "authentication failed, not the message" in rows(report)[REFUSES_ROW][1]


def test_the_command_runs_the_safe_rows_and_lists_what_it_skipped(refusing: Agency) -> None:
    env = {**os.environ, "DVCBUS_PORTAL_TOKEN": TOKEN, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "bus.cli", "adapters", "test", "portal", "--against", refusing.url],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"against {refusing.url}" in done.stdout
    assert "skipped: TLS handshake with the agency: the endpoint is http" in done.stdout
    assert TOKEN not in done.stdout + done.stderr


def test_the_guard_allows_exactly_the_staging_host_and_port() -> None:
    from bus.kit.sandbox import LoopbackGuard

    guard = LoopbackGuard()
    guard.allow("https://10.20.30.40:8443/api", watch=True)
    assert guard.check("10.20.30.40", 8443) is None
    assert guard.check("10.20.30.40", 443) == "10.20.30.40:443"
    assert guard.check("10.20.30.41", 8443) == "10.20.30.41:8443"
    assert guard.check("127.0.0.1", 9) is None  # loopback stays allowed


def _portal_with_tls(tmp_path: Path, tls: dict[str, str] | None) -> RoutesConfig:
    doc = yaml.safe_load((ROOT / "routes.yaml").read_text(encoding="utf-8"))
    if tls is not None:
        doc["targets"]["portal"].setdefault("options", {})["tls"] = tls
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_routes(path)


@pytest.mark.parametrize("trusted", [True, False])
def test_the_tls_row_verifies_the_agencys_certificate(
    tmp_path: Path,
    schemas: SchemaRegistry,
    token: str,
    pki: dict[str, Path],  # noqa: F811 - the imported fixture
    trusted: bool,
) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki["server.pem"], pki["server.key"])
    routes = _portal_with_tls(tmp_path, {"ca_file": str(pki["ca.pem"])} if trusted else None)
    with Agency(400, tls=ctx) as agency:
        report = run_against(routes, "portal", agency.url, schemas=schemas)
    passed, detail = rows(report)["TLS handshake with the agency (certificate verified)"]
    if trusted:
        assert passed and "certificate verified" in detail, detail
        assert report.passed, [c for c in report.checks if not c.passed]
    else:
        assert not passed and "CERTIFICATE_VERIFY_FAILED" in detail, detail
