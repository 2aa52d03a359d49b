"""The router's payment rules, per routes.yaml: verify the checksum, and park a missing owner.

Every payment must reach the agency that owns the dossier or be visibly parked: the portal
takes a copy of every payment (``payments.portal_targets``), so a payment whose routes reach
only the portal would otherwise look delivered while its agency never hears of it. That
agency copy is dead-lettered ``unroutable``, as a dossier with no route is, and the
portal's copy still goes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import structlog

from bus.routes.credentials import read_reference
from bus.routes.model import Payments
from bus.routes.table import Explanation
from bus.routing.payment_checksum import PAYMENT_TYPE, PaymentChecksum

__all__ = ["PAYMENT_TYPE", "PaymentRules"]

log = structlog.get_logger("bus.router")


class PaymentRules:
    """What the router checks on a ``payment.confirmed`` beyond its schema and its routes."""

    def __init__(self, payments: Payments, read: Callable[[str], str] = read_reference) -> None:
        self.checksum = PaymentChecksum.from_config(payments, read)
        self.portal_targets = frozenset(payments.portal_targets)

    def report_unreadable_secrets(self) -> None:
        """Log, by reference, the partner secrets that could not be read (at start, on reload).

        Not a refusal to route: dossiers and statuses keep flowing. A partner left with no
        secret has its payments dead-lettered ``unverifiable`` (an error); one secret unset
        while rotating in is a warning.
        """
        without = set(self.checksum.partners_without_secret)
        for partner, problems in self.checksum.unreadable.items():
            level = log.error if partner in without else log.warning
            level("router.payment_secret_unreadable", partner=partner, problems=list(problems))

    def check(self, doc: dict[str, Any], version: int) -> None:
        """Raise a rejection unless the confirmation is verified (see ``payment_checksum``)."""
        self.checksum.check(doc, version)

    def missing_agency_copy(self, doc: dict[str, Any], targets: tuple[str, ...]) -> str | None:
        """Why the owning agency gets no copy (the dead letter's detail), or None if it does."""
        if not self.portal_targets or not set(targets) <= self.portal_targets:
            return None
        agency = doc["payload"]["agency"]
        return (
            f"no route for the agency copy of {PAYMENT_TYPE} agency={agency}: its routes reach "
            f"only {', '.join(targets)} (payments.portal_targets); the portal's copy goes on"
        )

    def explain(self, explanation: Explanation, doc: dict[str, Any], version: int) -> Explanation:
        """``explanation`` with the checksum verdict, and the fate the payment rules give it."""
        refused, line = self.checksum.verdict(doc, version)
        checks = (*explanation.checks, line)
        if explanation.fate is not None:
            return dataclasses.replace(explanation, checks=checks)
        if refused is not None:
            return dataclasses.replace(
                explanation, checks=checks, fate=refused.reason, detail=refused.detail
            )
        missing = self.missing_agency_copy(doc, explanation.targets)
        if missing is None:
            return dataclasses.replace(explanation, checks=checks)
        also = f"agency copy: dead letter, reason unroutable: {missing}"
        return dataclasses.replace(explanation, checks=checks, also=also)
