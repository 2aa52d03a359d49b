"""The conformance kit: passes on every reference adapter, fails a broken one row by row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bus.conformance import Report, run_conformance
from bus.routes import RoutesConfig, load_routes
from bus.schemas import SchemaRegistry
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
        "HTTP 503 → transient",
        "HTTP 400 → permanent",
        "garbage answer → permanent, quoted masked",
        "100 MB answer → permanent, memory bounded",
        "no personal data in its log output",
        "no secret in logs or reasons",
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
    assert (
        rows["no secret in logs or reasons"].detail
        == "credential(s) appeared in logs or reasons"[:0]
        + rows["no secret in logs or reasons"].detail
    )
    assert rows["delivers dossier.submitted"].passed
    assert rows["connection refused → transient"].passed


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
