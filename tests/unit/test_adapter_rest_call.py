"""The REST call and the reading of its answer as public functions a new kind composes."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from adapters import Delivered, Message, PermanentFailure, TargetSpec, TransientFailure
from adapters.kinds.rest import (
    RETRY_AS_UPDATE,
    AnswerRules,
    RequestOptions,
    ResponseOptions,
    RestOptions,
    build_request,
    compile_call,
    interpret_answer,
)
from adapters.options import AdapterConfigError

ROOT = Path(__file__).resolve().parents[2]
BODY = (ROOT / "schemas/examples/dossier.submitted.v1/valid/citizen-hanoi-online.json").read_bytes()
MESSAGE = Message.from_doc(orjson.loads(BODY), BODY)
TARGET = TargetSpec("hanoi", "H26", "rest", "http://127.0.0.1:9/api", 1.0, 2.0, 1)

PORTAL_RULES = AnswerRules.compile(
    ResponseOptions.model_validate(
        {
            "error_code": {"field": "error_code", "success": ["0"], "transient": ["-9"]},
            "reference": ["data.MaHoSo"],
            "already_exists": {
                "values": ["-2"],
                "retry_as": {"url": "{endpoint}/cap-nhat"},
            },
        }
    )
)


def answer(doc: object) -> bytes:
    return orjson.dumps(doc)


def test_a_call_becomes_a_request_with_the_contract_headers_then_its_own() -> None:
    options = RestOptions(headers={"X-Nguon": "DVCBUS"})
    request = RequestOptions(url="{endpoint}/hoso/{payload.dossier_no}", body={"Ma": "id"})
    call = compile_call(request, options, TARGET)
    built = build_request(call, MESSAGE)
    assert (built.method, built.url) == (
        "POST",
        "http://127.0.0.1:9/api/hoso/000.04.01.H26-261125-0031",
    )
    assert orjson.loads(built.data) == {"Ma": MESSAGE.id}
    assert list(built.headers) == [
        "Content-Type", "Idempotency-Key", "traceparent", "X-Message-Type", "X-Nguon",
    ]  # fmt: skip
    assert built.headers["Idempotency-Key"] == MESSAGE.id


def test_a_wrong_mapping_names_the_target_and_the_option() -> None:
    with pytest.raises(AdapterConfigError, match=r"target 'hanoi': option .*insert\.body"):
        compile_call(RequestOptions(body={"Ma": {"from": ""}}), RestOptions(), TARGET, "insert.")


@pytest.mark.parametrize(
    ("status", "body", "expected", "reason"),
    [
        (200, answer({"error_code": "0", "data": {"MaHoSo": "HS-1"}}), Delivered("HS-1"), None),
        (200, answer({"error_code": -9, "message": "bận"}), TransientFailure, "code -9: 'bận'"),
        (200, answer({"error_code": "-1"}), PermanentFailure, "agency error_code -1"),
        (200, answer({"ok": True}), PermanentFailure, "no error_code"),
        (200, b"<html>", PermanentFailure, "not JSON"),
        (503, b"", TransientFailure, "HTTP 503"),
        (200, answer({"error_code": "-2", "message": "đã tồn tại"}), PermanentFailure, "-2"),
    ],
)  # fmt: skip
def test_an_answer_is_read_by_the_declared_rules(
    status: int, body: bytes, expected: object, reason: str | None
) -> None:
    outcome = interpret_answer(status, body, PORTAL_RULES)
    if reason is None:
        assert outcome == expected
    else:
        assert isinstance(outcome, expected) and reason in outcome.reason  # type: ignore[arg-type]


def test_an_already_exists_refusal_asks_for_the_update_only_when_allowed() -> None:
    body = answer({"error_code": "-2", "message": "Hồ sơ đã tồn tại"})
    assert interpret_answer(200, body, PORTAL_RULES, allow_update=True) is RETRY_AS_UPDATE
    assert isinstance(interpret_answer(200, body, PORTAL_RULES), PermanentFailure)


NO_RULES = AnswerRules.compile(ResponseOptions())


@pytest.mark.parametrize(
    "doc",
    [{"error_code": "-1", "message": "Lỗi hệ thống"}, {"errorCode": 5, "msg": "Lỗi hệ thống"},
     {"ma_loi": "E01", "thong_bao": "Lỗi hệ thống"}, {"MaLoi": "99", "MoTa": "Lỗi hệ thống"}],
)  # fmt: skip
def test_without_a_declared_rule_a_non_zero_code_is_a_refusal_quoting_the_agency(
    doc: dict[str, object],
) -> None:
    outcome = interpret_answer(200, answer(doc), NO_RULES)
    assert isinstance(outcome, PermanentFailure), outcome
    assert "no declared success rule" in outcome.reason
    assert "'Lỗi hệ thống'" in outcome.reason


@pytest.mark.parametrize(
    "doc",
    [{"error_code": "0", "reference": "R-1"}, {"error_code": 0, "reference": "R-1"},
     {"errorCode": "00", "reference": "R-1"}, {"ma_loi": "000", "reference": "R-1"},
     {"error_code": None, "reference": "R-1"}, {"error_code": "", "reference": "R-1"},
     {"reference": "R-1", "code": "-1"}],
)  # fmt: skip
def test_without_a_declared_rule_a_zero_or_absent_code_is_a_delivery(
    doc: dict[str, object],
) -> None:
    assert interpret_answer(200, answer(doc), NO_RULES) == Delivered(reference="R-1")


def test_without_a_declared_rule_the_agency_text_is_masked() -> None:
    doc = {"error_code": "-1", "message": "Sai số điện thoại 0987654321"}
    outcome = interpret_answer(200, answer(doc), NO_RULES)
    assert isinstance(outcome, PermanentFailure) and "0987654321" not in outcome.reason


def test_a_declared_rule_governs_instead_of_the_undeclared_guess() -> None:
    rules = AnswerRules.compile(
        ResponseOptions.model_validate({"error_code": {"field": "status", "success": ["OK"]}})
    )
    doc = {"status": "OK", "error_code": "-1", "reference": "R-1"}
    assert interpret_answer(200, answer(doc), rules) == Delivered(reference="R-1")
