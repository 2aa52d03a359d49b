"""The router's path for one message, as named steps: parse → validate → authorise → route.

No broker here: the step functions take bytes and return a decision, so every rule is
testable with a dict. The router process (``bus.routing.router``) publishes what they decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from bus.contract.envelope import STATUS_TYPE, dossier_no_of, parse, short_str, status_of
from bus.contract.rejections import Reason, Rejection
from bus.contract.schemas import SchemaRegistry
from bus.routes import RoutingTable
from bus.routing.identity import Identified, Verdict, authorise
from bus.routing.payment_rules import PAYMENT_TYPE, PaymentRules
from bus.routing.reporting import Lookup, ReportingRule


@dataclass(frozen=True, slots=True)
class Forward:
    """Send a copy of ``body`` to each target."""

    message_id: str
    message_type: str
    targets: tuple[str, ...]
    routes: tuple[str, ...]
    body: bytes
    unit_notes: tuple[str, ...] = ()
    dossier_no: str | None = None
    status: int | None = None  # of a status update, for its hops
    parked: Park | None = None  # a copy dead-lettered beside the others (a payment's agency copy)


@dataclass(frozen=True, slots=True)
class Park:
    """Dead-letter the original body with a reason."""

    reason: Reason
    detail: str
    message_id: str | None = None
    message_type: str | None = None
    dossier_no: str | None = None


Decision = Forward | Park


class RouterPipeline:
    """Decides the fate of one ingress message; pure CPU, no I/O."""

    def __init__(
        self,
        schemas: SchemaRegistry,
        table: RoutingTable,
        max_bytes: int,
        dossier_agency: Lookup | None = None,
    ) -> None:
        """``dossier_agency``: the receiving agency the bus recorded for a dossier number
        (the store's), so a status update is checked against it (``bus.routing.reporting``)."""
        self.reporting = ReportingRule(table.agencies, dossier_agency)
        self.schemas = schemas
        self.table = table
        self.max_bytes = max_bytes

    @property
    def table(self) -> RoutingTable:
        return self._table

    @table.setter
    def table(self, table: RoutingTable) -> None:
        """New routes (a reload) bring their payment partners' secrets with them."""
        self._table = table
        self.payments = PaymentRules(table.config.payments)
        self.reporting.registry = table.agencies

    def decide(self, body: bytes, identity: Verdict | None = None) -> Decision:
        """The fate of ``body``: forwarded to targets, or parked with a reason.

        ``identity``: who the broker says sent it (``bus.routing.identity``); None when the
        router does not require one (setting ``ingress_identity = "off"``)."""
        doc: dict[str, Any] | None = None
        try:
            doc = parse(body, self.max_bytes)
            type_, version = self.schemas.validate(doc)
            source = doc["source"]
            if identity is not None:
                authorise(identity, type_, source)
                if type_ == STATUS_TYPE:  # its sender reports on its own agency's dossiers
                    self._check_reporter(identity, doc["payload"])
            self.table.authorise(type_, source)
            if type_ == PAYMENT_TYPE:
                self.payments.check(doc, version)
            attrs = self.schemas.route_attributes(doc)
            resolution = self.table.resolve(type_, source, attrs, unit_date(doc, attrs))
        except Rejection as rej:
            return Park(rej.reason, rej.detail, *_identity(doc))
        notes = resolution.flags
        translation = resolution.translation
        if translation is not None and translation.translated:
            body = _rewrite_units(self.schemas, doc, attrs, translation)
            notes = translation.notes + notes
        parked = None
        if type_ == PAYMENT_TYPE:
            missing = self.payments.missing_agency_copy(doc, resolution.targets)
            if missing is not None:
                parked = Park(Reason.UNROUTABLE, missing, *_identity(doc))
        return Forward(
            doc["id"],
            type_,
            resolution.targets,
            resolution.routes,
            body,
            notes,
            dossier_no_of(doc),
            status_of(doc) if type_ == STATUS_TYPE else None,
            parked,
        )

    def _check_reporter(self, identity: Verdict, payload: dict[str, Any]) -> None:
        assert type(identity) is Identified and identity.speaks is not None  # authorised
        self.reporting.check(identity.sender_id, identity.speaks, payload)


def unit_date(doc: dict[str, Any], attrs: dict[str, str]) -> str | None:
    """When what a message with unit codes describes happened: its unit codes mean what they
    meant then (a dossier submitted before 1 July 2025 names pre-reform communes)."""
    if "commune" not in attrs and "province" not in attrs:
        return None
    payload = doc.get("payload")
    if not isinstance(payload, dict):
        return None
    when = payload.get("submitted_at") or payload.get("status_at")
    return when if isinstance(when, str) else None


def _identity(doc: dict[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    """Message id, type and dossier number of a refused message, when they are usable strings."""
    if not doc:
        return None, None, None
    return short_str(doc.get("id")), short_str(doc.get("type")), dossier_no_of(doc)


def _rewrite_units(
    schemas: SchemaRegistry, doc: dict[str, Any], attrs: dict[str, str], translation: Any
) -> bytes:
    """Carry the current unit codes to the agencies; the originals stay in the audit notes."""
    for name in ("province", "commune"):
        new = getattr(translation, name)
        if name in attrs and new and new != attrs[name]:
            schemas.set_route_attribute(doc, name, new)
    return orjson.dumps(doc)
