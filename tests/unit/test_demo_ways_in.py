"""The demo sends as the real senders would: each message by its sender's way in, in the form
that way takes, with credentials made up for the run (bus.demo.senders, ways_in, wire_forms)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import orjson
import pytest
from lxml import etree
from prometheus_client import generate_latest
from rich.console import Console

from adapters.kinds.payment_signature import checksum_matches
from bus import app
from bus.broker.topology import Names
from bus.demo import traffic
from bus.demo.journeys import journey
from bus.demo.send_as_senders import Outcome, request_of
from bus.demo.senders import AMQP, CALLBACK, HTTP, SOAP, DemoSenders
from bus.demo.ways_in import FOREIGN_SOURCE_KIND, OLD_TOKEN_KIND, Planned, plan
from bus.demo.ways_summary import counts_of, print_gateway
from bus.demo.wire_forms import platform_confirmation, soap_status_request
from bus.ingress import payment_callback, soap_status
from bus.ingress.refusals import Refusal, Refused
from bus.ingress.senders import check_senders, load_senders
from bus.observability.metrics import Metrics
from bus.routes import load_routes
from bus.settings import PROJECT_ROOT, Settings

TYPES = {"dossier.submitted", "dossier.status_changed", "payment.confirmed"}
WSDL = PROJECT_ROOT / "config" / "wsdl" / "dvcbus-ingress-v1.wsdl"


@pytest.fixture(scope="module")
def loaded() -> app.Loaded:
    return app.load(Settings())


@pytest.fixture
def senders() -> DemoSenders:
    return DemoSenders(Names("demo123"))


def test_a_status_update_sent_over_soap_is_the_same_envelope_once_the_gateway_converts_it(
    loaded: app.Loaded,
) -> None:
    doc = traffic.TrafficGenerator(7, loaded).status()
    request = etree.fromstring(soap_status_request(doc, "agency-h26", "secret-token"))
    operation = request.find(f".//{{{soap_status.NS}}}{soap_status.OPERATION}")
    assert operation is not None
    soap_status.check_against_xsd(soap_status.load_xsd(WSDL), operation)  # raises if not
    trace = soap_status.bus_header(request[0], "traceparent")
    assert orjson.loads(soap_status.envelope_of(operation, trace)) == doc


def test_a_payment_sent_as_the_platforms_callback_carries_the_same_payload(
    loaded: app.Loaded,
) -> None:
    doc = traffic.TrafficGenerator(7, loaded).payment()
    body, _id = payment_callback.envelope_of(platform_confirmation(doc), traffic.PAYMENT_PLATFORM)
    payload = orjson.loads(body)["payload"]
    assert payload == doc["payload"]
    assert checksum_matches(payload["signed"], [traffic.DEMO_SECRET], payload["checksum"])


def test_a_forged_confirmation_reaches_the_bus_with_a_checksum_that_does_not_match(
    loaded: app.Loaded,
) -> None:
    doc = traffic.TrafficGenerator(7, loaded).forged_payment()
    body, _id = payment_callback.envelope_of(platform_confirmation(doc), traffic.PAYMENT_PLATFORM)
    payload = orjson.loads(body)["payload"]
    assert payload["result"] == "success" and payload["signed"]["error_code"] == "00"
    assert not checksum_matches(payload["signed"], [traffic.DEMO_SECRET], payload["checksum"])


def test_an_amount_written_as_a_float_is_refused_by_the_callback(loaded: app.Loaded) -> None:
    doc = traffic.TrafficGenerator(7, loaded).payment_with_float_amount()
    with pytest.raises(Refused) as refused:
        payment_callback.envelope_of(platform_confirmation(doc), traffic.PAYMENT_PLATFORM)
    assert refused.value.refusal is Refusal.INVALID


def test_the_demo_senders_file_holds_no_token_and_passes_routes_check(
    senders: DemoSenders, tmp_path: Path
) -> None:
    senders_file, template = senders.write(tmp_path)
    text = senders_file.read_text(encoding="utf-8")
    assert all(s.token not in text for s in senders.senders.values())
    assert all(p not in text for p in senders.passwords.values())
    routes = load_routes(PROJECT_ROOT / "routes.yaml")
    problems = check_senders(senders_file, known_types=TYPES, routes=routes)
    assert [str(p) for p in problems] == []
    registry = load_senders(senders_file, known_types=TYPES)
    assert set(registry.senders) == set(senders.senders)
    user = next(iter(senders.passwords))
    assert (
        template.startswith("file:")
        and Path(template[5:].format(user=user)).stat().st_mode & 0o077 == 0
    )


def test_each_province_may_claim_its_own_source_only(senders: DemoSenders, tmp_path: Path) -> None:
    registry = load_senders(senders.write(tmp_path)[0], known_types=TYPES)
    hanoi = senders.of_agency("000.00.00.H26")
    other = senders.neighbour_of("000.00.00.H26")
    assert other.agency != hanoi.agency
    assert registry.senders[hanoi.id].may_claim_source("000.00.00.H26")
    assert not registry.senders[other.id].may_claim_source("000.00.00.H26")
    amqp = [s for s in senders.senders.values() if s.way == AMQP]
    assert amqp and all(s.amqp_user and s.amqp_user.startswith("demo123-") for s in amqp)


def test_every_message_goes_by_its_senders_way_and_a_few_are_sent_wrongly(
    loaded: app.Loaded, senders: DemoSenders
) -> None:
    generated = traffic.generate(1500, seed=3, loaded=loaded)
    journeys = [journey(traffic.TrafficGenerator(4, loaded), "01")]
    planned = plan(generated, senders, journeys)
    assert len(planned) == len(generated) + len(journeys[0])
    ways = Counter((p.family, p.way) for p in planned)
    assert {way for _, way in ways} == {HTTP, SOAP, AMQP, CALLBACK}
    assert ways[("dossiers", SOAP)] == ways[("dossiers", AMQP)] == 0
    for p in planned:
        doc = orjson.loads(p.body) if p.message_id else {}
        if p.kind == OLD_TOKEN_KIND:
            assert p.sender.id == "portal" and p.token != p.sender.token
        elif p.kind == FOREIGN_SOURCE_KIND:
            assert not doc["source"].startswith(p.sender.agency) and p.token == p.sender.token
        elif doc.get("type") == "dossier.status_changed":
            assert doc["source"].startswith(p.sender.agency) and p.way == p.sender.way
        elif doc.get("type") == "payment.confirmed" and doc["source"] == traffic.PAYMENT_PLATFORM:
            assert p.way == (CALLBACK if doc["version"] == 2 else HTTP)
    kinds = Counter(p.kind for p in planned)
    assert kinds[OLD_TOKEN_KIND] >= 1
    # Another province's source: over AMQP first (the router's to refuse), then the gateway's.
    foreign = [p.way for p in planned if p.kind == FOREIGN_SOURCE_KIND]
    assert foreign[:3] == [AMQP, HTTP, SOAP]
    assert [p.chain for p in planned[-len(journeys[0]) :]] == [0] * len(journeys[0])


def test_the_summary_counts_the_gateways_answers_beside_its_own_metric(
    senders: DemoSenders,
) -> None:
    metrics = Metrics(types=TYPES, targets={})
    metrics.gateway_requests.labels("accepted", "").inc(2)
    metrics.gateway_requests.labels("refused", "unauthenticated").inc()
    metrics.gateway_requests.labels("refused", "rate_limited").inc()  # then retried, taken
    counted = counts_of(generate_latest(metrics.registry).decode())
    assert counted[("accepted", "")] == 2 and counted[("refused", "unauthenticated")] == 1

    portal = senders.senders["portal"]
    hcmc = senders.of_agency("000.00.00.H29")
    by_http = Planned("dossier.submitted", "dossiers", HTTP, portal, b"{}", "x", portal.token)
    by_amqp = Planned("status", "status updates", AMQP, hcmc, b"{}", "y", hcmc.token)
    outcomes = [
        Outcome(by_http, accepted=True, attempts=1),
        Outcome(by_http, accepted=True, attempts=2),
        Outcome(by_http, reason="unauthenticated", attempts=1),
        Outcome(by_amqp, accepted=True, attempts=1),  # never met the gateway
    ]
    console = Console(width=200, record=True)
    print_gateway(console, outcomes, counted)
    text = console.export_text()
    assert re.search(r"accepted \(the broker holds it\)\s*│\s*2\s*│\s*2", text), text
    assert re.search(r"refused: unauthenticated\s*│\s*1\s*│\s*1", text), text
    assert re.search(r"refused: rate_limited\s*│\s*0\s*│\s*1", text), text
    assert re.search(r"retried after Retry-After\)\s*│\s*1", text), text


def test_each_json_post_carries_its_own_idempotency_key_as_the_client_would(
    loaded: app.Loaded, senders: DemoSenders
) -> None:
    planned = plan(traffic.generate(300, seed=5, loaded=loaded), senders, [])
    posts = [request_of(p) for p in planned if p.way == HTTP]
    assert posts and all(path == "/v1/messages" for path, _, _ in posts)
    keys = [headers["Idempotency-Key"] for _, _, headers in posts]
    assert len(set(keys)) == len(keys)  # one per message; a retry reuses its request's
    soap = [request_of(p)[2] for p in planned if p.way == SOAP]
    assert soap and not any("Idempotency-Key" in h for h in soap)  # SOAP has its own id
