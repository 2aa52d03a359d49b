"""The payment platform's checksum (integration 1.0.6): the fields it signs, in its order.

One definition shared by the router, which verifies every ``payment.confirmed`` before any
copy leaves it, and by agency teams, who verify the same checksum with their copy of the
partner secret. The values are the platform's own strings, verbatim (``payload.signed`` of
``payment.confirmed`` v2): the transaction time in its ``yyyyMMddHHmmss`` form, the amount
as the digits it sent. Re-formatting any of them (an ISO date, ``8000.0``) breaks the hash,
which is the point.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = [
    "SIGNED_FIELDS",
    "checksum_matches",
    "platform_checksum",
    "sign_as_platform",
    "signature_base",
]

# The platform's order. ``payload.signed`` carries exactly these keys.
SIGNED_FIELDS = (
    "message_kind",
    "error_code",
    "partner_code",
    "reference",
    "amount",
    "currency",
    "transaction_id",
    "bank_code",
    "transaction_time",
    "description",
)


def signature_base(signed: Mapping[str, str]) -> str:
    """The text the platform hashes, without the secret: its fields joined with ``|``."""
    return "|".join(signed[name] for name in SIGNED_FIELDS)


def platform_checksum(signed: Mapping[str, str], secret: str) -> str:
    """Lowercase hex SHA-256 of the signed fields joined with ``|``, then ``|`` and the secret."""
    text = f"{signature_base(signed)}|{secret}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def checksum_matches(signed: Mapping[str, str], secrets: Iterable[str], given: str) -> bool:
    """Whether ``given`` is the checksum under any of ``secrets`` (several while rotating).

    Each comparison is constant-time; every secret is tried, so the time does not say which.
    """
    base = signature_base(signed).encode("utf-8") + b"|"
    presented = given.encode("utf-8", "replace")
    found = False
    for secret in secrets:
        expected = hashlib.sha256(base + secret.encode("utf-8")).hexdigest().encode("ascii")
        found |= hmac.compare_digest(expected, presented)
    return found


_VIETNAM = timezone(timedelta(hours=7))


def sign_as_platform(
    payload: Mapping[str, Any], secret: str, message_kind: str = "PAYMENT_RESULT"
) -> dict[str, Any]:
    """``payload`` with ``signed`` and ``checksum`` as the platform would send them.

    For stand-ins, the demo, tests and agency teams' fixtures: the platform's strings are
    derived from the canonical fields (the time in Vietnam ``yyyyMMddHHmmss``).
    """
    paid = datetime.fromisoformat(str(payload["paid_at"])).astimezone(_VIETNAM)
    signed = {
        "message_kind": message_kind,
        "error_code": str(payload["error_code"]),
        "partner_code": str(payload["partner_code"]),
        "reference": str(payload["reference"]),
        "amount": str(payload["amount"]),
        "currency": str(payload["currency"]),
        "transaction_id": str(payload["transaction_id"]),
        "bank_code": str(payload["bank_code"]),
        "transaction_time": paid.strftime("%Y%m%d%H%M%S"),
        "description": str(payload.get("description", "")),
    }
    return {**payload, "signed": signed, "checksum": platform_checksum(signed, secret)}
