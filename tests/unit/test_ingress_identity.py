"""Who sent an ingress message, as the router decides it from the broker's user_id and the
gateway's header (bus/routing/identity.py), and what the pipeline does with the verdict."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bus.contract.rejections import Reason, Rejection
from bus.contract.schemas import SchemaRegistry
from bus.ingress.senders import SendersConfig, load_senders
from bus.routes import RoutingTable, load_routes
from bus.routing.identity import (
    Identified,
    Identities,
    Unidentified,
    authorise,
    claimant,
    identify_text,
)
from bus.routing.pipeline import Forward, Park, RouterPipeline
from tests.integration import senders_file
from tests.unit.routes_fixtures.fake_units import FakeUnits
from tests.unit.test_router_pipeline import MAX_BYTES, ROUTES, STATUS, SUBMITTED

SENDERS = (
    senders_file.HEAD
    + """\
  portal:
    agencies: [000.00.00.G22]
    sources: [000.00.00.G22/portal, 000.00.00.G22/kiosk]
    types: [dossier.submitted]
    amqp_user: sender-portal
"""
    + senders_file.hanoi_igate("sender-hanoi")
    + """\
  hcmc:
    agencies: [000.00.00.H29]
    sources: [000.00.00.H29]
    types: [dossier.status_changed]
    auth: { bearer: [env:HCMC_TOKEN] }
