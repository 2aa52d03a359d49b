"""Masking personal data in text an operator reads: reasons and quoted agency answers.

Adapters quote agencies' answers in failure reasons; those quotes go through the same
safety net as every log line: id numbers, phone numbers, tax numbers and e-mail addresses
are masked, tokens and passwords too. The text-level masks live here, in the SDK, so a
plug-in needs nothing from the bus; the bus's log masker
(:mod:`bus.observability.masking`) builds on them.

Formats (fixed star counts, so the mask does not tell the length either): id number
``001*******345``, phone ``09******12``, e-mail ``n***@example.vn``, name ``N***``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "MASK",
    "mask_email",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "mask_tax_code",
    "mask_text",
]

MASK = "***"

# ASCII digits only. A bare run of 9 to 12 digits is masked wherever it stands, even glued to
# letters ("CCCD001190012345"): privacy first. Phone numbers, which may contain separators,
# must stand apart from letters and digits, so hex ids and codes are not mistaken for them.
# Runs longer than 12 digits (timestamps like 20261125091500) are left alone.
_NUMBERS = re.compile(
    r"(?<![0-9A-Za-z])(?P<phone>(?:\+84|84|0)[ .-]?[1-9](?:[ .-]?[0-9]){8,9})(?![0-9A-Za-z])"
    r"|(?<![0-9])(?:(?P<id12>[0-9]{12})|(?P<id9>[0-9]{9})"
    r"|(?P<other>[0-9]{10,11}))(?![0-9])"  # other: tax and insurance numbers
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_USERINFO = re.compile(r"(?<=://)([^\s/:@]+):[^\s/@]+(?=@)")
_BEARER = re.compile(r"\b([Bb]earer|[Bb]asic|[Tt]oken)([\s:=]+)[A-Za-z0-9._~+/=-]{6,}")
# Nothing shorter than a 9-digit id number can hold anything the net looks for.
_MIN_LEN = 9


def _digits(value: str) -> str:
    return "".join(ch for ch in value if "0" <= ch <= "9")


def mask_id_number(value: str) -> str:
    """``001190012345`` → ``001*******345``; a 9-digit number keeps 2 + 2."""
    digits = _digits(value)
    if len(digits) >= 12:
        return f"{digits[:3]}*******{digits[-3:]}"
    if len(digits) >= 8:
        return f"{digits[:2]}*******{digits[-2:]}"
    return MASK


def mask_phone(value: str) -> str:
    """``0987654321`` → ``09******21``; ``+84987654321`` → ``+84******21``."""
    digits = _digits(value)
    if len(digits) < 8:
        return MASK
    if value.lstrip().startswith("+"):
        return f"+{digits[:2]}******{digits[-2:]}"
    return f"{digits[:2]}******{digits[-2:]}"


def mask_email(value: str) -> str:
    """``minhanh.nguyen@example.com`` → ``m***@example.com``."""
    local, at, domain = value.rpartition("@")
    if not at or not local:
        return MASK
    return f"{local[0]}***@{domain}"


def mask_name(value: str) -> str:
    """``Nguyễn Văn An`` → ``N***``."""
    stripped = value.strip()
    return f"{stripped[0]}***" if stripped else MASK


def mask_tax_code(value: str) -> str:
    """``0312345678`` → ``03******78`` (tax and insurance numbers)."""
    digits = _digits(value)
    return f"{digits[:2]}******{digits[-2:]}" if len(digits) >= 8 else MASK


def _number(match: re.Match[str]) -> str:
    if match.lastgroup == "phone":
        return mask_phone(match.group())
    if match.lastgroup == "other":
        return mask_tax_code(match.group())
    return mask_id_number(match.group())


def _email(match: re.Match[str]) -> str:
    return mask_email(match.group())


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """The safety net for free text (errors, agency answers): mask what looks personal or secret.

    Finds 12-digit and 9-digit id numbers, Vietnamese mobile and landline numbers (also with
    ``+84`` and spaces or dots), e-mail addresses, ``Bearer``/``Basic``/``Token`` credentials
    and ``user:password@`` in URLs. ``secrets`` are exact values (tokens the bus resolved)
    that are replaced wherever they appear.
    """
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if len(text) < _MIN_LEN:
        return text
    if "@" in text:
        if "://" in text:
            text = _USERINFO.sub(r"\1:" + MASK, text)
        text = _EMAIL.sub(_email, text)
    if "earer" in text or "asic" in text or "oken" in text:
        text = _BEARER.sub(r"\1\2" + MASK, text)
    return _NUMBERS.sub(_number, text)
