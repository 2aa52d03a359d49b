"""routes.yaml loading: a good file becomes a typed config, a broken one a list of located problems.

Each broken fixture under routes_fixtures/ marks the lines it expects a problem on with a
``# expect: <words>`` (or ``# expect warning: <words>``) comment; the test checks that exactly
those lines get a problem containing those words, so the fixtures document themselves.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from bus.routes import (
    CredentialError,
    Problem,
    RoutesError,
    check_routes,
    format_duration,
    load_routes,
    parse_duration,
    parse_rate,
)
from tests.unit.routes_fixtures.fake_units import FakeUnits

FIXTURES = Path(__file__).resolve().parent / "routes_fixtures"
KNOWN_TYPES = {"dossier.submitted", "dossier.status_changed", "payment.confirmed"}
KNOWN_ADAPTERS = {"rest", "soap"}
_EXPECT = re.compile(r"#\s*expect(?: (warning))?:\s*(.+?)\s*$")
BROKEN = sorted(p.name for p in FIXTURES.glob("*.yaml") if p.name != "valid.yaml")
REFUSED = [name for name in BROKEN if "# expect:" in (FIXTURES / name).read_text(encoding="utf-8")]


def _check(path: Path, **known: object) -> list[Problem]:
    options = {"known_types": KNOWN_TYPES, "known_adapters": KNOWN_ADAPTERS, "units": FakeUnits()}
    options.update(known)
    return check_routes(path, **options)  # type: ignore[arg-type]


def _expectations(path: Path) -> list[tuple[int, str, str]]:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _EXPECT.search(line)
        if match:
            found.append((number, match.group(1) or "error", match.group(2)))
    return found


def _write(tmp_path: Path, text: str, name: str = "routes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """\
version: 1
sources:
  dossier.submitted: ["000.00.00.G22/portal"]
targets:
  portal:
    agency: 000.00.00.G22
    adapter: rest
    endpoint: http://127.0.0.1:18100/
routes:
  - name: all
    match: { type: dossier.submitted }
    to: portal
