"""The repository's routes.yaml, used by the demo and integration tests, is clean and routes right.

Checked against the real schemas, unit table and installed adapter kinds, as `dvcbus routes
check` does; then one realistic message per type is routed through the real table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.contract.admin_units import AdminUnits
from bus.contract.envelope import parse
from bus.contract.rejections import Reason, Rejection
from bus.contract.schemas import SchemaRegistry
from bus.delivery import adapter_registry
from bus.routes import RoutingTable, check_routes, load_routes
from bus.routes.agencies import AgencyRegistry

ROOT = Path(__file__).resolve().parents[2]
ROUTES = ROOT / "routes.yaml"
EXAMPLES = ROOT / "schemas" / "examples"
PORTAL = "000.00.00.G22/portal"
PAYMENT = "000.00.00.G22/payment"


@pytest.fixture(scope="module")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.load()


@pytest.fixture(scope="module")
def units() -> AdminUnits:
    return AdminUnits.load()


@pytest.fixture(scope="module")
def table(schemas: SchemaRegistry, units: AdminUnits) -> RoutingTable:
    config = load_routes(
        ROUTES,
        known_types={t for t, _ in schemas.message_types},
        known_adapters=adapter_registry.kind_names(),
        units=units,
    )
    agencies = AgencyRegistry.load(ROOT / "agencies.yaml", set(units.current_provinces()))
    return RoutingTable(config, units, agencies=agencies)


def test_example_routes_have_no_problem_at_all(schemas: SchemaRegistry, units: AdminUnits) -> None:
    problems = check_routes(
        ROUTES,
        known_types={t for t, _ in schemas.message_types},
        known_adapters=adapter_registry.kind_names(),
        units=units,
    )
    assert problems == [], "\n".join(map(str, problems))


def test_example_routes_every_message_type_and_authorises_each(
    schemas: SchemaRegistry, table: RoutingTable
) -> None:
    types = {t for t, _ in schemas.message_types}
    assert types <= set(table.config.sources)
    for type_ in types:
        assert table.routes_for(type_), f"no route takes {type_}"


def test_example_targets_are_loopback_stand_ins_on_their_own_ports(table: RoutingTable) -> None:
    ports = [int(t.endpoint.split(":")[2].split("/")[0]) for t in table.targets.values()]
    assert len(set(ports)) == len(ports)
    assert all(18100 <= port <= 18199 for port in ports)
    assert all(t.endpoint.startswith("http://127.0.0.1:") for t in table.targets.values())
    assert {t.adapter for t in table.targets.values()} <= adapter_registry.kind_names()


@pytest.mark.parametrize(
    ("type_", "source", "attrs", "targets"),
    [
        # a citizen's dossier for a Hà Nội department
        (
            "dossier.submitted",
            PORTAL,
            {
                "agency": "000.04.01.H26",
                "procedure": "2.000635",
                "province": "01",
                "commune": "00004",
            },
            ("hanoi",),
        ),
        # the Ministry of Justice: both of its systems
        (
            "dossier.submitted",
            PORTAL,
            {"agency": "000.00.00.G12", "procedure": "1.012889", "province": "79"},
            ("justice", "justice-archive"),
        ),
        # a province on the shared platform, written with pre-reform codes (26 → 25)
        (
            "dossier.submitted",
            PORTAL,
            {
                "agency": "000.00.00.H62",
                "procedure": "2.000635",
                "province": "26",
                "commune": "08710",
            },
            ("shared-igate",),
        ),
        # a status update from Hồ Chí Minh City: to the portal only
        ("dossier.status_changed", "000.00.00.H29", {"agency": "000.00.12.H29"}, ("portal",)),
        # a payment: the portal and the agency that owns the dossier
        ("payment.confirmed", PAYMENT, {"agency": "000.10.05.H17"}, ("portal", "danang")),
        ("payment.confirmed", PAYMENT, {"agency": "000.00.00.H48"}, ("portal", "danang")),
        ("payment.confirmed", PAYMENT, {"agency": "000.00.00.G12"}, ("portal", "justice")),
        ("payment.confirmed", PAYMENT, {"agency": "000.00.07.H40"}, ("portal", "shared-igate")),
    ],
)
def test_realistic_messages_reach_the_expected_targets(
    table: RoutingTable,
    type_: str,
    source: str,
    attrs: dict[str, str],
    targets: tuple[str, ...],
) -> None:
    table.authorise(type_, source)
    assert table.resolve(type_, source, attrs).targets == targets


def test_every_current_province_is_served(table: RoutingTable, units: AdminUnits) -> None:
    assert table.agencies is not None
    committees = {a.province: a.id for a in table.agencies.agencies.values()}
    provinces = sorted(units.current_provinces())
    assert len(provinces) == 34 and set(provinces) <= set(committees)
    for province in provinces:
        department = "000.00.09." + committees[province][-3:]  # a department of the province
        attrs = {"agency": department, "procedure": "1.000001", "province": province}
        assert table.resolve("dossier.submitted", PORTAL, attrs).targets, province


def test_a_dossier_goes_by_its_receiving_agency_not_the_applicants_address(
    table: RoutingTable,
) -> None:
    # Received by a Hà Nội department, from an applicant living in TP Hồ Chí Minh.
    attrs = {"agency": "000.00.53.H26", "procedure": "1.000001", "province": "79"}
    assert table.resolve("dossier.submitted", PORTAL, attrs).targets == ("hanoi",)
    explained = str(table.explain("dossier.submitted", PORTAL, attrs))
    assert "agency: 000.00.53.H26 → province 01 (UBND Thành phố Hà Nội via 000.00.00.H26" in (
        explained
    )


def test_a_merged_provinces_agency_follows_the_province_it_joined(table: RoutingTable) -> None:
    # Bình Dương (74) joined TP Hồ Chí Minh (79) on 1 July 2025; Quảng Nam (49) joined Đà Nẵng.
    for agency, target in (("000.00.00.H74", "hcmc"), ("000.00.12.H49", "danang")):
        attrs = {"agency": agency, "procedure": "1.000001"}
        assert table.resolve("dossier.submitted", PORTAL, attrs).targets == (target,)


def test_an_agency_missing_from_the_registry_is_unroutable_and_explained(
    table: RoutingTable,
) -> None:
    attrs = {"agency": "000.00.00.H50", "procedure": "1.000001", "province": "01"}
    with pytest.raises(Rejection) as caught:
        table.resolve("dossier.submitted", PORTAL, attrs)
    assert caught.value.reason is Reason.UNROUTABLE
    explained = str(table.explain("dossier.submitted", PORTAL, attrs))
    assert "agency: 000.00.00.H50 is not in the agency registry (agencies.yaml)" in explained
    assert "the receiving agency is not in the agency registry" in explained


def test_a_dossier_for_a_ministry_without_a_target_is_unroutable(table: RoutingTable) -> None:
    attrs = {"agency": "000.00.00.G09", "procedure": "1.000001", "province": "08"}
    with pytest.raises(Rejection) as caught:
        table.resolve("dossier.submitted", PORTAL, attrs)
    assert caught.value.reason is Reason.UNROUTABLE


def test_only_the_payment_platform_may_confirm_payments(table: RoutingTable) -> None:
    with pytest.raises(Rejection) as caught:
        table.authorise("payment.confirmed", PORTAL)
    assert caught.value.reason is Reason.UNAUTHORISED


@pytest.mark.parametrize(
    "example",
    sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.glob("*/valid/*.json")),
)
def test_every_published_valid_example_is_authorised_and_routed(
    schemas: SchemaRegistry, table: RoutingTable, example: str
) -> None:
    doc = parse((EXAMPLES / example).read_bytes())
    type_, _ = schemas.validate(doc)
    table.authorise(type_, doc["source"])
    found = table.resolve(type_, doc["source"], schemas.route_attributes(doc))
    assert found.targets
    if type_ != "dossier.submitted":
        assert found.targets[0] == "portal"
