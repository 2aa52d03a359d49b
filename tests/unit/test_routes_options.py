"""`routes check` reads each target's adapter options with its kind's own options model.

A typo in an option then fails the check, with the file, the option's line and its name,
instead of disabling the target when the dispatcher starts. The broken fixture marks the
lines it expects a problem on with ``# expect: <words>``, as the loader's fixtures do.
"""

from __future__ import annotations

import re
from pathlib import Path

from bus.delivery import adapter_registry
from bus.routes import Problem, check_routes
from bus.routes.checks import KindOptions

FIXTURES = Path(__file__).resolve().parent / "routes_fixtures" / "options"
BAD = FIXTURES / "bad_options.yaml"
VALID = FIXTURES / "valid_options.yaml"
SHIPPED_KINDS = {"rest", "soap", "portal-sync", "onestop-soap", "payment-confirmation"}
_EXPECT = re.compile(r"#\s*expect:\s*(.+?)\s*$")


def installed_options(kind: str) -> KindOptions | None:
    return KindOptions.of(adapter_registry.load(kind))


def check(path: Path) -> list[Problem]:
    return check_routes(
        path, known_adapters=adapter_registry.kind_names(), options_of=installed_options
    )


def test_every_wrong_option_is_reported_on_its_line_with_its_name() -> None:
    expected = {
        number: match.group(1)
        for number, line in enumerate(BAD.read_text(encoding="utf-8").splitlines(), start=1)
        if (match := _EXPECT.search(line))
    }
    problems = check(BAD)
    for line, words in expected.items():
        assert any(p.line == line and words in p.message for p in problems), (
            f"line {line}: no problem containing {words!r}; got:\n" + "\n".join(map(str, problems))
        )
    unexpected = [p for p in problems if p.line not in expected]
    assert not unexpected, "unexpected problems:\n" + "\n".join(map(str, unexpected))
    assert all(p.severity == "error" for p in problems)


def test_a_misspelt_option_reads_as_file_line_target_and_option() -> None:
    line = next(
        number
        for number, text in enumerate(BAD.read_text(encoding="utf-8").splitlines(), start=1)
        if text.strip().startswith("read_timout:")
    )
    [problem] = [p for p in check(BAD) if "read_timout" in p.message]
    assert str(problem).startswith(
        f"{BAD}:{line}:7: error: target 'hcmc': option 'read_timout': unknown option"
    )


def test_a_missing_option_is_cited_at_the_targets_options_key() -> None:
    [problem] = [p for p in check(BAD) if "'danang'" in p.message]
    options_line = BAD.read_text(encoding="utf-8").splitlines()[problem.line - 1]
    assert options_line.strip().startswith("options:")
    assert "option 'operations': Field required" in problem.message


def test_a_missing_wsdl_is_cited_at_its_line_not_found_when_the_dispatcher_starts() -> None:
    [problem] = [p for p in check(BAD) if "lienthong-v2.wsdl" in p.message]
    written = BAD.read_text(encoding="utf-8").splitlines()[problem.line - 1]
    assert written.strip().startswith("wsdl: lienthong-v2.wsdl")
    assert "Value error" not in problem.message


def test_valid_options_of_every_shipped_kind_raise_no_alarm() -> None:
    written = set(re.findall(r"adapter: ([a-z-]+)", VALID.read_text(encoding="utf-8")))
    assert written >= SHIPPED_KINDS
    assert all(installed_options(kind) is not None for kind in SHIPPED_KINDS)
    assert check(VALID) == []


def test_the_shipped_routes_file_has_no_option_problem() -> None:
    assert check(Path(__file__).resolve().parents[2] / "routes.yaml") == []


def test_options_are_not_checked_unless_the_caller_knows_the_kinds() -> None:
    problems = check_routes(BAD, known_adapters=adapter_registry.kind_names())
    assert not any("option" in p.message for p in problems)


def test_a_kind_that_declares_no_options_model_is_not_checked() -> None:
    class Bare:
        pass

    assert KindOptions.of(Bare) is None
    problems = check_routes(BAD, options_of=lambda kind: KindOptions.of(Bare))
    assert not any("option" in p.message for p in problems)


def test_a_rest_target_without_a_declared_success_rule_is_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        VALID.read_text(encoding="utf-8").replace(
            "    options: { response: { error_code: { field: error_code } } }\n", ""
        ),
        encoding="utf-8",
    )
    [problem] = check(path)
    assert (problem.severity, problem.line) == ("warning", 7)
    assert problem.message.startswith(
        "target 'portal': no declared success rule (options.response.error_code)"
    )
