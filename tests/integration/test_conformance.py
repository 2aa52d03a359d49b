"""The conformance kit: passes on every reference adapter, fails a broken one row by row."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import etree

from adapters.kinds.onestop import OneStopSoapAdapter
from adapters.kinds.rest import RestAdapter
from adapters.kinds.soap import BUS_HEADERS, SOAP11
from bus.contract.schemas import SchemaRegistry
from bus.kit.conformance import Report, run_conformance
from bus.routes import RoutesConfig, load_routes
from tests.integration.harness import ROOT

# A plug-in written the wrong way on purpose: logs the message (personal data) and its token,
# sends no Idempotency-Key, and calls a 503 permanent.
BROKEN_MODULE = """
import logging

import aiohttp

from adapters.base import Adapter, Delivered, PermanentFailure, TransientFailure

log = logging.getLogger("broken_adapter")


class BrokenAdapter(Adapter):
    kind = "broken"

    async def start(self):
        timeout = aiohttp.ClientTimeout(total=self.target.read_timeout)
        self.session = aiohttp.ClientSession(timeout=timeout)

    async def close(self):
        await self.session.close()

    async def deliver(self, message):
        log.info("sending %s with token %s", message.body.decode(), self.target.credentials)
        try:
            async with self.session.post(self.target.endpoint, data=message.body) as response:
                await response.read()
                if response.status < 300:
                    return Delivered()
                return PermanentFailure("agency said no")
        except Exception as exc:
            return TransientFailure(str(exc))
"""


@pytest.fixture(scope="module")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.load()


@pytest.fixture(scope="module")
def routes() -> RoutesConfig:
    return load_routes(ROOT / "routes.yaml")


def table(report: Report) -> str:
    return "\n".join(
        f"{c.name}: {'PASS' if c.passed else 'FAIL'}: {c.detail}" for c in report.checks
    )


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("portal-sync", "portal-sync"),
        ("danang", "onestop-soap"),
        ("hanoi-payments", "payment-confirmation"),
        ("portal", "rest"),
        ("justice-archive", "rest"),
    ],
)
def test_the_kit_passes_on_every_reference_adapter_and_generic_target(
    routes: RoutesConfig, schemas: SchemaRegistry, target: str, kind: str
) -> None:
    report = run_conformance(routes, target, schemas=schemas, timeout_check=0.5)
    assert report.kind == kind
    assert report.passed, table(report)
    names = {c.name for c in report.checks}
    for expected in (
        "sends the message id as Idempotency-Key",
        "sends the W3C traceparent",
        "slow endpoint cut at the read timeout (0.5s) → transient",
        "slow-drip answer cut at connect + read (1.5s) → transient",
        "HTTP 503 → transient",
        "HTTP 400 → permanent",
        "garbage answer → permanent, quoted masked",
        "100 MB answer → permanent, memory bounded",
        "redirect (HTTP 302) → permanent, not followed",
        "no personal data in its log output",
        "no secret in logs or reasons",
        "calls only the stand-in (loopback)",
    ):
        assert expected in names
    if kind == "onestop-soap":
        assert {"SOAP Server fault → transient", "SOAP Client fault → permanent",
                "sends the message id as a SOAP header"} <= names  # fmt: skip


def test_the_kit_passes_on_the_generic_soap_kind(tmp_path: Path, schemas: SchemaRegistry) -> None:
    doc = yaml.safe_load((ROOT / "routes.yaml").read_text(encoding="utf-8"))
    doc["targets"]["danang"].update(
        adapter="soap",
        options={
            "wsdl": "motcua-lienthong.wsdl",
            "operations": {
                "payment.confirmed": {
                    "operation": "BaoCaoThanhToan",
                    "parameters": {"ThanhToan": {
                        "MaThamChieu": "payload.reference", "MaHoSo": "payload.dossier_no",
                        "MaDonVi": "payload.agency", "MaGiaoDich": "payload.transaction_id",
                        "MaDoiTac": "payload.partner_code", "MaNganHang": "payload.bank_code",
                        "SoTien": "payload.amount", "LoaiTienTe": "payload.currency",
                        "ThoiGianThanhToan": {"from": "payload.paid_at",
                                              "format": "yyyyMMddHHmmss"},
                        "KetQuaThanhToan": "payload.result", "MaLoiThanhToan": "payload.error_code",
                        "ChuoiKiemTra": "payload.checksum",
                    }},
                }
            },
        },
    )  # fmt: skip
    # Only payments are routed to this variant of the target.
    for route in doc["routes"]:
        if route["name"] == "danang":
            route["match"]["type"] = "payment.confirmed"
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    report = run_conformance(load_routes(path), "danang", schemas=schemas, timeout_check=0.5)
    assert report.kind == "soap"
    assert report.passed, table(report)


def test_the_kit_fails_a_broken_adapter_with_a_clear_row_per_fault(
    tmp_path: Path, routes: RoutesConfig, schemas: SchemaRegistry
) -> None:
    (tmp_path / "broken_adapter.py").write_text(BROKEN_MODULE, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        from broken_adapter import BrokenAdapter  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    report = run_conformance(
        routes, "danang", schemas=schemas, adapter_cls=BrokenAdapter, timeout_check=0.5
    )
    rows = {c.name: c for c in report.checks}
    assert not report.passed
    failed = {c.name for c in report.failed()}
    assert failed == {
        "sends the message id as Idempotency-Key",
        "sends the W3C traceparent",
        "HTTP 503 → transient",
        "no personal data in its log output",
        "no secret in logs or reasons",
        # aiohttp's default: it follows the redirect (a POST resent as a GET)
        "redirect (HTTP 302) → permanent, not followed",
        # it reads whatever comes: garbage and hostile answers count as delivered
        "garbage answer → permanent, quoted masked",
        "billion-laughs XML → permanent",
        "external-entity XML → permanent",
        "100 MB answer → permanent, memory bounded",
    }, table(report)
    assert rows["HTTP 503 → transient"].detail == "permanent: agency said no"
    assert rows["no personal data in its log output"].detail.startswith(
        "log output shows personal data: "
    )
    assert "id_number" in rows["no personal data in its log output"].detail
    assert "001190012345" not in table(report)  # the table itself never repeats them
    # It logs the target's whole credentials dict: both canaries are named (never shown).
    assert rows["no secret in logs or reasons"].detail == (
        "credential(s) password, username appeared in logs or reasons"
    )
    assert "canary-" not in table(report)
    # It followed the redirect: the answer to the GET it turned the POST into passed for a
    # delivery, the false success the row exists to catch.
    assert rows["redirect (HTTP 302) → permanent, not followed"].detail == "delivered"
    assert rows["delivers dossier.submitted"].passed
    assert rows["connection refused → transient"].passed


class KeyOutsideTheHeader(OneStopSoapAdapter):
    """Writes the bus's IdempotencyKey element into the SOAP Body instead of the Header."""

    def build(self, message: Any) -> Any:
        call, body, headers = super().build(message)
        root = etree.fromstring(body)
        key = root.find(f"{{{SOAP11}}}Header/{{{BUS_HEADERS}}}IdempotencyKey")
        root.find(f"{{{SOAP11}}}Header").remove(key)
        root.find(f"{{{SOAP11}}}Body").append(key)
        return call, etree.tostring(root, xml_declaration=True, encoding="utf-8"), headers


