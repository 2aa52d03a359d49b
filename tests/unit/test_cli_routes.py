"""`dvcbus routes check` and `routes explain`, as an operator runs them."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from bus.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "routes_fixtures"
EXAMPLES = ROOT / "schemas" / "examples"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_check_accepts_the_shipped_routes() -> None:
    code, out = run("routes", "check", str(ROOT / "routes.yaml"))
    assert code == 0, out
    assert "OK" in out


@pytest.mark.parametrize(
    ("fixture", "line", "words"),
    [
        ("bad_yaml.yaml", 6, "not valid YAML"),
        ("unknown_target.yaml", 13, "unknown target 'hanio'"),
        ("duplicate_route_name.yaml", 13, "route name 'hanoi' is used again"),
        ("bad_patterns.yaml", 15, "'[' that is never closed"),
    ],
)
def test_check_names_the_file_and_line_of_each_problem(fixture: str, line: int, words: str) -> None:
    path = FIXTURES / fixture
    code, out = run("routes", "check", str(path))
    assert code == 1
    assert any(ln.startswith(f"{path}:{line}:") and words in ln for ln in out.splitlines()), out


def test_check_names_the_line_and_name_of_a_misspelt_adapter_option() -> None:
    path = FIXTURES / "options" / "bad_options.yaml"
    code, out = run("routes", "check", str(path))
    assert code == 1
    wanted = "target 'hcmc': option 'read_timout': unknown option"
    assert any(ln.startswith(f"{path}:12:") and wanted in ln for ln in out.splitlines()), out


def test_check_of_a_missing_file_fails_clearly(tmp_path: Path) -> None:
    code, out = run("routes", "check", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "nope.yaml" in out


def test_explain_shows_translation_route_and_targets() -> None:
    msg = EXAMPLES / "dossier.submitted.v1" / "valid" / "pre-reform-unit-codes.json"
    code, out = run("routes", "explain", str(msg), "--routes", str(ROOT / "routes.yaml"))
    assert code == 0, out
    assert "26 (Tỉnh Vĩnh Phúc) → 25 (Tỉnh Phú Thọ)" in out
    assert "08710" in out and "08716" in out
    assert "deliver to shared-igate" in out


def test_explain_of_an_invalid_message_gives_the_dead_letter_reason() -> None:
    msg = next((EXAMPLES / "dossier.submitted.v1" / "invalid").glob("*.json"))
    code, out = run("routes", "explain", str(msg))
    assert code == 1
    assert "dead letter, reason" in out


def test_explain_of_a_payment_shows_the_checksum_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVCBUS_PAYMENT_SECRET", "demo-secret")  # the examples' secret
    msg = EXAMPLES / "payment.confirmed.v2" / "valid" / "success-vcb.json"
    code, out = run("routes", "explain", str(msg), "--routes", str(ROOT / "routes.yaml"))
    assert code == 0, out
    assert "checksum: verified (partner VCB01;" in out
    assert out.splitlines()[-1].startswith("result: deliver to portal, hanoi-payments")


def test_explain_of_a_forged_payment_ends_in_its_dead_letter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orjson

    monkeypatch.setenv("DVCBUS_PAYMENT_SECRET", "demo-secret")
    doc = orjson.loads(
        (EXAMPLES / "payment.confirmed.v2" / "valid" / "failed-momo.json").read_bytes()
    )
    doc["payload"].update(result="success", error_code="00")
    msg = tmp_path / "forged.json"
    msg.write_bytes(orjson.dumps(doc))
    code, out = run("routes", "explain", str(msg), "--routes", str(ROOT / "routes.yaml"))
    assert code == 0, out  # explained; the message would be parked
    assert "checksum: refused, checksum_mismatch: payload.error_code differs" in out
    last = out.splitlines()[-1]
    assert last.startswith("result: dead letter, reason checksum_mismatch"), out
    assert doc["payload"]["checksum"] not in out


def test_explain_of_a_payment_for_an_unrouted_agency_parks_its_agency_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orjson

    from adapters.kinds.payment_signature import sign_as_platform

    monkeypatch.setenv("DVCBUS_PAYMENT_SECRET", "demo-secret")
    doc = orjson.loads(
        (EXAMPLES / "payment.confirmed.v2" / "valid" / "success-vcb.json").read_bytes()
    )
    payload = {k: v for k, v in doc["payload"].items() if k not in ("signed", "checksum")}
    doc["payload"] = sign_as_platform({**payload, "agency": "000.00.00.G09"}, "demo-secret")
    msg = tmp_path / "ministry.json"
    msg.write_bytes(orjson.dumps(doc))
    code, out = run("routes", "explain", str(msg), "--routes", str(ROOT / "routes.yaml"))
    assert code == 0, out
    last = out.splitlines()[-1]
    assert last.startswith("result: deliver to portal (routes: payments-to-portal); agency copy:")
    assert "dead letter, reason unroutable" in last and "agency=000.00.00.G09" in last


def test_explain_as_a_sender_shows_the_identity_the_router_would_establish() -> None:
    msg = EXAMPLES / "dossier.submitted.v1" / "valid" / "citizen-hanoi-online.json"
    code, out = run("routes", "explain", str(msg), "--as", "portal")
    assert code == 0, out
    assert "identity: sender portal (identified by broker user sender-portal)" in out
    assert "dead letter" not in out


def test_explain_as_a_sender_that_may_not_claim_the_source_is_an_unauthorised_dead_letter() -> None:
    msg = EXAMPLES / "dossier.status_changed.v1" / "valid" / "received.json"  # Hà Nội's
    code, out = run("routes", "explain", str(msg), "--as", "hcmc")
    assert code == 1
    assert "identity: sender hcmc (identified by the gateway)" in out  # it has no amqp_user
    assert "reason unauthorised: sender hcmc may not claim source 000.00.00.H26" in out


def test_explain_as_an_unknown_sender_names_the_known_ones() -> None:
    msg = EXAMPLES / "dossier.submitted.v1" / "valid" / "citizen-hanoi-online.json"
    code, out = run("routes", "explain", str(msg), "--as", "nobody")
    assert code != 0
    assert "no sender 'nobody' in senders.yaml" in out and "portal" in out


def test_explain_of_a_status_judges_the_declared_step_and_says_it_has_no_history(
    tmp_path: Path,
) -> None:
    import orjson

    doc = orjson.loads(
        (EXAMPLES / "dossier.status_changed.v1" / "valid" / "received.json").read_bytes()
    )
    doc["payload"].update(status=9, previous_status=1)
    msg = tmp_path / "status.json"
    msg.write_bytes(orjson.dumps(doc))
    code, out = run("routes", "explain", str(msg))
    assert code == 0, out
    assert "statuses: no delivery history here" in out
    assert "1 (newly submitted) → 9 (processing done) is not a transition" in out
    assert "statuses: portal keeps current: a late status is superseded" in out
    assert "an impossible step is dead-lettered invalid_transition" in out
    assert out.splitlines()[-1].startswith("result: deliver to portal")


def test_explain_as_a_system_reporting_on_another_agencys_dossier_is_unauthorised(
    tmp_path: Path,
) -> None:
    import orjson

    doc = orjson.loads(
        (EXAMPLES / "dossier.status_changed.v1" / "valid" / "received.json").read_bytes()
    )
    doc["payload"]["dossier_no"] = doc["correlation_id"] = "000.00.12.H29-261124-0107"
    msg = tmp_path / "status.json"
    msg.write_bytes(orjson.dumps(doc))
    code, out = run("routes", "explain", str(msg), "--as", "hanoi")
    assert code == 1
    assert "reason unauthorised: sender hanoi may not report on dossier 000.00.12.H29" in out
    own = EXAMPLES / "dossier.status_changed.v1" / "valid" / "received.json"
    code, out = run("routes", "explain", str(own), "--as", "hanoi")
    assert code == 0, out
    assert "reporting: hanoi speaks for the dossier's receiving agency 000.04.01.H26" in out


def test_check_reports_a_broken_lifecycle_by_file_and_line(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text((ROOT / "routes.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    shipped = (ROOT / "statuses.yaml").read_text(encoding="utf-8")
    broken = shipped.replace("10: { name: result returned, final: true }",
                             "10: { name: result returned, final: true, next: [4] }")  # fmt: skip
    (tmp_path / "statuses.yaml").write_text(broken, encoding="utf-8")
    code, out = run("routes", "check", str(routes))
    assert code == 1
    line = broken.splitlines().index("  10: { name: result returned, final: true, next: [4] }") + 1
    assert f"statuses.yaml:{line}:3: error: status 10 is final but lists next statuses" in out
