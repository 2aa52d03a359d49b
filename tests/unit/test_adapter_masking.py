"""Masking personal data in the text operators read (reasons, quoted agency answers)."""

import pytest

from adapters.masking import mask_text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("CCCD 001190012345", "CCCD 001*******345"),
        ("CMND 123456789 cũ", "CMND 12*******89 cũ"),
        ("CCCD001190012345", "CCCD001*******345"),
        ("gọi 0987654321", "gọi 09******21"),
        ("gọi 0987 654 321", "gọi 09******21"),
        ("gọi 0987.654.321", "gọi 09******21"),
        ("gọi +84987654321", "gọi +84******21"),
        ("máy bàn 024.3823.4567", "máy bàn 02******67"),
        ("thư minhanh.nguyen@example.com.vn", "thư m***@example.com.vn"),
        ("MST 0101234567", "MST 01******67"),
        ("MST 3701234567", "MST 37******67"),
    ],
)
def test_id_numbers_phones_and_emails_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "000.04.01.H26-261125-0031",  # dossier number
        "G09.20-20260609-0092637",
        "20261125091437",  # yyyyMMddHHmmss
        "2026-11-25T09:14:37+07:00",
        "FT26329812345678",  # transaction id
        "HTTP 503",
        "amount 8000 VND",
        "01a21070-f5a8-745d-80bd-5ae508e1ed3d",
    ],
)
def test_codes_operators_need_are_left_alone(text: str) -> None:
    assert mask_text(text) == text


def test_masking_keeps_only_the_ends_of_a_number() -> None:
    masked = mask_text("SĐT: 0912345678; CCCD: 079201001234")
    assert masked == "SĐT: 09******78; CCCD: 079*******234"