def test_the_soap_header_check_wants_the_key_in_the_header_not_anywhere_in_the_body(
    routes: RoutesConfig, schemas: SchemaRegistry
) -> None:
    report = run_conformance(
        routes, "danang", schemas=schemas, adapter_cls=KeyOutsideTheHeader, timeout_check=0.5
    )
    assert {c.name for c in report.failed()} == {"sends the message id as a SOAP header"}, table(
        report
    )
    row = next(c for c in report.checks if c.name == "sends the message id as a SOAP header")
    wanted = r"no Header IdempotencyKey equal to the message id for \d+ message\(s\), e\.g\. "
    assert re.match(wanted, row.detail), row.detail


def _routes_with(tmp_path: Path, target: str, **changes: Any) -> RoutesConfig:
    doc = yaml.safe_load((ROOT / "routes.yaml").read_text(encoding="utf-8"))
    doc["targets"][target].update(changes)
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_routes(path)


@pytest.mark.parametrize(
    ("auth", "option"),
    [
        ({"kind": "oauth2", "token_url": "https://sso.dichvucong.gov.vn/oauth2/token"},
         "auth.token_url https://sso.dichvucong.gov.vn/oauth2/token"),
        ({"kind": "session", "login_url": "https://sso.dichvucong.gov.vn/dang-nhap"},
         "auth.login_url https://sso.dichvucong.gov.vn/dang-nhap"),
    ],
)  # fmt: skip
def test_token_and_login_urls_on_another_host_are_moved_to_the_stand_in(
    tmp_path: Path, schemas: SchemaRegistry, auth: dict[str, str], option: str
) -> None:
    routes = _routes_with(
        tmp_path,
        "portal",
        credentials={"client_id": "env:SSO_ID", "client_secret": "env:SSO_SECRET",
                     "username": "env:SSO_USER", "password": "env:SSO_PASSWORD"},
        options={"auth": auth},
    )  # fmt: skip
    report = run_conformance(routes, "portal", schemas=schemas, timeout_check=0.5)
    # Every delivery needed a token or session from the moved URL: the stand-in refuses
    # calls without one, and the kit refuses any connection off loopback.
    assert report.passed, table(report)
    row = report.checks[-1]
    assert row.name == "calls only the stand-in (loopback)"
    assert row.detail == (
        f"every call went to the stand-in on 127.0.0.1; moved there from other hosts: {option}"
    )


