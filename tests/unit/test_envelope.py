"""The first step of the router: size, encoding and JSON checks before anything is parsed."""

import pytest

from bus.contract.envelope import Message, parse
from bus.contract.rejections import Reason, Rejection


def test_a_json_object_is_parsed() -> None:
    assert parse(b'{"id": "x", "n": 1}') == {"id": "x", "n": 1}


def test_oversized_body_is_refused_before_parsing() -> None:
    body = b"{" + b" " * 2000 + b"}"
    with pytest.raises(Rejection) as caught:
        parse(body, max_bytes=1024)
    assert caught.value.reason is Reason.TOO_LARGE
    assert "2002 bytes" in caught.value.detail and "1024" in caught.value.detail


def test_broken_json_is_malformed_with_position() -> None:
    with pytest.raises(Rejection) as caught:
        parse(b'{"id": "x",\n "type": }')
    assert caught.value.reason is Reason.MALFORMED
    assert "line 2" in caught.value.detail


def test_non_utf8_body_is_malformed_with_offset() -> None:
    with pytest.raises(Rejection) as caught:
        parse(b'{"name": "Nguy\xe1n"}')
    assert caught.value.reason is Reason.MALFORMED
    assert "not UTF-8" in caught.value.detail and "offset 14" in caught.value.detail


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_malformed(body: bytes) -> None:
    with pytest.raises(Rejection) as caught:
        parse(body)
    assert caught.value.reason is Reason.MALFORMED
    assert "not an object" in caught.value.detail


def test_a_status_update_without_correlation_id_is_about_its_payload_dossier() -> None:
    doc = {
        "id": "m1",
        "type": "dossier.status_changed",
        "version": 1,
        "source": "x",
        "occurred_at": "2026-11-25T09:00:00+07:00",
        "payload": {"dossier_no": "D-1"},
    }
    assert Message.from_doc(doc, b"").dossier_no == "D-1"
    assert Message.from_doc({**doc, "correlation_id": "D-2"}, b"").dossier_no == "D-2"
