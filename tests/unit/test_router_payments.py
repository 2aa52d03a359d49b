"""The router's payment rules in its pipeline: verified before any copy, and no silent owner.

Built from the repository's schemas and the routes loader, with a routes file written here
(its partner secret read from the environment, as routes.yaml's are).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bus.contract.rejections import Reason
from bus.contract.schemas import SchemaRegistry
from bus.routes import RoutesError, RoutingTable, check_routes, load_routes
from bus.routing.pipeline import Forward, Park, RouterPipeline

ROUTES = """\
version: 1
sources:
  payment.confirmed: ["000.00.00.G22/payment"]
targets:
  portal: { agency: 000.00.00.G22, adapter: rest, endpoint: "http://127.0.0.1:18100/" }
  hanoi-payments: { agency: 000.00.00.H26, adapter: rest, endpoint: "http://127.0.0.1:18108/" }
routes:
  - name: payments-to-portal
    match: { type: payment.confirmed }
    to: portal
    continue: true
  - name: hanoi-payments
    match: { type: payment.confirmed, agency: "*.H26" }
    to: hanoi-payments
payments:
  partners:
    VCB01: { secrets: [env:TEST_PAY_OLD, env:TEST_PAY_NEW] }
    MOMO: { secrets: env:TEST_PAY_OLD }
  portal_targets: portal
"""
EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
SUCCESS = EXAMPLES / "payment.confirmed.v2" / "valid" / "success-vcb.json"
FAILED = EXAMPLES / "payment.confirmed.v2" / "valid" / "failed-momo.json"


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RouterPipeline:
    monkeypatch.setenv("TEST_PAY_OLD", "demo-secret")  # the examples are signed with it
    monkeypatch.setenv("TEST_PAY_NEW", "next-secret")
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES, encoding="utf-8")
    return RouterPipeline(SchemaRegistry.load(), RoutingTable(load_routes(path), None), 1 << 20)


def _doc(path: Path = SUCCESS) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())


def test_a_verified_payment_goes_to_the_portal_and_its_agency(pipeline: RouterPipeline) -> None:
    decision = pipeline.decide(orjson.dumps(_doc()))
    assert isinstance(decision, Forward)
    assert decision.targets == ("portal", "hanoi-payments")
    assert decision.parked is None


def test_a_forged_success_is_dead_lettered_before_any_copy(pipeline: RouterPipeline) -> None:
    forged = _doc(FAILED)
    forged["payload"].update(result="success", error_code="00")
    decision = pipeline.decide(orjson.dumps(forged))
    assert isinstance(decision, Park)
    assert decision.reason is Reason.CHECKSUM_MISMATCH
    assert decision.message_id == forged["id"]


def test_a_version_1_payment_is_refused_unverifiable(pipeline: RouterPipeline) -> None:
    v1 = orjson.loads((EXAMPLES / "payment.confirmed.v1/valid/success-vcb.json").read_bytes())
    decision = pipeline.decide(orjson.dumps(v1))
    assert isinstance(decision, Park)
    assert decision.reason is Reason.UNVERIFIABLE


def test_an_amount_of_8000_point_0_is_refused_invalid(pipeline: RouterPipeline) -> None:
    body = orjson.dumps(_doc()).replace(b'"amount":8000,', b'"amount":8000.0,')
    decision = pipeline.decide(body)
    assert isinstance(decision, Park)
    assert decision.reason is Reason.INVALID
    assert decision.detail.startswith("payload.amount: type integer")


def test_the_agency_copy_of_a_payment_nobody_routes_is_parked_and_the_portal_copy_goes(
    pipeline: RouterPipeline,
) -> None:
    from adapters.kinds.payment_signature import sign_as_platform

    doc = _doc()
    payload = {k: v for k, v in doc["payload"].items() if k not in ("signed", "checksum")}
    payload["agency"] = "000.00.00.G09"  # a ministry with no route
    doc["payload"] = sign_as_platform(payload, "next-secret")  # the rotated-in secret
    decision = pipeline.decide(orjson.dumps(doc))
    assert isinstance(decision, Forward)
    assert decision.targets == ("portal",)
    assert decision.parked is not None
    assert decision.parked.reason is Reason.UNROUTABLE
    assert "agency=000.00.00.G09" in decision.parked.detail
    assert decision.parked.message_id == doc["id"]


def test_a_reload_brings_the_new_partner_secrets(
    pipeline: RouterPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rotated.yaml"
    path.write_text(ROUTES.replace("[env:TEST_PAY_OLD, env:TEST_PAY_NEW]", "env:TEST_PAY_NEW"))
    pipeline.table = RoutingTable(load_routes(path), None)
    decision = pipeline.decide(orjson.dumps(_doc()))  # signed with the retired secret
    assert isinstance(decision, Park)
    assert decision.reason is Reason.CHECKSUM_MISMATCH


# --- routes.yaml `payments:` ----------------------------------------------------------------


def test_partner_secrets_must_be_references_and_portal_targets_real(tmp_path: Path) -> None:
    text = ROUTES.replace("env:TEST_PAY_OLD }", "hunter2 }").replace(
        "portal_targets: portal", "portal_targets: [portal, portl]"
    )
    path = tmp_path / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    problems = [str(p) for p in check_routes(path)]
    assert any("never the secret itself" in p and ":18:" in p for p in problems), problems
    assert any("unknown target 'portl'" in p and ":19:" in p for p in problems), problems
    assert not any("hunter2" in p for p in problems)
    with pytest.raises(RoutesError):
        load_routes(path)


def test_a_bad_partner_code_or_key_is_named_on_its_line(tmp_path: Path) -> None:
    text = ROUTES.replace("    MOMO: {", "    MO MO: {").replace(
        "  portal_targets", "  portal_target"
    )
    path = tmp_path / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    problems = [str(p) for p in check_routes(path)]
    assert any(":18:" in p and "not a payment partner code" in p for p in problems), problems
    assert any(":19:" in p and "unknown key 'portal_target'" in p for p in problems), problems


def test_routing_payments_without_partners_is_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.split("payments:\n")[0], encoding="utf-8")
    problems = check_routes(path)
    assert [p.severity for p in problems] == ["warning"]
    assert "dead-lettered unverifiable" in problems[0].message


def test_unreadable_secrets_are_named_in_the_log_never_refusing_to_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from structlog.testing import capture_logs

    monkeypatch.setenv("TEST_PAY_OLD", "demo-secret")
    monkeypatch.delenv("TEST_PAY_NEW", raising=False)
    path = tmp_path / "routes.yaml"
    path.write_text(
        ROUTES.replace(
            "MOMO: { secrets: env:TEST_PAY_OLD }", "MOMO: { secrets: env:TEST_PAY_NOPE }"
        )
    )
    pipeline = RouterPipeline(SchemaRegistry.load(), RoutingTable(load_routes(path), None), 1 << 20)
    with capture_logs() as logs:
        pipeline.payments.report_unreadable_secrets()
    assert [(e["log_level"], e["partner"], e["problems"]) for e in logs] == [
        ("warning", "VCB01", ["secret env:TEST_PAY_NEW is not set"]),  # rotating in: old one works
        ("error", "MOMO", ["secret env:TEST_PAY_NOPE is not set"]),
    ]
    assert isinstance(pipeline.decide(orjson.dumps(_doc())), Forward)  # VCB01 still verified
    momo = pipeline.decide(orjson.dumps(_doc(FAILED)))
    assert isinstance(momo, Park) and momo.reason is Reason.UNVERIFIABLE