def test_a_url_whose_host_comes_from_the_message_is_refused_before_anything_runs(
    tmp_path: Path, schemas: SchemaRegistry
) -> None:
    routes = _routes_with(
        tmp_path, "hanoi", options={"url": "https://{payload.receiving_agency}.gov.vn/hoso"}
    )
    report = run_conformance(routes, "hanoi", schemas=schemas, timeout_check=0.5)
    assert not report.passed
    assert [(c.name, c.passed) for c in report.checks] == [
        ("adapter kind is installed", True),
        ("calls only the stand-in (loopback)", False),
    ]
    assert report.checks[-1].detail == (
        "options.url 'https://{payload.receiving_agency}.gov.vn/hoso': its host comes from the "
        "message, so the kit cannot keep the call on the stand-in; nothing was run (the kit "
        "never calls a real server)"
    )


class PhonesHome(RestAdapter):
    """Calls addresses of its own, in code (not in options), before each delivery."""

    async def deliver(self, message: Any) -> Any:
        for url in ("http://192.0.2.10/thu-thap", "https://telemetry.invalid/v1"):
            with contextlib.suppress(Exception):
                await self.http.request("GET", url)
        return await super().deliver(message)


def test_an_adapter_calling_a_real_host_is_refused_and_fails_the_loopback_row(
    routes: RoutesConfig, schemas: SchemaRegistry
) -> None:
    report = run_conformance(
        routes, "portal", schemas=schemas, adapter_cls=PhonesHome, timeout_check=0.5
    )
    assert {c.name for c in report.failed()} == {"calls only the stand-in (loopback)"}, table(
        report
    )
    assert report.checks[-1].detail == (
        "tried to reach 192.0.2.10:80, telemetry.invalid:443: refused by the kit (it never "
        "calls a real server)"
    )


def _plugin_dir(tmp_path: Path) -> Path:
    """A directory that makes ``broken`` an installed kind for a process that has it on its path.

    Entry points are read from ``*.dist-info`` on sys.path: exactly what pip would install.
    """
    site = tmp_path / "site"
    info = site / "dvcbus_adapter_broken-0.0.1.dist-info"
    info.mkdir(parents=True)
    (site / "broken_adapter.py").write_text(BROKEN_MODULE, encoding="utf-8")
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: dvcbus-adapter-broken\nVersion: 0.0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[dvcbus.adapters]\nbroken = broken_adapter:BrokenAdapter\n", encoding="utf-8"
    )
    return site


def dvcbus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bus.cli", *args],
        env={**env, "COLUMNS": "200"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_prints_the_table_and_exits_by_the_verdict(tmp_path: Path) -> None:
    site = _plugin_dir(tmp_path)
    doc: dict[str, Any] = yaml.safe_load((ROOT / "routes.yaml").read_text(encoding="utf-8"))
    doc["targets"]["hanoi"]["adapter"] = "broken"
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))

    listed = dvcbus("adapters", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if " broken " in ln)
    assert "plug-in" in line and "dvcbus-adapter-broken" in line and "0.0.1" in line

    good = dvcbus(
        "adapters", "test", "danang", "--routes", str(routes_file), "--timeout", "0.5", env=env
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Conformance of target danang (adapter onestop-soap)" in good.stdout
    assert "FAIL" not in good.stdout and "checks passed" in good.stdout

    bad = dvcbus(
        "adapters", "test", "hanoi", "--routes", str(routes_file), "--timeout", "0.5", env=env
    )
    assert bad.returncode == 1
    row = next(ln for ln in bad.stdout.splitlines() if "HTTP 503 → transient" in ln)
    assert "FAIL" in row and "permanent: agency said no" in row
    assert "no personal data in its log output" in bad.stderr
    assert "001190012345" not in bad.stdout + bad.stderr
