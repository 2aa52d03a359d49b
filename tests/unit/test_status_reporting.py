"""A system reports statuses only on its own agency's dossiers, or those it is delegated for
(bus/routing/reporting.py), checked by the router with the sender's identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bus.contract.rejections import Reason
from bus.contract.schemas import SchemaRegistry
from bus.ingress.senders import check_senders, load_senders
from bus.routes import RoutingTable, load_routes
from bus.routes.agencies import AgencyRegistry
from bus.routing.identity import Identities
from bus.routing.pipeline import Forward, Park, RouterPipeline
from bus.settings import PROJECT_ROOT
from tests.integration import senders_file
from tests.unit.routes_fixtures.fake_units import FakeUnits
from tests.unit.test_router_pipeline import MAX_BYTES, ROUTES, STATUS

SENDERS = (
    senders_file.HEAD
    + senders_file.hanoi_igate("sender-hanoi")
    + """\
  hcmc:
    agencies: [000.00.00.H29]
    sources: [000.00.00.H29, 000.00.00.H29/*]
    types: [dossier.status_changed]
    amqp_user: sender-hcmc
  shared-igate:
    agencies: [000.00.00.H99]
    sources: [000.00.00.H99, 000.00.00.H99/*]
    types: [dossier.status_changed]
    amqp_user: sender-shared
    delegated_for: ["04", "*.H08"]
"""
)


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> Identities:
    path = tmp_path_factory.mktemp("senders") / "senders.yaml"
    path.write_text(SENDERS, encoding="utf-8")
    return Identities(load_senders(path), "bus-gateway", "bus-cli")


def pipeline(tmp_path: Path, recorded: dict[str, str] | None = None) -> RouterPipeline:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES, encoding="utf-8")
    agencies = AgencyRegistry.load(PROJECT_ROOT / "agencies.yaml")
    table = RoutingTable(load_routes(path), FakeUnits(), agencies=agencies)
    lookup = recorded.get if recorded is not None else None
    return RouterPipeline(SchemaRegistry.load(), table, MAX_BYTES, lookup)


def status(dossier_no: str, agency: str, source: str) -> bytes:
    doc: dict[str, Any] = orjson.loads(STATUS.read_bytes())
    doc["source"], doc["correlation_id"] = source, dossier_no
    doc["payload"].update(dossier_no=dossier_no, agency=agency)
    return orjson.dumps(doc)


def test_a_system_reports_on_its_own_agencys_dossier(tmp_path: Path, identities) -> None:
    hanoi = identities.identify("sender-hanoi", None)
    body = status("000.04.01.H26-261125-0031", "000.04.01.H26", "000.00.00.H26")
    assert isinstance(pipeline(tmp_path).decide(body, hanoi), Forward)


def test_a_status_on_another_agencys_dossier_is_refused_naming_both(tmp_path, identities) -> None:
    """Hà Nội's system reports, as Hà Nội, on a dossier HCMC received (its number says so)."""
    hanoi = identities.identify("sender-hanoi", None)
    body = status("000.00.10.H29-261125-0042", "000.04.01.H26", "000.00.00.H26")
    decision = pipeline(tmp_path).decide(body, hanoi)
    assert isinstance(decision, Park) and decision.reason is Reason.UNAUTHORISED
    assert decision.detail == (
        "sender hanoi-igate may not report on dossier 000.00.10.H29-261125-0042: its receiving "
        "agency is 000.00.10.H29 (from its dossier number), and the sender speaks for "
        "000.00.00.H26"
    )


def test_the_recorded_receiving_agency_decides_for_a_number_without_one(
    tmp_path, identities
) -> None:
    dossier = "G09.20-20260609-0092637"  # a ministry's number: no agency identifier in it
    body = status(dossier, "000.04.01.H26", "000.00.00.H26")
    hanoi = identities.identify("sender-hanoi", None)
    assert isinstance(pipeline(tmp_path).decide(body, hanoi), Forward)  # never seen: the message
    refused = pipeline(tmp_path, {dossier: "000.00.00.H29"}).decide(body, hanoi)
    assert isinstance(refused, Park) and refused.reason is Reason.UNAUTHORISED
    assert "receiving agency is 000.00.00.H29 (from recorded when the bus delivered" in (
        refused.detail
    )
    hcmc = identities.identify("sender-hcmc", None)
    by_hcmc = status(dossier, "000.00.00.H29", "000.00.00.H29")
    assert isinstance(pipeline(tmp_path, {dossier: "000.00.00.H29"}).decide(by_hcmc, hcmc), Forward)


def test_a_system_may_not_name_another_agency_on_its_own_dossier(tmp_path, identities) -> None:
    hanoi = identities.identify("sender-hanoi", None)
    body = status("000.04.01.H26-261125-0031", "000.00.00.H29", "000.00.00.H26")
    decision = pipeline(tmp_path).decide(body, hanoi)
    assert isinstance(decision, Park)
    assert "may not report as agency 000.00.00.H29" in decision.detail


def test_a_shared_platform_reports_for_the_provinces_it_is_delegated_for(
    tmp_path, identities
) -> None:
    shared = identities.identify("sender-shared", None)
    decide = pipeline(tmp_path).decide
    for agency in ("000.00.12.H04", "000.00.00.H08"):  # by province (registry), by glob
        body = status(f"{agency}-261125-0001", agency, "000.00.00.H99")
        assert isinstance(decide(body, shared), Forward), agency
    refused = decide(status("000.00.12.H11-261125-0001", "000.00.12.H11", "000.00.00.H99"), shared)
    assert isinstance(refused, Park)
    assert refused.detail.endswith("speaks for 000.00.00.H99; delegated for 04, *.H08")


def test_without_identity_checks_the_status_is_not_checked(tmp_path) -> None:
    body = status("000.00.10.H29-261125-0042", "000.04.01.H26", "000.00.00.H26")
    assert isinstance(pipeline(tmp_path).decide(body, None), Forward)


def test_a_delegation_that_is_no_agency_or_province_is_refused_by_line(tmp_path: Path) -> None:
    path = tmp_path / "senders.yaml"
    path.write_text(SENDERS.replace('["04", "*.H08"]', '["04", "Hanoi"]'), encoding="utf-8")
    (problem,) = [p for p in check_senders(path) if p.severity == "error"]
    assert "delegated_for 'Hanoi' is neither an agency identifier" in problem.message
    assert problem.line == SENDERS.splitlines().index('    delegated_for: ["04", "*.H08"]') + 1
