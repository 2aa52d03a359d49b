"""A system reports statuses only on its own agency's dossiers (or those it is delegated for).

Identity (``bus.routing.identity``) proves which sender published a status update; this
rule proves that sender may speak about that dossier. The dossier's receiving agency is
taken, most trusted first, from:

1. the dossier number, when it begins with an agency identifier (``000.00.53.H48-…``: the
   number is issued by the agency that received the dossier, DOMAIN.md), no I/O;
2. what the bus recorded when it delivered the dossier (``dossier_agencies`` in the store,
   written in the same commit as the delivery), one point read, cached once found;
3. the status update's own ``agency``, for a dossier the bus never saw (a counter dossier).

The sender must speak for that agency, and for the ``agency`` the update names (it is what
the update is routed by). It speaks for an agency when the agency is one of its
``agencies`` in senders.yaml (a department or commune office ``000.00.53.H26`` counts as its
province committee's ``000.00.00.H26``, as in the agency registry), or matches its
``delegated_for`` (agency globs, or province codes through the agency registry).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bus.contract.rejections import Reason, Rejection
from bus.routes.model import AGENCY_ID, compile_values

if TYPE_CHECKING:
    from bus.ingress.senders import Sender
    from bus.routes.agencies import AgencyRegistry

_PROVINCE = re.compile(r"^\d{2}$")
Lookup = Callable[[str], str | None]  # dossier number -> recorded receiving agency


class Speaks:
    """For whom one sender speaks, compiled once (the router asks for every status)."""

    __slots__ = ("delegated", "own", "provinces", "said")

    def __init__(self, sender: Sender) -> None:
        self.own = frozenset(sender.agencies)
        globs = tuple(d for d in sender.delegated_for if not _PROVINCE.match(d))
        self.delegated = compile_values(globs) if globs else None
        self.provinces = frozenset(d for d in sender.delegated_for if _PROVINCE.match(d))
        said = ", ".join(sender.agencies)
        if sender.delegated_for:
            said += f"; delegated for {', '.join(sender.delegated_for)}"
        self.said = said

    def covers(self, agency: str, registry: AgencyRegistry | None) -> bool:
        own = self.own
        if agency in own or ("000.00.00." + agency[-3:]) in own:
            return True
        if self.delegated is not None and self.delegated.match(agency):
            return True
        if self.provinces and registry is not None:
            return registry.province_of(agency) in self.provinces
        return False


def dossier_prefix(dossier_no: str) -> str | None:
    """The agency identifier a dossier number begins with, if it does."""
    head = dossier_no.split("-", 1)[0]
    return head if AGENCY_ID.match(head) else None


class ReportingRule:
    """Refuses ``unauthorised`` a status update its sender may not report."""

    def __init__(
        self, registry: AgencyRegistry | None, lookup: Lookup | None = None, cache: int = 65536
    ) -> None:
        self.registry = registry
        self.lookup = lookup
        self._found: OrderedDict[str, str] = OrderedDict()
        self._cache = cache

    def receiving_agency(self, dossier_no: str, claimed: str) -> tuple[str, str]:
        """(agency, how the bus knows it) of the dossier ``dossier_no``."""
        prefix = dossier_prefix(dossier_no)
        if prefix is not None:
            return prefix, "its dossier number"
        recorded = self.recorded(dossier_no)
        if recorded is not None:
            return recorded, "recorded when the bus delivered the dossier"
        return claimed, "the status update (the bus never delivered this dossier)"

    def recorded(self, dossier_no: str) -> str | None:
        if self.lookup is None:
            return None
        found = self._found.get(dossier_no)
        if found is None:
            found = self.lookup(dossier_no)
            if found is not None:  # only hits are kept: a miss may be delivered soon
                self._found[dossier_no] = found
                if len(self._found) > self._cache:
                    self._found.popitem(last=False)
        return found

    def check(self, sender_id: str, speaks: Speaks, payload: dict[str, Any]) -> None:
        dossier_no, claimed = payload["dossier_no"], payload["agency"]
        agency, how = self.receiving_agency(dossier_no, claimed)
        registry = self.registry
        if not speaks.covers(agency, registry):
            raise Rejection(
                Reason.UNAUTHORISED,
                f"sender {sender_id} may not report on dossier {dossier_no}: its receiving "
                f"agency is {agency} (from {how}), and the sender speaks for {speaks.said}",
            )
        if claimed != agency and not speaks.covers(claimed, registry):
            raise Rejection(
                Reason.UNAUTHORISED,
                f"sender {sender_id} may not report as agency {claimed} on dossier "
                f"{dossier_no} (received by {agency}); the sender speaks for {speaks.said}",
            )