"""
)
GATEWAY, OPERATOR = "bus-gateway", "bus-cli"
SENDER = "x-dvcbus-sender"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> SendersConfig:
    path = tmp_path_factory.mktemp("senders") / "senders.yaml"
    path.write_text(SENDERS, encoding="utf-8")
    return load_senders(path)


@pytest.fixture
def identities(registry: SendersConfig) -> Identities:
    return Identities(registry, GATEWAY, OPERATOR)


def test_a_senders_own_broker_user_identifies_it(identities: Identities) -> None:
    verdict = identities.identify("sender-hanoi", None)
    assert isinstance(verdict, Identified)
    assert verdict.sender_id == "hanoi-igate" and verdict.via == "broker user sender-hanoi"


def test_the_gateways_user_names_the_sender_in_its_header(identities: Identities) -> None:
    verdict = identities.identify(GATEWAY, {SENDER: "hcmc"})
    assert isinstance(verdict, Identified) and verdict.sender_id == "hcmc"
    as_bytes = identities.identify(GATEWAY.encode(), {SENDER: b"hcmc"})  # as pika may give it
    assert isinstance(as_bytes, Identified) and as_bytes.sender_id == "hcmc"


def test_a_sender_header_from_anyone_but_the_gateway_is_ignored(identities: Identities) -> None:
    verdict = identities.identify("sender-hanoi", {SENDER: "portal"})
    assert isinstance(verdict, Identified) and verdict.sender_id == "hanoi-igate"
    nobody = identities.identify("guest", {SENDER: "portal"})
    assert nobody == Unidentified(
        "no trusted identity: published by user guest without a registered sender"
    )


def test_no_user_id_is_no_identity(identities: Identities) -> None:
    for user_id in (None, ""):
        verdict = identities.identify(user_id, {SENDER: "portal"})
        assert isinstance(verdict, Unidentified)
        assert verdict.detail.startswith("no trusted identity: no user_id property")


def test_the_gateway_without_a_header_or_naming_an_unknown_sender_is_refused(
    identities: Identities,
) -> None:
    bare = identities.identify(GATEWAY, {})
    assert isinstance(bare, Unidentified) and f"without {SENDER}" in bare.detail
    unknown = identities.identify(GATEWAY, {SENDER: "nobody"})
    assert isinstance(unknown, Unidentified)
    assert "names sender nobody, which senders.yaml does not have" in unknown.detail


def test_the_operators_user_names_the_sender_it_acts_for_like_the_gateway(
    identities: Identities,
) -> None:
    replay = identities.identify(OPERATOR, {SENDER: "portal", "x-dvcbus-replay-of": 7})
    assert isinstance(replay, Identified) and replay.sender_id == "portal"
    assert replay.via == "a replay by the operators"
    reconciled = identities.identify(OPERATOR, {SENDER: "portal"})
    assert isinstance(reconciled, Identified) and reconciled.via == "the operators"
    own = identities.identify(OPERATOR, None)  # the CLI user is no sender of its own
    assert own == Unidentified(
        f"no trusted identity: published by the operators (user {OPERATOR}) without {SENDER}"
    )


def test_the_claimant_is_the_sender_that_may_send_the_type_from_the_source(
    registry: SendersConfig,
) -> None:
    assert claimant(registry, "dossier.status_changed", "000.00.00.H26/x") == "hanoi-igate"
    assert claimant(registry, "dossier.status_changed", "000.00.00.G22/portal") is None
    assert claimant(None, "dossier.submitted", "000.00.00.G22/portal") is None


def test_without_a_registry_nothing_is_identified() -> None:
    verdict = Identities(None, GATEWAY, OPERATOR).identify(GATEWAY, {SENDER: "portal"})
    assert verdict == Unidentified("no trusted identity: the router has no senders.yaml")


def test_a_claim_the_sender_may_not_make_is_refused_naming_sender_and_claim(
    identities: Identities,
) -> None:
    hanoi = identities.identify("sender-hanoi", None)
    authorise(hanoi, "dossier.status_changed", "000.00.00.H26/motcua")  # its own: no error
    with pytest.raises(Rejection) as source:
        authorise(hanoi, "dossier.status_changed", "000.00.00.H29")
    assert source.value.reason is Reason.UNAUTHORISED
    assert source.value.detail.startswith("sender hanoi-igate may not claim source 000.00.00.H29")
    with pytest.raises(Rejection) as type_:
        authorise(hanoi, "payment.confirmed", "000.00.00.H26")
    assert type_.value.detail.startswith("sender hanoi-igate may not send payment.confirmed")
    with pytest.raises(Rejection) as nobody:
        authorise(identities.identify("guest", None), "dossier.submitted", "000.00.00.G22/portal")
    assert nobody.value.detail == (
        "no trusted identity: published by user guest without a registered sender"
    )


def test_the_verdict_reads_as_one_line_for_routes_explain(identities: Identities) -> None:
    assert identify_text(identities.identify("sender-hanoi", None)) == (
        "sender hanoi-igate (identified by broker user sender-hanoi)"
    )
    assert identify_text(identities.identify("guest", None)).startswith("no trusted identity")


# --- in the pipeline -------------------------------------------------------------------------


@pytest.fixture
def pipeline(tmp_path: Path) -> RouterPipeline:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES, encoding="utf-8")
    return RouterPipeline(
        SchemaRegistry.load(), RoutingTable(load_routes(path), FakeUnits()), MAX_BYTES
    )


def test_the_pipeline_routes_a_message_its_identified_sender_may_send(
    pipeline: RouterPipeline, identities: Identities
) -> None:
    decision = pipeline.decide(STATUS.read_bytes(), identities.identify("sender-hanoi", None))
    assert isinstance(decision, Forward) and decision.targets == ("portal",)


def test_the_pipeline_parks_a_message_without_identity_even_if_routes_yaml_allows_its_source(
    pipeline: RouterPipeline, identities: Identities
) -> None:
    body = STATUS.read_bytes()
    assert isinstance(pipeline.decide(body), Forward)  # ingress_identity = "off": source decides
    decision = pipeline.decide(body, identities.identify("guest", {SENDER: "hanoi-igate"}))
    assert isinstance(decision, Park) and decision.reason is Reason.UNAUTHORISED
    assert "published by user guest" in decision.detail
    assert decision.message_id == orjson.loads(body)["id"]  # the dead letter can be found


def test_routes_yaml_sources_still_apply_to_an_identified_sender(
    pipeline: RouterPipeline, identities: Identities
) -> None:
    doc = orjson.loads(SUBMITTED.read_bytes())
    portal = identities.identify("sender-portal", None)
    assert isinstance(pipeline.decide(orjson.dumps(doc), portal), Forward)
    doc["source"] = "000.00.00.G22/portal-b"  # not the portal's to claim
    refused = pipeline.decide(orjson.dumps(doc), portal)
    assert isinstance(refused, Park)
    assert refused.detail.startswith("sender portal may not claim source 000.00.00.G22/portal-b")
    doc["source"] = "000.00.00.G22/kiosk"  # the portal's, but routes.yaml allows only /portal
    by_routes = pipeline.decide(orjson.dumps(doc), portal)
    assert isinstance(by_routes, Park) and by_routes.reason is Reason.UNAUTHORISED
    assert by_routes.detail.startswith("source 000.00.00.G22/kiosk may not send dossier.submitted")