"""


# --- broken files: every problem on the line that causes it ------------------------------


@pytest.mark.parametrize("fixture", BROKEN)
def test_every_problem_in_a_broken_fixture_names_its_line(fixture: str) -> None:
    path = FIXTURES / fixture
    expected = _expectations(path)
    assert expected, f"{fixture} marks no expected problem"
    problems = _check(path)
    for line, severity, words in expected:
        hits = [p for p in problems if p.line == line and p.severity == severity]
        assert any(words in p.message for p in hits), (
            f"{fixture}:{line}: no {severity} containing {words!r}; got:\n"
            + "\n".join(map(str, problems))
        )
    marked = {(line, severity) for line, severity, _ in expected}
    unexpected = [p for p in problems if (p.line, p.severity) not in marked]
    assert not unexpected, "unexpected problems:\n" + "\n".join(map(str, unexpected))


@pytest.mark.parametrize("fixture", REFUSED)
def test_a_file_with_errors_is_refused_with_all_its_problems(fixture: str) -> None:
    path = FIXTURES / fixture
    problems = _check(path)
    with pytest.raises(RoutesError) as caught:
        load_routes(path, known_types=KNOWN_TYPES, known_adapters=KNOWN_ADAPTERS, units=FakeUnits())
    assert caught.value.problems == problems
    first_error = next(p for p in problems if p.severity == "error")
    assert str(first_error) in str(caught.value)


def test_problem_reads_as_file_line_column_severity_message() -> None:
    problem = Problem("routes.yaml", 12, 5, "route 'hanoi' sends to unknown target 'hanio'")
    assert str(problem) == (
        "routes.yaml:12:5: error: route 'hanoi' sends to unknown target 'hanio'"
    )


def test_problems_are_sorted_by_line() -> None:
    problems = _check(FIXTURES / "wrong_values.yaml")
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_inline_secret_is_never_repeated_in_problems() -> None:
    problems = _check(FIXTURES / "inline_secret.yaml")
    text = "\n".join(map(str, problems))
    assert "Sup3r-S3cret-Token" not in text
    assert "12345678" not in text


def test_yaml_syntax_error_does_not_quote_the_source_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1\ntargets:\n  x: { token: hunter2-secret\n")
    problems = check_routes(path)
    assert len(problems) == 1 and problems[0].message.startswith("not valid YAML")
    assert "hunter2" not in str(problems[0])


def test_a_warnings_only_file_loads(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        MINIMAL.replace(
            "routes:",
            "  spare:\n"
            "    agency: 000.00.00.H26\n    adapter: rest\n    endpoint: http://127.0.0.1:1/\nroutes:",
        ),
    )
    problems = check_routes(path)
    assert [p.severity for p in problems] == ["warning"]
    assert "spare" in load_routes(path).targets


# --- shapes of the whole file -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "the file is empty"),
        ("# only a comment\n", 1, "the file is empty"),
        ("- version: 1\n- routes: []\n", 1, "the top level is a list"),
        ("\n\nhello\n", 3, "the top level is a single value"),
        ("version: 1\n---\nversion: 1\n", 2, "not valid YAML"),
        ("version: 2\ntargets: {}\nroutes: []\n", 1, "version must be 1"),
        ("targets: {}\nroutes: []\n", 1, "missing required key 'version'"),
        ("version: 1\nroutes: []\n", 1, "missing required key 'targets'"),
        ("version: 1\ntargets: []\nroutes: []\n", 2, "targets: should be a mapping"),
        ("version: 1\ntargets: {}\nroutes: {}\n", 3, "routes: should be a list"),
        ("version: 1\ntargets: &t\n  a: *t\nroutes: []\n", 2, "refers to a block containing it"),
    ],
)
def test_file_level_mistakes_are_located(tmp_path: Path, text: str, line: int, words: str) -> None:
    problems = [p for p in check_routes(_write(tmp_path, text)) if p.severity == "error"]
    assert any(p.line == line and words in p.message for p in problems), problems


def test_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    problems = check_routes(tmp_path / "missing.yaml")
    assert len(problems) == 1 and problems[0].line == 0
    assert str(problems[0]).startswith(f"{tmp_path / 'missing.yaml'}: error: cannot read")


def test_a_bad_default_is_reported_once_at_the_defaults_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("sources:", "defaults:\n  timeouts: { read: soon }\nsources:")
    problems = check_routes(_write(tmp_path, text))
    assert [(p.line, p.severity) for p in problems] == [(3, "error")]
    assert "defaults: timeouts.read: 'soon' is not a duration" in problems[0].message


def test_yaml_merge_keys_are_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace("    adapter: rest\n", "    <<: {adapter: rest}\n")
    problems = check_routes(_write(tmp_path, text))
    assert any(p.line == 7 and "merge keys" in p.message for p in problems)


def test_route_without_match_is_refused_at_the_route(tmp_path: Path) -> None:
    text = MINIMAL.replace("    match: { type: dossier.submitted }\n", "")
    problems = check_routes(_write(tmp_path, text))
    assert [(p.line, p.message) for p in problems] == [
        (10, "route 'all': missing required key 'match'")
    ]


def test_checks_needing_outside_knowledge_are_skipped_without_it() -> None:
    problems = check_routes(FIXTURES / "unknown_names.yaml")
    assert not any("unknown message type" in p.message for p in problems)
    assert not any("unknown adapter kind" in p.message for p in problems)
    assert not check_routes(FIXTURES / "old_province.yaml")


def test_unit_checks_use_the_unit_table_given() -> None:
    problems = _check(FIXTURES / "old_province.yaml", units=None)
    assert problems == []


# --- a valid file ---------------------------------------------------------------------------


def test_valid_file_loads_with_defaults_merged_into_every_target() -> None:
    config = load_routes(
        FIXTURES / "valid.yaml",
        known_types=KNOWN_TYPES,
        known_adapters=KNOWN_ADAPTERS,
        units=FakeUnits(),
    )
    portal, hanoi = config.targets["portal"], config.targets["hanoi"]
    # portal: everything from `defaults`, and built-in values where defaults are silent
    assert (portal.connect_timeout, portal.read_timeout) == (3.0, 12.0)
    assert portal.concurrency == 6
    assert portal.rate_limit is None
    assert portal.retry.schedule == (10.0, 60.0)
    assert portal.retry.max_attempts == 5
    assert portal.retry.max_age == 72 * 3600.0  # built in
    assert portal.delivery_limit == 20  # built in
    # hanoi: its own values win, key by key inside timeouts and retry
    assert (hanoi.connect_timeout, hanoi.read_timeout) == (3.0, 15.0)
    assert hanoi.concurrency == 4
    assert hanoi.rate_limit == pytest.approx(10.0)
    assert (hanoi.retry.schedule, hanoi.retry.max_age) == ((10.0, 60.0), 24 * 3600.0)
    assert hanoi.delivery_limit == 5
    assert hanoi.options == {"method": "PUT", "headers": {"X-Api": "1"}}
    assert hanoi.name == "hanoi"


def test_valid_file_keeps_codes_as_written_and_lists_as_tuples() -> None:
    config = load_routes(FIXTURES / "valid.yaml")
    hanoi = config.routes[2]
    assert hanoi.match.province == ("01",)  # unquoted 01 would be the integer 1 in YAML
    assert hanoi.match.type == ("dossier.submitted", "payment.confirmed")
    assert hanoi.to == ("hanoi",)
    assert config.routes[1].continue_ is True
    assert config.sources["dossier.submitted"] == ("000.00.00.G22/portal",)
    assert config.unmatched == "dead-letter"


def test_config_knows_its_file_digest_and_lines() -> None:
    path = FIXTURES / "valid.yaml"
    config = load_routes(path)
    assert config.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert config.path == str(path)
    assert config.source_line("target", "hanoi") == 17
    assert config.source_line("route", "hanoi") == 35
    assert config.source_line("sources", "payment.confirmed") == 9
    assert config.source_line("route", "nope") is None


def test_spec_resolves_credential_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "portal.key"
    key_file.write_text("file-secret\n", encoding="utf-8")
    text = (FIXTURES / "valid.yaml").read_text(encoding="utf-8")
    path = _write(tmp_path, text.replace("file:/etc/dvcbus/portal.key", f"file:{key_file}"))
    monkeypatch.setenv("DVCBUS_TEST_PORTAL_TOKEN", "env-secret")
    portal = load_routes(path).targets["portal"]
    spec = portal.spec()
    assert spec.credentials == {"token": "env-secret", "key": "file-secret"}
    assert (spec.name, spec.agency, spec.adapter) == ("portal", "000.00.00.G22", "rest")
    assert (spec.connect_timeout, spec.read_timeout, spec.concurrency) == (3.0, 12.0, 6)
    unresolved = portal.spec(resolve_credentials=False)
    assert unresolved.credentials["token"] == "env:DVCBUS_TEST_PORTAL_TOKEN"


def test_missing_credential_names_target_and_reference_not_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DVCBUS_TEST_PORTAL_TOKEN", raising=False)
    portal = load_routes(FIXTURES / "valid.yaml").targets["portal"]
    with pytest.raises(CredentialError, match=r"target 'portal'.*env:DVCBUS_TEST_PORTAL_TOKEN"):
        portal.spec()
    monkeypatch.setenv("DVCBUS_TEST_PORTAL_TOKEN", "env-secret")
    with pytest.raises(CredentialError) as caught:
        portal.spec()  # the key file does not exist
    assert "file:/etc/dvcbus/portal.key" in str(caught.value)
    assert "env-secret" not in str(caught.value)


# --- durations and rates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("1m", 60.0),
        ("1.5m", 90.0),
        ("72h", 259200.0),
        ("7d", 604800.0),
    ],
)
def test_durations_are_read_with_their_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10", 10, "10 sec", "-1s", "0s", "", True, None])
def test_durations_without_a_unit_are_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_rates_are_per_second() -> None:
    assert parse_rate("50/s") == 50.0
    assert parse_rate("600/m") == 10.0
    for bad in ("50", "50/h", "0/s", 50):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_durations_format_back_readably() -> None:
    assert [format_duration(s) for s in (0.5, 10, 60, 90, 3600, 259200)] == [
        "500ms",
        "10s",
        "1m",
        "90s",
        "1h",
        "3d",
    ]
