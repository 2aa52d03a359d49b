"""One model of answer codes for REST ``error_code`` and SOAP ``result_code``, one matcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.base import PermanentFailure, TransientFailure
from adapters.codes import CodeRule, ErrorCodeRule, ResultCodeRule, Verdict, code_text
from adapters.kinds import rest, soap

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("code", "verdict"),
    [("0", Verdict.DELIVERED), ("2", Verdict.DELIVERED), ("9", Verdict.TRANSIENT),
     ("7", Verdict.PERMANENT), ("", Verdict.PERMANENT)],
)  # fmt: skip
def test_a_code_means_delivered_transient_or_permanent_as_declared(
    code: str, verdict: Verdict
) -> None:
    rule = CodeRule(success=["0", 2], transient=[9])
    assert rule.verdict(code) is verdict


def test_a_failure_carries_the_reason_and_the_declared_kind() -> None:
    rule = CodeRule(transient=["-9"])
    assert rule.failure("-9", "busy") == TransientFailure("busy")
    assert rule.failure("-1", "refused") == PermanentFailure("refused")


def test_codes_are_compared_as_text_and_a_boolean_is_no_code() -> None:
    assert code_text(0) == "0" and code_text("00") == "00"
    assert code_text(True) is None and code_text(None) is None and code_text(1.5) is None


def test_both_kinds_use_the_one_model_under_their_own_option_names() -> None:
    assert rest.ErrorCodeRule is ErrorCodeRule and soap.ResultCodeRule is ResultCodeRule
    assert issubclass(ErrorCodeRule, CodeRule) and issubclass(ResultCodeRule, CodeRule)
    rest_rule = ErrorCodeRule(field="errorCode", success=["00"], message_field="message")
    soap_rule = ResultCodeRule(element="MaLoi", success=[0, 2], message_element="MoTaLoi")
    assert rest_rule.verdict("00") is soap_rule.verdict("2") is Verdict.DELIVERED
    assert ErrorCodeRule().field == "error_code" and ErrorCodeRule().success == ["0"]
    with pytest.raises(ValueError, match="element"):
        ErrorCodeRule(element="MaLoi")  # each kind keeps its own names, strictly
    with pytest.raises(ValueError, match="element"):
        ResultCodeRule(field="x")


def test_soap_namespaces_are_written_in_one_table() -> None:
    uris = (
        "schemas.xmlsoap.org/soap/envelope",
        "www.w3.org/2003/05/soap-envelope",
        "wssecurity-secext",
        "wssecurity-utility",
    )
    holders = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "adapters").rglob("*.py")
        for uri in uris
        if uri in path.read_text(encoding="utf-8")
    }
    assert holders == {"adapters/soapns.py"}
