"""The router's payment step: every ``payment.confirmed`` is verified before any copy leaves.

The platform signs a confirmation with its partner's secret over its own strings
(``adapters.kinds.payment_signature``); v2 of the type carries them verbatim in
``payload.signed`` beside the canonical fields the agencies read. A confirmation passes only
when the checksum matches under one of its partner's secrets (several while rotating) AND
every canonical field says what the signed strings say: otherwise a forger could keep the
signed strings and change ``result``. v1 carries no signed strings: nothing can be verified,
so it is refused ``unverifiable`` rather than forwarded on trust. Neither the checksum given
nor the one expected is ever put in a detail or a log.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from adapters.kinds.payment_signature import checksum_matches, platform_checksum
from bus.contract.platform_time import platform_moment
from bus.contract.rejections import Reason, Rejection
from bus.routes.credentials import UnreadableReference, read_reference
from bus.routes.model import Payments

__all__ = ["PAYMENT_TYPE", "PaymentChecksum"]

PAYMENT_TYPE = "payment.confirmed"
# Canonical field → the signed field that must say the same (same text).
_SAME_TEXT = (
    ("error_code", "error_code"),
    ("partner_code", "partner_code"),
    ("reference", "reference"),
    ("currency", "currency"),
    ("transaction_id", "transaction_id"),
    ("bank_code", "bank_code"),
)
NOT_AN_INTEGER = (
    "payload.amount: type integer (a number written with a fraction, even 8000.0, is not an "
    "amount of VND: send 8000)"
)


class PaymentChecksum:
    """Partners' secrets, resolved once per routes.yaml, and the check of one confirmation."""

    def __init__(
        self,
        secrets: Mapping[str, tuple[str, ...]],
        unreadable: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.secrets = dict(secrets)
        # Per partner, why each of its references gave no secret (names them, never a value).
        self.unreadable = dict(unreadable or {})

    @classmethod
    def from_config(
        cls, payments: Payments, read: Callable[[str], str] = read_reference
    ) -> PaymentChecksum:
        """Read every partner's secret references; an unreadable one is noted, never raised.

        A partner keeps the secrets that could be read (one unset while rotating in is
        harmless); a partner left with none has its confirmations refused ``unverifiable``.
        """
        secrets: dict[str, tuple[str, ...]] = {}
        unreadable: dict[str, tuple[str, ...]] = {}
        for code, partner in payments.partners.items():
            readable, problems = [], []
            for ref in partner.secrets:
                try:
                    readable.append(read(ref))
                except UnreadableReference as exc:
                    problems.append(f"secret {ref} {exc.why}")
            secrets[code] = tuple(readable)
            if problems:
                unreadable[code] = tuple(problems)
        return cls(secrets, unreadable)

    @property
    def partners_without_secret(self) -> list[str]:
        """Partners none of whose secrets could be read: all their payments are refused."""
        return sorted(code for code, found in self.secrets.items() if not found)

    def check(self, doc: dict[str, Any], version: int) -> None:
        """Raise a :class:`Rejection` unless the confirmation is the platform's, unaltered."""
        payload = doc["payload"]
        if (
            type(payload["amount"]) is not int
        ):  # orjson reads 8000.0 as a float; draft-07 does not care
            raise Rejection(Reason.INVALID, NOT_AN_INTEGER)
        signed = payload.get("signed")
        if signed is None:
            raise Rejection(
                Reason.UNVERIFIABLE,
                f"{PAYMENT_TYPE} v{version} carries no signed fields of the platform "
                "(payload.signed): its checksum cannot be verified; send version 2",
            )
        partner = payload["partner_code"]
        secrets = self.secrets.get(partner)
        if not secrets:
            why = "cannot be read on this router" if secrets is not None else "is not configured"
            raise Rejection(
                Reason.UNVERIFIABLE,
                f"the checksum secret of payment partner {partner} {why} "
                "(routes.yaml payments: partners)",
            )
        if not checksum_matches(signed, secrets, payload["checksum"]):
            raise Rejection(
                Reason.CHECKSUM_MISMATCH,
                f"payload.checksum does not match the signed fields under any secret of "
                f"partner {partner}: altered on the way, or not signed by that partner",
            )
        differs = first_difference(payload, signed)
        if differs is not None:
            raise Rejection(
                Reason.CHECKSUM_MISMATCH,
                f"payload.{differs} differs from payload.signed.{_SIGNED_OF.get(differs, differs)}:"
                " the checksum does not cover what would be delivered",
            )

    def verdict(self, doc: dict[str, Any], version: int) -> tuple[Rejection | None, str]:
        """The check's outcome and one line for ``routes explain`` (no secret, no checksum)."""
        try:
            self.check(doc, version)
        except Rejection as rej:
            return rej, f"checksum: refused, {rej.reason.value}: {rej.detail}"
        payload = doc["payload"]
        secrets = self.secrets[payload["partner_code"]]
        given = payload["checksum"].encode("ascii", "replace")
        which = next(
            i
            for i, secret in enumerate(secrets, 1)
            if hmac.compare_digest(platform_checksum(payload["signed"], secret).encode(), given)
        )
        of = f", secret {which} of {len(secrets)}" if len(secrets) > 1 else ""
        return None, (
            f"checksum: verified (partner {payload['partner_code']}{of}; "
            "signed fields agree with the payload)"
        )


_SIGNED_OF = {"paid_at": "transaction_time"}


def first_difference(payload: dict[str, Any], signed: Mapping[str, str]) -> str | None:
    """The first canonical field that does not say what its signed string says, or None."""
    for name, signed_name in _SAME_TEXT:
        if payload[name] != signed[signed_name]:
            return name
    if str(payload["amount"]) != signed["amount"]:
        return "amount"
    if payload.get("description", "") != signed["description"]:
        return "description"
    if not _same_second(payload["paid_at"], signed["transaction_time"]):
        return "paid_at"
    return None


def _same_second(rfc3339: str, platform: str) -> bool:
    """Whether an RFC 3339 time and the platform's ``yyyyMMddHHmmss`` name the same second.

    A time written in Vietnam time (``+07:00``, nearly all of them) is compared as text.
    """
    if rfc3339.endswith("+07:00") and len(platform) == 14:
        t = rfc3339
        return f"{t[0:4]}{t[5:7]}{t[8:10]}{t[11:13]}{t[14:16]}{t[17:19]}" == platform
    return _seconds(rfc3339) == _platform_seconds(platform)


def _seconds(rfc3339: str) -> int:
    """The whole second an RFC 3339 time (with offset) names, as a Unix time."""
    return int(datetime.fromisoformat(rfc3339).timestamp())


def _platform_seconds(text: str) -> int:
    """The Unix time of the platform's ``yyyyMMddHHmmss`` (Vietnam time); -1 if impossible."""
    moment = platform_moment(text)
    return -1 if moment is None else int(moment.timestamp())
