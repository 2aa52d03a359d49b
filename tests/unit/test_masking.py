"""Personal data and secrets are masked before anything is logged."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from bus.contract.schemas import SchemaRegistry
from bus.observability import log
from bus.observability.masking import (
    LOG_MASKER,
    LogMasker,
    MaskingFormatter,
    mask_email,
    mask_id_number,
    mask_phone,
    mask_text,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "schemas" / "examples"


@pytest.fixture(scope="module")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.load()


@pytest.fixture
def masker(schemas: SchemaRegistry) -> LogMasker:
    m = LogMasker()
    m.use_schemas(schemas)
    m.add_secrets(["test-portal-token"])
    return m


def pii_values(schemas: SchemaRegistry, doc: dict[str, Any]) -> list[str]:
    """The values an example carries at its schema's x-pii paths (strings, as written)."""
    found: list[str] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if not path:
            if isinstance(node, str | int) and str(node):
                found.append(str(node))
            return
        head, rest = path[0], path[1:]
        if head == "*" and isinstance(node, list):
            for item in node:
                walk(item, rest)
        elif isinstance(node, dict) and head in node:
            walk(node[head], rest)

    for path in schemas.pii_fields(doc["type"], doc["version"]):
        walk(doc, path)
    return found


def valid_examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*/valid/*.json"))


def test_id_number_keeps_first_and_last_three_digits() -> None:
    assert mask_id_number("001190012345") == "001*******345"
    assert mask_id_number("012345678") == "01*******78"  # old 9-digit card: 2 + 2


def test_phone_keeps_first_and_last_two_digits() -> None:
    assert mask_phone("0987654321") == "09******21"
    assert mask_phone("+84987654321") == "+84******21"


def test_email_keeps_first_letter_and_domain() -> None:
    assert mask_email("nguyen.van.a@example.vn") == "n***@example.vn"


def test_free_text_safety_net_finds_ids_phones_and_emails() -> None:
    text = (
        "Hồ sơ của công dân CCCD 001190012345 (CMND cũ 012345678), SĐT 0987654321 / "
        "+84 912 345 678 / 024.3825.3535, email minhanh.nguyen@example.com bị từ chối"
    )
    masked = mask_text(text)
    for secret in (
        "001190012345",
        "012345678",
        "0987654321",
        "912 345 678",
        "3825.3535",
        "minhanh.nguyen",
    ):
        assert secret not in masked
    assert "001*******345" in masked
    assert "09******21" in masked
    assert "m***@example.com" in masked


def test_safety_net_leaves_bus_identifiers_alone() -> None:
    text = (
        "dossier 000.00.53.H48-220921-0099 G09.20-20260609-0092637 at 20261125091500 "
        "procedure 1.012889 agency 000.00.00.H29 HTTP 503 attempt 3 in 600s"
    )
    assert mask_text(text) == text


def test_credentials_in_free_text_are_blanked() -> None:
    masked = mask_text(
        "GET amqp://guest:s3cretpass@broker/ with Authorization: Bearer eyJhbGciOi.abc.def and "
        "the token test-portal-token",
        secrets=["test-portal-token"],
    )
    assert "s3cretpass" not in masked
    assert "eyJhbGciOi" not in masked
    assert "test-portal-token" not in masked
    assert "guest:***@broker" in masked


@pytest.mark.parametrize("path", valid_examples(), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_a_logged_message_has_every_x_pii_field_masked(
    masker: LogMasker, schemas: SchemaRegistry, path: Path
) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    original = copy.deepcopy(doc)
    secrets = pii_values(schemas, doc)  # may be empty (a minimal example)

    event = masker(None, "info", {"event": "debugging", "message": doc, "payload": doc["payload"]})
    rendered = orjson.dumps(event).decode()

    for value in secrets:
        if len(value) > 3:  # a 1-3 character value cannot be told from the mask around it
            assert value not in rendered, f"{value!r} of {path.name} reached the log line"
    assert doc == original, "masking must not change the caller's message"
    assert event["message"]["id"] == doc["id"]  # identifiers stay readable
    assert event["message"].get("correlation_id") == doc.get("correlation_id")


def test_x_pii_fields_are_masked_by_their_kind(masker: LogMasker) -> None:
    doc = json.loads(
        (EXAMPLES / "dossier.submitted.v1/valid/citizen-hanoi-online.json").read_text("utf-8")
    )
    applicant = masker(None, "info", {"event": "x", "message": doc})["message"]["payload"][
        "applicant"
    ]
    assert applicant["id_number"] == "001*******345"
    assert applicant["phone"] == "09******21"
    assert applicant["email"] == "m***@example.com"
    assert applicant["full_name"] == "N***"
    assert applicant["address"]["street"] == "***"
    assert applicant["address"]["commune_code"] == "00004"  # not personal: kept


def test_secret_keys_are_blanked_whatever_their_value(masker: LogMasker) -> None:
    event = masker(
        None,
        "info",
        {
            "event": "adapter.call",
            "token": "abc",
            "headers": {"Authorization": "Bearer x", "Cookie": "SESSIONID=1", "Accept": "json"},
            "client_secret": "s",
            "password": 1234,
            "checksum": "ab12",
            "session_id": "7",
        },
    )
    assert event["token"] == event["client_secret"] == event["password"] == "***"
    assert event["checksum"] == event["session_id"] == "***"
    assert event["headers"] == {"Authorization": "***", "Cookie": "***", "Accept": "json"}


def test_top_level_pii_fields_and_free_text_are_masked(masker: LogMasker) -> None:
    event = masker(
        None,
        "warning",
        {
            "event": "agency.answer",
            "phone": "0987654321",
            "id_number": 1190012345,
            "detail": "agency says test-portal-token invalid for 0912345678",
            "exception": "ValueError: bad email minhanh.nguyen@example.com",
            "message_id": "01a2107c-20a0-7362-9348-81c2916d4cc5",
            "url": "http://127.0.0.1:18100/api",
        },
    )
    assert event["phone"] == "09******21"
    assert "1190012345" not in str(event["id_number"])
    assert event["detail"] == "agency says *** invalid for 09******78"
    assert "minhanh" not in event["exception"]
    assert event["message_id"] == "01a2107c-20a0-7362-9348-81c2916d4cc5"
    assert event["url"] == "http://127.0.0.1:18100/api"


def test_the_log_chain_masks_after_exceptions_are_formatted_and_before_rendering() -> None:
    log.configure("INFO", "json")
    processors = structlog.get_config()["processors"]
    position = processors.index(LOG_MASKER)
    assert processors.index(structlog.processors.format_exc_info) < position
    assert position == len(processors) - 2  # the renderer is last


def test_library_log_records_go_through_the_same_net(masker: LogMasker) -> None:
    formatter = MaskingFormatter(masker, "%(message)s")
    record = logging.LogRecord(
        "aiohttp", logging.ERROR, __file__, 1, "failed for %s", ("0987654321",), None
    )
    assert formatter.format(record) == "failed for 09******21"
