"""The routing table on the router's hot path: who may send what, and where each message goes.

Routes are compiled once (grouped by message type, globs turned into regexes) and answers
are memoised, because every message asks the same few questions: a cache hit costs a tuple
and a dict lookup. ``explain`` walks the same routes slowly and says why, for operators.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from bus.contract.rejections import Reason, Rejection
from bus.routes.model import GLOB_KEYS, Route, RoutesConfig, Target, compile_values

if TYPE_CHECKING:
    from bus.contract.admin_units import AdminUnits, UnitTranslation
    from bus.routes.agencies import AgencyRegistry

DEFAULT_CACHE_SIZE = 32768
# Positions of the message attributes in the tuple the compiled conditions look at.
_SLOTS = {
    "source": 0, "agency": 1, "procedure": 2, "province": 3, "commune": 4, "agency_province": 5
}  # fmt: skip
_ATTRIBUTES = ("agency", "agency_province", "procedure", "province", "commune")
_AGENCY_PROVINCE = _SLOTS["agency_province"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where a message goes: target names (ordered, no repeats) and the routes that matched.

    ``translation`` is the unit translation when the message carried a province or commune
    (check ``translation.translated`` to know whether a code was rewritten), else None.
    """

    targets: tuple[str, ...]
    routes: tuple[str, ...]
    translation: UnitTranslation | None
    flags: tuple[str, ...] = ()  # unit codes forwarded as written, and why (header, audit)


@dataclass(frozen=True, slots=True)
class _Condition:
    key: str
    slot: int
    values: tuple[str, ...]
    test: Callable[[str], Any]  # truthy when the value satisfies the condition


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    line: int | None
    to: tuple[str, ...]
    continue_: bool
    conditions: tuple[_Condition, ...]


def _compile(route: Route, line: int | None) -> _Compiled:
    conditions = []
    for key, values in route.match.given().items():
        if key == "type":
            continue  # handled by grouping routes per type
        if key in GLOB_KEYS:
            regex = compile_values(values)
            assert regex is not None
            test: Callable[[str], Any] = regex.match
        else:
            test = frozenset(values).__contains__
        conditions.append(_Condition(key, _SLOTS[key], values, test))
    return _Compiled(route.name, line, route.to, route.continue_, tuple(conditions))


