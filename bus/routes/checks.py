"""Checks of a read routes.yaml across the file and against what the bus knows.

The loader reads the file (YAML, positions, the model); these check that its parts agree with
each other (routes name real targets, no route is shadowed) and with the world: the schemas'
message types, the installed adapter kinds and their options, the administrative units. Each
check yields its problems, located at the line the operator must change; a check whose
knowledge the caller did not supply finds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ValidationError

from adapters.options import merge_options, option_problem
from bus.routes.model import (
    COMMUNE_CODE,
    GLOB_KEYS,
    MESSAGE_TYPE,
    PROVINCE_CODE,
    RouteMatch,
    RoutesConfig,
    compile_values,
    is_glob,
)
from bus.routes.problems import Path_, Problem, owner_of, suggest

PAYMENT_TYPE = "payment.confirmed"

if TYPE_CHECKING:
    from bus.contract.admin_units import AdminUnits


class Positions(Protocol):
    """Where each node of the file is written (the loader's tree)."""

    def at(self, path: Path_, *, key: bool = False) -> tuple[int, int]: ...

    def line_of(self, path: Path_, *, key: bool = False) -> int: ...


@dataclass(frozen=True)
class Written:
    """routes.yaml as read: its plain data, its model (None if invalid) and its positions."""

    file: str
    data: dict[str, Any]
    config: RoutesConfig | None
    positions: Positions

    def problem(
        self, path: Path_, message: str, severity: str = "error", *, key: bool = False
    ) -> Problem:
        line, column = self.positions.at(path, key=key)
        return Problem(self.file, line, column, message, severity)

    @cached_property
    def routes(self) -> dict[int, dict[str, Any]]:
        """Each route written as a mapping, by its index in the list."""
        routes = self.data.get("routes")
        return {
            i: r
            for i, r in enumerate(routes if isinstance(routes, list) else [])
            if isinstance(r, dict)
        }

    @cached_property
    def targets(self) -> dict[str, Any]:
        targets = self.data.get("targets")
        return targets if isinstance(targets, dict) else {}

    @cached_property
    def sources(self) -> dict[str, Any] | None:
        sources = self.data.get("sources")
        return sources if isinstance(sources, dict) else None

    def values(self, index: int, key: str) -> list[tuple[Path_, str]]:
        """(path, value) of each text value of a route's match condition or `to`."""
        route = self.routes.get(index, {})
        base: Path_ = ("routes", index, key) if key == "to" else ("routes", index, "match", key)
        holder = route.get("match") if key != "to" else route
        value = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(value, str):
            return [(base, value)]
        if isinstance(value, list):
            return [((*base, j), v) for j, v in enumerate(value) if isinstance(v, str)]
        return []

    def owner(self, index: int) -> str:
        """'route 'hanoi': ' for the route at ``index``."""
        return owner_of(("routes", index), self.data)


@dataclass(frozen=True)
class KindOptions:
    """What an adapter kind accepts as a target's ``options:``: its model, over its defaults."""

    model: type[BaseModel]
    defaults: Mapping[str, Any]

    @classmethod
    def of(cls, adapter_class: type) -> KindOptions | None:
        """The options an adapter class declares (``options_model``), or None if none."""
        model = getattr(adapter_class, "options_model", None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        return cls(model, getattr(adapter_class, "default_options", None) or {})


# The options a kind accepts, or None when unknown (the kind is not installed, or declares none).
OptionsOf = Callable[[str], KindOptions | None]


def check_all(
    written: Written,
    known_types: set[str] | None = None,
    known_adapters: set[str] | None = None,
    units: AdminUnits | None = None,
    options_of: OptionsOf | None = None,
) -> list[Problem]:
    """Every problem the checks find, given what the caller knows."""
    return [
        *route_names(written),
        *route_targets(written),
        *message_types(written, known_types),
        *adapter_kinds(written, known_adapters),
        *adapter_options(written, options_of),
        *undeclared_success_rules(written, options_of),
        *unit_codes(written, units),
        *sources_for_routed_types(written, known_types),
        *unused_targets(written),
        *shadowed_routes(written),
        *payment_rules(written),
    ]


def route_names(w: Written) -> Iterator[Problem]:
    """A route name used twice."""
    seen: dict[str, int] = {}
    for i, route in w.routes.items():
        name = route.get("name")
        if not isinstance(name, str):
            continue
        path = ("routes", i, "name")
        if name in seen:
            yield w.problem(
                path,
                f"route name {name!r} is used again (first at line {seen[name]}); "
                "route names must be unique",
            )
        else:
            seen[name] = w.positions.line_of(path)


def route_targets(w: Written) -> Iterator[Problem]:
    """A route sending to a target the file does not define."""
    targets = w.targets
    for i, _route in w.routes.items():
        for path, name in w.values(i, "to"):
            if name not in targets:
                yield w.problem(
                    path,
                    f"{w.owner(i)}sends to unknown target {name!r}{suggest(name, targets)}",
                )


def message_types(w: Written, known_types: set[str] | None) -> Iterator[Problem]:
    """A route or `sources` naming a message type no schema defines."""
    if known_types is None:
        return
    known = ", ".join(sorted(known_types))

    def unknown(path: Path_, type_: str, owner: str, key: bool = False) -> Iterator[Problem]:
        if not MESSAGE_TYPE.match(type_) or type_ in known_types:
            return
        advice = suggest(type_, known_types) or f"; known types: {known}"
        yield w.problem(path, f"{owner}unknown message type {type_!r}{advice}", key=key)

    for i, _route in w.routes.items():
        for path, type_ in w.values(i, "type"):
            yield from unknown(path, type_, w.owner(i))
    for type_ in w.sources or {}:
        yield from unknown(("sources", type_), type_, "sources: ", key=True)


def adapter_kinds(w: Written, known_adapters: set[str] | None) -> Iterator[Problem]:
    """A target naming an adapter kind that is not installed."""
    if known_adapters is None:
        return
    for name, target in w.targets.items():
        kind = target.get("adapter") if isinstance(target, dict) else None
        if isinstance(kind, str) and kind not in known_adapters:
            advice = suggest(kind, known_adapters) or (
                f"; installed kinds: {', '.join(sorted(known_adapters)) or 'none'}"
            )
            yield w.problem(
                ("targets", name, "adapter"),
                f"target {name!r}: unknown adapter kind {kind!r}{advice}",
            )


def adapter_options(w: Written, options_of: OptionsOf | None) -> Iterator[Problem]:
    """A target option its adapter kind would refuse at start (a typo, a wrong value).

    The kind's own options model decides, over the kind's default options, exactly as when
    the adapter is built; nothing is built, so nothing is fetched or connected to.
    """
    if options_of is None:
        return
    for name, target in w.targets.items():
        kind = target.get("adapter") if isinstance(target, dict) else None
        options = target.get("options", {}) if isinstance(target, dict) else None
        if not isinstance(kind, str) or not isinstance(options, dict):
            continue  # a missing kind or a non-mapping `options` is reported by the model
        accepted = options_of(kind)
        if accepted is None:
            continue
        try:
            accepted.model.model_validate(merge_options(dict(accepted.defaults), options))
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False):
                # Worded by the adapters themselves: `routes check` says what start would.
                yield w.problem(
                    _option_path(name, options, tuple(error["loc"])),
                    f"target {name!r}: {option_problem(error)}",
                    key=error["type"] == "extra_forbidden",
                )


def undeclared_success_rules(w: Written, options_of: OptionsOf | None) -> Iterator[Problem]:
    """A target of a REST-like kind whose answers declare no success rule (a warning).

    Without ``response.error_code`` the kind guesses from the usual code fields
    (``adapters.codes.undeclared_failure``); the agency's own rule should say it instead.
    A kind answers to this when its options have ``response.error_code`` (REST and kinds
    built on it); one whose defaults declare the rule is not warned about.
    """
    if options_of is None:
        return
    for name, target in w.targets.items():
        kind = target.get("adapter") if isinstance(target, dict) else None
        options = target.get("options", {}) if isinstance(target, dict) else None
        accepted = options_of(kind) if isinstance(kind, str) else None
        if accepted is None or not isinstance(options, dict):
            continue
        try:
            parsed = accepted.model.model_validate(merge_options(dict(accepted.defaults), options))
        except ValidationError:
            continue  # reported by adapter_options
        response = getattr(parsed, "response", None)
        if response is None or getattr(response, "error_code", True) is not None:
            continue
        yield w.problem(
            ("targets", name),
            f"target {name!r}: no declared success rule (options.response.error_code): a 2xx "
            "answer is delivered unless a usual code field (error_code, errorCode, ma_loi, "
            "maLoi, MaLoi) is not zero; declare the agency's codes",
            "warning",
            key=True,
        )


def _option_path(target: str, options: Any, loc: Path_) -> Path_:
    """Where the option an error's location names is written in the file.

    Parts not written by the target are skipped: the member a tagged union chose (``auth``'s
    kind), and a default the kind supplies; a missing option is cited at its block.
    """
    path: list[str | int] = ["targets", target, "options"]
    node = options
    for i, part in enumerate(loc):
        written = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if written:
            node = node[part]
        elif i < len(loc) - 1:
            continue
        path.append(part)
    return tuple(path)


def unit_codes(w: Written, units: AdminUnits | None) -> Iterator[Problem]:
    """A route matching a province or commune code that is not current (since 1 July 2025)."""
    if units is None:
        return
    for i, _route in w.routes.items():
        owner = w.owner(i)
        for key in ("province", "agency_province"):
            for path, code in w.values(i, key):
                if PROVINCE_CODE.match(code) and not units.is_current_province(code):
                    yield w.problem(path, owner + _old_province(units, code))
        for path, code in w.values(i, "commune"):
            if COMMUNE_CODE.match(code) and not units.is_current_commune(code):
                yield w.problem(path, owner + _old_commune(units, code))


def _old_province(units: AdminUnits, code: str) -> str:
    successor = units.successor_province(code)
    if successor is not None:
        return (
            f"province {code} is a pre-1 July 2025 code; it is now "
            f"{units.describe_province(successor)}: write {successor!r}"
        )
    translation = units.translate(code, None)
    if translation.ambiguous:
        return (
            f"province {code} is a pre-1 July 2025 code that cannot be translated without "
            f"guessing ({translation.ambiguous}): route on the current codes"
        )
    return f"province {code} is not a province code, before or after 1 July 2025"


def _old_commune(units: AdminUnits, code: str) -> str:
    translation = units.translate(None, code)
    if translation.ambiguous:
        return (
            f"commune {code} is a pre-1 July 2025 code that cannot be translated without "
            f"guessing ({translation.ambiguous}): route on the current codes"
        )
    if translation.commune and translation.commune != code:
        new = translation.commune
        return (
            f"commune {code} is a pre-1 July 2025 code; it is now "
            f"{units.describe_commune(new)}: write {new!r}"
        )
    return f"commune {code} is not a commune code, before or after 1 July 2025"


def sources_for_routed_types(w: Written, known_types: set[str] | None) -> Iterator[Problem]:
    """A routed type nobody may send, or a `sources` entry that lets nobody send its type."""
    reported: set[str] = set()
    sources = w.sources
    for i, _route in w.routes.items():
        for path, type_ in w.values(i, "type"):
            if type_ in reported or not MESSAGE_TYPE.match(type_):
                continue
            if known_types is not None and type_ not in known_types:
                continue
            if sources is None or type_ not in sources:
                reported.add(type_)
                yield w.problem(
                    path,
                    f"{w.owner(i)}routes {type_} but `sources` has "
                    f"no entry for it: every {type_} would be dead-lettered unauthorised",
                )
    for type_, allowed in (sources or {}).items():
        if allowed is None or allowed == []:
            yield w.problem(
                ("sources", type_),
                f"sources of {type_} is empty: no system may send it, so every {type_} "
                "will be dead-lettered unauthorised",
                "warning",
                key=True,
            )


def unused_targets(w: Written) -> Iterator[Problem]:
    """No routes at all, or a target no route sends to."""
    routes = w.routes
    if not routes and isinstance(w.data.get("routes"), list):
        yield w.problem(
            ("routes",),
            "there are no routes: every message will be dead-lettered unroutable",
            "warning",
            key=True,
        )
    used = {name for i in routes for _, name in w.values(i, "to")}
    for name in w.targets:
        if name not in used:
            yield w.problem(
                ("targets", name),
                f"target {name!r} is not used by any route: it will receive nothing",
                "warning",
                key=True,
            )


def shadowed_routes(w: Written) -> Iterator[Problem]:
    """A route that an earlier, non-continuing route always takes first."""
    if w.config is None:
        return
    routes = w.config.routes
    for later_index, later in enumerate(routes):
        for earlier_index, earlier in enumerate(routes[:later_index]):
            if not earlier.continue_ and _covers(earlier.match, later.match):
                yield w.problem(
                    ("routes", later_index),
                    f"route {later.name!r} can never match: route {earlier.name!r} "
                    f"(line {w.positions.line_of(('routes', earlier_index))}) comes first, "
                    "matches every message it would, and does not continue",
                    "warning",
                )
                break


def _covers(earlier: RouteMatch, later: RouteMatch) -> bool:
    """Whether every message ``later`` matches is also matched by ``earlier`` (cheap, sound)."""
    for key, values in earlier.given().items():
        other = getattr(later, key)
        if other is None:
            return False
        if key in GLOB_KEYS:
            regex = compile_values(values)
            assert regex is not None
            for value in other:
                literal_hit = not is_glob(value) and regex.match(value) is not None
                if not (value in values or "*" in values or literal_hit):
                    return False
        elif not set(other) <= set(values):
            return False
    return True


def payment_rules(w: Written) -> Iterator[Problem]:
    """`payments:` naming unknown targets, or payments routed with no partner to verify them.

    The router verifies every payment's checksum with its partner's secrets: routing
    payments with no partner listed dead-letters every one of them ``unverifiable``.
    """
    payments = w.data.get("payments")
    payments = payments if isinstance(payments, dict) else {}
    portal = payments.get("portal_targets")
    names = [portal] if isinstance(portal, str) else portal if isinstance(portal, list) else []
    for j, name in enumerate(names):
        if isinstance(name, str) and name not in w.targets:
            path: Path_ = ("payments", "portal_targets") + ((j,) if name is not portal else ())
            yield w.problem(
                path,
                f"payments: portal_targets names unknown target {name!r}{suggest(name, w.targets)}",
            )
    routed = any(type_ == PAYMENT_TYPE for i in w.routes for _, type_ in w.values(i, "type"))
    if routed and not payments.get("partners"):
        yield w.problem(
            ("payments",) if "payments" in w.data else ("routes",),
            f"{PAYMENT_TYPE} is routed but `payments: partners:` lists no partner secrets: "
            f"every {PAYMENT_TYPE} will be dead-lettered unverifiable",
            "warning",
            key=True,
        )
