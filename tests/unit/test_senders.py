"""senders.yaml: the registry of who may send what, read and checked like routes.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus.cli import main
from bus.ingress.senders import SendersError, check_senders, load_senders
from bus.routes import load_routes

ROOT = Path(__file__).resolve().parents[2]
TYPES = {"dossier.submitted", "dossier.status_changed", "payment.confirmed"}
HASH = "sha256:" + "ab" * 32

GOOD = f"""\
version: 1
senders:
  hanoi:
    agencies: [000.00.00.H26]
    sources: [000.00.00.H26, 000.00.00.H26/*]
    types: [dossier.status_changed]
    auth: {{ bearer: [{HASH}] }}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "senders.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_registry_passes_every_check() -> None:
    routes = load_routes(ROOT / "routes.yaml")
    assert check_senders(ROOT / "senders.yaml", known_types=TYPES, routes=routes) == []
    registry = load_senders(ROOT / "senders.yaml", known_types=TYPES)
    assert {"portal", "payment", "hanoi"} <= set(registry.senders)


def test_a_sender_may_claim_only_its_listed_sources_and_types(tmp_path: Path) -> None:
    hanoi = load_senders(write(tmp_path, GOOD)).senders["hanoi"]
    assert hanoi.may_claim_source("000.00.00.H26")
    assert hanoi.may_claim_source("000.00.00.H26/motcua")
    assert not hanoi.may_claim_source("000.00.00.H29")
    assert not hanoi.may_claim_source("000.00.00.G22/portal")
    assert hanoi.may_send_type("dossier.status_changed")
    assert not hanoi.may_send_type("payment.confirmed")


def test_agency_identifiers_stay_text_as_written(tmp_path: Path) -> None:
    hanoi = load_senders(write(tmp_path, GOOD)).senders["hanoi"]
    assert hanoi.agencies == ("000.00.00.H26",)


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (("    types:", "    typs:"), 6, "unknown key 'typs' (did you mean 'types'?)"),
        (("    types:", "    typs:"), 3, "sender 'hanoi': missing required key 'types'"),
        (("000.00.00.H26/*]", "000.00.00.H29]"), 5, "speaks for agency 000.00.00.H29"),
        (("[dossier.status_changed]", "[dossier.status_change]"), 6, "no schema defines"),
        ((HASH, "s3cret-token-pasted"), 7, "never the token itself"),
        (("  hanoi:", "  Hanoi:"), 3, "sender id 'Hanoi' must be lower-case"),
        (("[000.00.00.H26]\n", "[]\n"), 4, "give at least one value"),
    ],
)
def test_a_problem_is_refused_with_its_line_and_owner(
    tmp_path: Path, change: tuple[str, str], line: int, words: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change, 1))
    problems = check_senders(path, known_types=TYPES)
    assert any(p.line == line and words in p.message for p in problems), problems
    with pytest.raises(SendersError):
        load_senders(path, known_types=TYPES)


def test_a_pasted_token_is_never_repeated_in_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace(HASH, "s3cret-token-pasted"))
    assert all("s3cret" not in str(p) for p in check_senders(path))


def test_duplicate_keys_and_shared_tokens_are_refused(tmp_path: Path) -> None:
    text = GOOD + GOOD.split("senders:\n", 1)[1].replace("hanoi", "hanoi-2", 1)
    text += "    types: [dossier.submitted]\n"
    problems = [str(p) for p in check_senders(write(tmp_path, text))]
    assert any("duplicate key 'types'" in p for p in problems), problems
    assert any("sender 'hanoi-2': shares a bearer token with 'hanoi'" in p for p in problems)


def test_a_sender_routes_yaml_would_refuse_is_a_warning(tmp_path: Path) -> None:
    routes = load_routes(ROOT / "routes.yaml")
    path = write(tmp_path, GOOD.replace("[dossier.status_changed]", "[payment.confirmed]"))
    problems = check_senders(path, known_types=TYPES, routes=routes)
    assert [p.severity for p in problems] == ["warning"]
    assert "the router would dead-letter them unauthorised" in problems[0].message


def test_routes_check_also_checks_the_senders_file_beside_it(tmp_path: Path) -> None:
    shutil.copy(ROOT / "routes.yaml", tmp_path / "routes.yaml")
    write(tmp_path, GOOD.replace("    types:", "    typs:"))
    result = CliRunner().invoke(main, ["routes", "check", str(tmp_path / "routes.yaml")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'senders.yaml'}:6:" in result.output


def test_routes_check_needs_no_senders_file(tmp_path: Path) -> None:
    shutil.copy(ROOT / "routes.yaml", tmp_path / "routes.yaml")
    result = CliRunner().invoke(main, ["routes", "check", str(tmp_path / "routes.yaml")])
    assert result.exit_code == 0, result.output