class RoutingTable:
    """Authorise sources and resolve targets for messages, per one loaded routes.yaml."""

    def __init__(
        self,
        config: RoutesConfig,
        units: AdminUnits | None,
        *,
        agencies: AgencyRegistry | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        for route in config.routes:
            missing = [name for name in route.to if name not in config.targets]
            if missing:
                raise ValueError(f"route {route.name!r} sends to unknown target(s) {missing}")
        self.config = config
        self.units = units
        self.agencies = agencies
        compiled = [_compile(r, config.source_line("route", r.name)) for r in config.routes]
        typed = {t for r in config.routes for t in (r.match.type or ())} | set(config.sources)
        # Each type's routes in file order, untyped routes (any type) included where they sit.
        self._by_type: dict[str, tuple[_Compiled, ...]] = {
            t: tuple(c for r, c in zip(config.routes, compiled, strict=True) if _takes(r, t))
            for t in typed
        }
        self._untyped = tuple(
            c for r, c in zip(config.routes, compiled, strict=True) if r.match.type is None
        )
        self._sources: dict[str, tuple[tuple[str, ...], re.Pattern[str] | None]] = {
            t: (patterns, compile_values(patterns) if patterns else None)
            for t, patterns in config.sources.items()
        }
        # Which attributes the routes of each type look at: the cache key holds only those, so
        # messages that differ in an attribute no route reads (a commune, say) share an entry.
        self._used: dict[str | None, frozenset[int]] = {
            t: frozenset(c.slot for route in routes for c in route.conditions)
            for t, routes in [*self._by_type.items(), (None, self._untyped)]
        }
        self._match = lru_cache(maxsize=cache_size)(self._first_match)
        self._authorise = lru_cache(maxsize=4096)(self._may_send)

    @property
    def targets(self) -> dict[str, Target]:
        """The targets of the loaded file, by name."""
        return self.config.targets

    def routes_for(self, type_: str) -> tuple[str, ...]:
        """Names of the routes a message of ``type_`` is checked against, in order."""
        return tuple(c.name for c in self._by_type.get(type_, self._untyped))

    # --- authorise ---------------------------------------------------------------------------

    def authorise(self, type_: str, source: str) -> None:
        """Refuse a message from a source that may not send its type (deny by default)."""
        refused = self._authorise(type_, source)
        if refused is not None:
            raise Rejection(Reason.UNAUTHORISED, refused)

    def _may_send(self, type_: str, source: str) -> str | None:
        patterns, regex = self._sources.get(type_, ((), None))
        if regex is not None and regex.match(source):
            return None
        if not patterns:
            return f"source {source} may not send {type_} (routes.yaml allows no source for it)"
        return f"source {source} may not send {type_} (allowed: {', '.join(patterns)})"

    # --- resolve -----------------------------------------------------------------------------

    def resolve(
        self, type_: str, source: str, attrs: dict[str, str], as_of: str | None = None
    ) -> Resolution:
        """The targets for one message, or a :class:`Rejection` (unroutable, unit codes).

        ``as_of`` is when what the message describes happened (its unit codes are read as of
        then). Does not authorise: call :meth:`authorise` first (the router's steps are
        separate).
        """
        get = attrs.get
        province, commune = get("province"), get("commune")
        translation = None
        flags: tuple[str, ...] = ()
        if (province or commune) and self.units is not None:
            translation = self.units.translate(province, commune, as_of)  # memoised
            refusal, flags = self._unit_verdict(type_, translation)
            if refusal is not None:
                raise refusal
            province = translation.province or province
            commune = translation.commune or commune
        used = self._used.get(type_, self._used[None])
        agency_province = self._agency_province(get("agency")) if _AGENCY_PROVINCE in used else None
        values = (source, get("agency"), get("procedure"), province, commune, agency_province)
        key = tuple(v if i in used else None for i, v in enumerate(values))
        matched = self._match(type_, key)
        if matched is None:
            written = (get("province"), get("commune"))
            raise Rejection(Reason.UNROUTABLE, _no_route(type_, source, values, written))
        if flags:
            needy = self._needs_current_units(matched[0], translation)
            if needy is not None:
                raise needy
        return Resolution(matched[0], matched[1], translation, flags)

    def _agency_province(self, agency: str | None) -> str | None:
        """The receiving agency's current province, from the registry (None: not listed)."""
        if self.agencies is None or not agency:
            return None
        return self.agencies.province_of(agency)

    def _unit_verdict(
        self, type_: str, translation: UnitTranslation
    ) -> tuple[Rejection | None, tuple[str, ...]]:
        """Refuse unknown codes, and ambiguous ones the routes read; flag the others.

        An ambiguous code no route of this type looks at does not change where the message
        goes: it is forwarded with the code as written, and a flag says so (the routed copy's
        units header and the audit trail's note), unless a target it goes to needs current
        codes (:meth:`_needs_current_units`).
        """
        if translation.unknown:
            codes = ", ".join(translation.unknown)
            return Rejection(
                Reason.INVALID, f"unit code in neither the current nor the pre-reform list: {codes}"
            ), ()
        if not translation.ambiguous:
            return None, ()
        used = self._used.get(type_, self._used[None])
        read = [a for a in translation.unsure if _SLOTS[a] in used]
        if read or not translation.unsure:
            why = f" (routes for {type_} read the {' and '.join(read)})" if read else ""
            return Rejection(Reason.AMBIGUOUS_UNIT, translation.ambiguous + why), ()
        return None, (f"kept as written, no route reads it: {translation.ambiguous}",)

    def _needs_current_units(
        self, targets: tuple[str, ...], translation: UnitTranslation | None
    ) -> Rejection | None:
        needy = [t for t in targets if self.config.targets[t].needs_current_units]
        if not needy or translation is None:
            return None
        return Rejection(
            Reason.AMBIGUOUS_UNIT,
            f"{translation.ambiguous} (target {', '.join(needy)} needs current unit codes)",
        )

    def _first_match(
        self, type_: str, values: tuple[str | None, ...]
    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(targets, routes) for these attribute values, or None when no route takes them."""
        targets: list[str] = []
        matched: list[str] = []
        for route in self._by_type.get(type_, self._untyped):
            if all(values[c.slot] is not None and c.test(values[c.slot]) for c in route.conditions):
                matched.append(route.name)
                targets.extend(t for t in route.to if t not in targets)
                if not route.continue_:
                    break
        return (tuple(targets), tuple(matched)) if matched else None

    def _reads_agency(self, type_: str) -> bool:
        return _AGENCY_PROVINCE in self._used.get(type_, self._used[None])

    def cache_info(self) -> Any:
        """Hits, misses and size of the resolve cache (for metrics and tuning)."""
        return self._match.cache_info()

    # --- explain -----------------------------------------------------------------------------

    def explain(
        self, type_: str, source: str, attrs: dict[str, str], as_of: str | None = None
    ) -> Explanation:
        """Why a message would go where it goes; never raises, reports every fate instead."""
        refused = self._may_send(type_, source)
        patterns = self._sources.get(type_, ((), None))[0]
        line = self.config.source_line("sources", type_)
        cited = f" ({_short(self.config.path)}:{line})" if line and self.config.path else ""
        if refused is None:
            authorisation = f"allowed: {source} matches {_any(patterns)}{cited}"
        else:
            authorisation = f"refused: {refused}{cited}"
        province, commune = attrs.get("province"), attrs.get("commune")
        translation = None
        unit_refusal: Rejection | None = None
        flags: tuple[str, ...] = ()
        if (province or commune) and self.units is not None:
            translation = self.units.translate(province, commune, as_of)
            unit_refusal, flags = self._unit_verdict(type_, translation)
            if unit_refusal is None:
                province = translation.province or province
                commune = translation.commune or commune
        values = (source, attrs.get("agency"), attrs.get("procedure"), province, commune,
                  self._agency_province(attrs.get("agency")))  # fmt: skip
        shown = {k: attrs.get(k) for k in _ATTRIBUTES}
        registry_line = None
        if self.agencies is not None and attrs.get("agency") and self._reads_agency(type_):
            registry_line = self.agencies.describe(attrs["agency"])
        verdicts: list[RouteVerdict] = []
        targets: list[str] = []
        matched: list[str] = []
        stopped_at: str | None = None
        if unit_refusal is None:
            for route in self._by_type.get(type_, self._untyped):
                failed = _first_failure(route, values, shown)
                hit = failed is None
                if stopped_at is not None:
                    why = f"not reached: route {stopped_at!r} matched first"
                    why += " (would match)" if hit else ""
                    verdicts.append(RouteVerdict(route.name, route.line, False, why, False))
                    continue
                if hit:
                    matched.append(route.name)
                    targets.extend(t for t in route.to if t not in targets)
                    how = "continues (continue: true)" if route.continue_ else "stops here"
                    why = f"matched → {', '.join(route.to)}; {how}"
                    if not route.continue_:
                        stopped_at = route.name
                else:
                    why = f"no match: {failed}"
                verdicts.append(RouteVerdict(route.name, route.line, hit, why, True))
        needy = self._needs_current_units(tuple(targets), translation) if flags else None
        if refused is not None:
            fate: Reason | None = Reason.UNAUTHORISED
            detail = refused
        elif unit_refusal is not None:
            fate, detail = unit_refusal.reason, unit_refusal.detail
        elif not matched:
            written = (attrs.get("province"), attrs.get("commune"))
            fate, detail = Reason.UNROUTABLE, _no_route(type_, source, values, written)
        elif needy is not None:
            fate, detail = needy.reason, needy.detail
        else:
            fate, detail = None, ""
        return Explanation(
            type=type_,
            source=source,
            attributes={k: v for k, v in shown.items() if v is not None},
            authorisation=authorisation,
            translation=translation,
            verdicts=tuple(verdicts),
            targets=tuple(targets),
            routes=tuple(matched),
            fate=fate,
            detail=detail,
            flags=flags,
            agency=registry_line,
            file=self.config.path,
            digest=self.config.digest,
        )


def _takes(route: Route, type_: str) -> bool:
    return route.match.type is None or type_ in route.match.type


def _first_failure(
    route: _Compiled, values: tuple[str | None, ...], shown: dict[str, str | None]
) -> str | None:
    """The first condition of ``route`` that ``values`` fails, in words; None if all hold."""
    for condition in route.conditions:
        value = values[condition.slot]
        if value is not None and condition.test(value):
            continue
        key = condition.key
        if value is None and key == "agency_province":
            return (
                "the receiving agency is not in the agency registry (the route needs "
                f"agency_province {_any(condition.values)})"
            )
        if value is None:
            return f"the message has no {key} (the route needs {key} {_any(condition.values)})"
        written = shown.get(key)
        said = f"{value} (was {written})" if written not in (None, value) else value
        verb = "does not match" if key in GLOB_KEYS else "is not"
        return f"{key} {said} {verb} {_any(condition.values)}"
    return None


def _any(values: tuple[str, ...]) -> str:
    if not values:
        return "nothing"
    if len(values) == 1:
        return values[0]
    if len(values) <= 6:
        return f"any of {', '.join(values)}"
    return f"any of the {len(values)} listed ({', '.join(values[:4])}, …)"


def _no_route(
    type_: str,
    source: str,
    values: tuple[str | None, ...],
    written: tuple[str | None, str | None],
) -> str:
    # These attributes are codes of agencies, procedures and units: no personal data.
    parts = [f"no route for {type_}"]
    for key in _ATTRIBUTES:
        value = values[_SLOTS[key]]
        if value is None:
            continue
        original = written[0] if key == "province" else written[1] if key == "commune" else value
        parts.append(f"{key}={value}" + (f" (was {original})" if original != value else ""))
    parts.append(f"source={source}")
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class RouteVerdict:
    """What one route made of the message, for ``routes explain``."""

    name: str
    line: int | None
    matched: bool
    why: str
    reached: bool


@dataclass(frozen=True)
class Explanation:
    """The whole routing decision for one message, readable by an operator."""

    type: str
    source: str
    attributes: dict[str, str]
    authorisation: str
    translation: UnitTranslation | None
    verdicts: tuple[RouteVerdict, ...]
    targets: tuple[str, ...]
    routes: tuple[str, ...]
    fate: Reason | None  # None: delivered to ``targets``; else the dead-letter reason
    detail: str
    flags: tuple[str, ...] = ()  # unit codes forwarded as written
    agency: str | None = None  # the registry's word on the receiving agency, when routes ask
    file: str = ""
    digest: str = ""
    checks: tuple[str, ...] = ()  # the router's domain checks (a payment's checksum), one a line
    also: str = ""  # a copy parked beside the delivered ones (a payment's agency copy)

    def lines(self) -> list[str]:
        """Plain text, one fact per line, in the order the router decides."""
        attrs = " ".join(f"{k}={v}" for k, v in self.attributes.items()) or "(no attributes)"
        out = []
        if self.file:
            out.append(f"routes file: {self.file} (sha256 {self.digest[:12]})")
        out += [f"message: {self.type} from {self.source}", f"  {attrs}"]
        out.append(f"source: {self.authorisation}")
        if self.agency is not None:
            out.append(f"agency: {self.agency}")
        out.extend(self.checks)
        if self.translation is not None:
            t = self.translation
            out.extend(f"units: {note}" for note in t.notes)
            out.extend(f"units: unknown {code}" for code in t.unknown)
            if t.ambiguous and not self.flags:
                out.append(f"units: cannot translate without guessing: {t.ambiguous}")
            out.extend(f"units: {flag}" for flag in self.flags)
            if not (t.notes or t.unknown or t.ambiguous):
                out.append("units: current codes, nothing to translate")
        if not self.verdicts and self.fate in (Reason.AMBIGUOUS_UNIT, Reason.INVALID):
            out.append("routes: not evaluated (the unit code is ambiguous or unknown)")
        elif not self.verdicts:
            out.append(f"routes: no route in {_short(self.file)} takes {self.type}")
        else:
            heading = f"routes for {self.type}, in file order"
            if self.fate is Reason.UNAUTHORISED:
                heading += " (as if the source were allowed)"
            elif self.fate in _REFUSED_BEFORE_ROUTING:
                heading += " (as if the message had passed its checks)"
            out.append(heading + ":")
            width = max(len(v.name) for v in self.verdicts)
            places = [self._place(v.line) for v in self.verdicts]
            place_width = max(len(p) for p in places)
            for verdict, place in zip(self.verdicts, places, strict=True):
                out.append(f"  {place:<{place_width}}  {verdict.name:<{width}}  {verdict.why}")
        if self.fate is None:
            out.append(
                f"result: deliver to {', '.join(self.targets)} (routes: {', '.join(self.routes)})"
                + (f"; {self.also}" if self.also else "")
            )
        else:
            out.append(f"result: dead letter, reason {self.fate.value}: {self.detail}")
        return out

    def _place(self, line: int | None) -> str:
        if line is None:
            return "?"
        return f"{_short(self.file)}:{line}" if self.file else f"line {line}"

    def __str__(self) -> str:
        return "\n".join(self.lines())


# Refused by a check the router makes after authorising and before routing.
_REFUSED_BEFORE_ROUTING = frozenset({Reason.CHECKSUM_MISMATCH, Reason.UNVERIFIABLE, Reason.INVALID})


def _short(path: str) -> str:
    """The file's name alone: the full path is printed once, at the top."""
    return PurePath(path).name if path else "routes.yaml"
