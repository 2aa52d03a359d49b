"""Read routes.yaml into a :class:`RoutesConfig`, or say exactly what is wrong and on which line.

An operator fixes a broken file at 3 am from the problem list alone, so every problem names
the file, line and column of the offending node, and suggests the likely fix. PyYAML's
composer keeps node positions; plain data is built from the nodes while recording where each
value sits, and pydantic's error locations are mapped back to those positions. Checks
across the file or needing outside knowledge (message types, adapter kinds, administrative
units) are in :mod:`bus.routes.checks`; those needing knowledge run only when the caller
supplies it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from bus.errors import ConfigError
from bus.routes.checks import OptionsOf, Written, check_all
from bus.routes.model import (
    CircuitPolicy,
    Defaults,
    Partner,
    Payments,
    Reconciliation,
    RetryPolicy,
    Route,
    RouteMatch,
    RoutesConfig,
    Target,
    Timeouts,
    merge_defaults,
)
from bus.routes.problems import Path_, Problem, owner_of, suggest

if TYPE_CHECKING:
    from bus.contract.admin_units import AdminUnits

__all__ = ["Problem", "RoutesError", "check_routes", "load_routes"]


class RoutesError(ConfigError):
    """routes.yaml is refused; ``problems`` lists every problem found (errors and warnings)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        first = str(errors[0]) if errors else "no details"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"routes refused: {first}{more}")


def load_routes(
    path: str | Path,
    *,
    known_types: set[str] | None = None,
    known_adapters: set[str] | None = None,
    units: AdminUnits | None = None,
    options_of: OptionsOf | None = None,
) -> RoutesConfig:
    """The validated routing configuration in ``path``; raises :class:`RoutesError` if broken.

    Pass what the running bus knows (its schemas' types, installed adapter kinds, the unit
    table, each adapter kind's options) so the file is checked against it; leave them out to
    check the file alone.
    """
    config, problems = _read(Path(path), known_types, known_adapters, units, options_of)
    if config is None or any(p.severity == "error" for p in problems):
        raise RoutesError(problems)
    return config


def check_routes(
    path: str | Path,
    *,
    known_types: set[str] | None = None,
    known_adapters: set[str] | None = None,
    units: AdminUnits | None = None,
    options_of: OptionsOf | None = None,
) -> list[Problem]:
    """Every problem in ``path``, errors and warnings, by line; never raises for bad content.

    What ``dvcbus routes check`` prints before a file is applied.
    """
    return _read(Path(path), known_types, known_adapters, units, options_of)[1]


# --- reading -------------------------------------------------------------------------------


def _read(
    path: Path,
    known_types: set[str] | None,
    known_adapters: set[str] | None,
    units: AdminUnits | None,
    options_of: OptionsOf | None,
) -> tuple[RoutesConfig | None, list[Problem]]:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(name, 0, 0, f"cannot read the file: {exc.strerror}")]
    tree = _Tree(name)
    data = tree.parse(raw)
    config = None
    if data is not None:
        config = tree.validate(data)
        written = Written(name, data, config, tree)
        tree.problems += check_all(written, known_types, known_adapters, units, options_of)
    problems = sorted(set(tree.problems), key=lambda p: (p.line, p.column, p.message))
    if config is not None and not any(p.severity == "error" for p in problems):
        lines = {("target", t): tree.line_of(("targets", t), key=True) for t in config.targets}
        lines.update(
            {("route", r.name): tree.line_of(("routes", i)) for i, r in enumerate(config.routes)}
        )
        lines.update(
            {("sources", t): tree.line_of(("sources", t), key=True) for t in config.sources}
        )
        config.set_origin(name, hashlib.sha256(raw).hexdigest(), lines)
    return config, problems


def _fields(model: type[Any]) -> tuple[str, ...]:
    return tuple(field.alias or key for key, field in model.model_fields.items())


# Allowed keys per mapping; "*" stands for any target name, "#" for any route's index.
_SHAPES: dict[tuple[str, ...], tuple[str, ...]] = {
    (): _fields(RoutesConfig),
    ("defaults",): _fields(Defaults),
    ("defaults", "timeouts"): _fields(Timeouts),
    ("defaults", "retry"): _fields(RetryPolicy),
    ("defaults", "circuit"): _fields(CircuitPolicy),
    ("targets", "*"): tuple(k for k in _fields(Target) if k != "name"),
    ("targets", "*", "timeouts"): _fields(Timeouts),
    ("targets", "*", "retry"): _fields(RetryPolicy),
    ("targets", "*", "circuit"): _fields(CircuitPolicy),
    ("routes", "#"): _fields(Route),
    ("routes", "#", "match"): _fields(RouteMatch),
    ("payments",): _fields(Payments),
    ("payments", "partners", "*"): _fields(Partner),
    ("payments", "reconciliation"): _fields(Reconciliation),
}
_KEY_HINTS = {
    ("targets", "*", "name"): "a target's name is its key under `targets`",
}
_TEXT_FIELDS = {"agency", "adapter", "endpoint"}


def _shape_of(path: Path_) -> tuple[str, ...]:
    if len(path) >= 2 and path[0] == "targets":
        return ("targets", "*", *map(str, path[2:]))
    if len(path) >= 2 and path[0] == "routes":
        return ("routes", "#", *map(str, path[2:]))
    if len(path) >= 3 and path[:2] == ("payments", "partners"):
        return ("payments", "partners", "*", *map(str, path[3:]))
    return tuple(map(str, path))


def _is_text(path: Path_) -> bool:
    """Values that are codes or names: kept as written, so `province: 01` stays "01"."""
    head, depth = (path[0] if path else None), len(path)
    if head == "sources":
        return depth >= 2
    if head == "targets" and depth >= 3:
        return (depth == 3 and path[2] in _TEXT_FIELDS) or (depth == 4 and path[2] == "credentials")
    if head == "routes" and depth >= 3:
        return path[2] in ("name", "to") or (path[2] == "match" and depth >= 4)
    if head == "payments":
        return depth >= 2 and path[1] in ("partners", "portal_targets")
    return path == ("unmatched",)


class _Tree:
    """Plain data built from YAML nodes, with the position of every key and value."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.values: dict[Path_, tuple[int, int]] = {}
        self.keys: dict[Path_, tuple[int, int]] = {}
        self.collections: set[Path_] = set()
        # Key problems found while building, worded once the data (route names) exists.
        self._pending: list[tuple[tuple[int, int], Path_, str]] = []
        self._open: set[int] = set()  # collections being built, to stop recursive aliases
        self._constructor = yaml.SafeLoader("")

    def problem(self, at: tuple[int, int], message: str, severity: str = "error") -> None:
        self.problems.append(Problem(self.file, at[0], at[1], message, severity))

    # positions

    def at(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Position of the node at ``path``, or of its nearest written ancestor.

        A value that is a mapping or list is cited at its key (the line the operator reads
        as "that block"); a missing value at the key of the block that lacks it.
        """
        if key and path in self.keys:
            return self.keys[path]
        if path in self.values and path not in self.collections:
            return self.values[path]
        for depth in range(len(path), -1, -1):
            prefix = path[:depth]
            if prefix in self.values and prefix not in self.collections:
                return self.values[prefix]  # a single value read as a one-item list
            if prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return (1, 1)

    def line_of(self, path: Path_, *, key: bool = False) -> int:
        return self.at(path, key=key)[0]

    # building

    def parse(self, raw: bytes) -> Any:
        try:
            root = yaml.compose(raw, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            # Only the parser's own words: the quoted source line could hold a pasted secret.
            context = exc.context or ""
            opened = exc.context_mark
            if context and opened is not None and mark is not None and opened.line != mark.line:
                context += f" (opened at line {opened.line + 1})"
            said = " ".join(s for s in (context, exc.problem) if s)
            self.problem(where, f"not valid YAML: {said}")
            return None
        except yaml.YAMLError as exc:
            self.problem((1, 1), f"not valid YAML: {type(exc).__name__}")
            return None
        if root is None:
            self.problem((1, 1), "the file is empty; it should start with `version: 1`")
            return None
        if not isinstance(root, yaml.MappingNode):
            kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
            self.problem(
                _mark(root),
                f"the top level is {kind}; it must be a mapping of "
                "version, defaults, sources, targets, routes, payments and unmatched",
            )
            return None
        data = self.build(root, ())
        for where, path, text in self._pending:
            self.problem(where, owner_of(path, data) + text)
        return data

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.values[path] = _mark(node)
        if isinstance(node, yaml.CollectionNode):
            if id(node) in self._open:
                self.problem(_mark(node), "a YAML alias (*name) refers to a block containing it")
                return None
            self.collections.add(path)
            self._open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, path)
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self._open.discard(id(node))
        if _is_text(path) and node.style is None and node.tag != "tag:yaml.org,2002:str":
            if node.tag == "tag:yaml.org,2002:null":
                return None
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.problem(_mark(node), f"cannot read this value: {getattr(exc, 'problem', exc)}")
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        shape = _SHAPES.get(_shape_of(path))
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            where = _mark(key_node)
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(where, "merge keys (<<) are not supported: write the keys out")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(where, "a key must be a plain word, not a list or mapping")
                continue
            key = key_node.value
            if key in first:
                self._pending.append(
                    (
                        where,
                        path,
                        f"duplicate key {key!r} (first at line {first[key]}); "
                        "YAML would silently keep only the last one",
                    )
                )
                continue
            first[key] = where[0]
            if shape is not None and key not in shape:
                hint = _KEY_HINTS.get((*_shape_of(path), key))
                advice = f" ({hint})" if hint else suggest(key, shape)
                if not advice:
                    advice = f"; expected one of: {', '.join(shape)}"
                self._pending.append((where, path, f"unknown key {key!r}{advice}"))
                continue
            self.keys[(*path, key)] = where
            out[key] = self.build(value_node, (*path, key))
        return out

    # validating

    def validate(self, data: dict[str, Any]) -> RoutesConfig | None:
        inherited = merge_defaults(data)[1]
        try:
            return RoutesConfig.model_validate(data, context={"cross_checked": True})
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False):
                loc = tuple(error["loc"])
                if error["type"] == "extra_forbidden":
                    continue  # reported while building, with a suggestion
                if any(loc[:depth] in inherited for depth in range(1, len(loc) + 1)):
                    continue  # a bad default: reported once, where `defaults` says it
                self._pydantic_problem(error, loc, data)
            return None

    def _pydantic_problem(self, error: Any, loc: Path_, data: dict[str, Any]) -> None:
        kind = error["type"]
        if kind == "missing":
            where = self.at(loc[:-1], key=True)
            self.problem(where, f"{owner_of(loc[:-1], data)}missing required key {loc[-1]!r}")
            return
        if kind == "literal_error" and loc == ("version",):
            message = "version must be 1 (the only format so far)"
        elif kind == "literal_error" and loc == ("unmatched",):
            message = "unmatched must be dead-letter (the only fate for now)"
        else:
            message = owner_of(loc, data) + _pydantic_message(error)
            if loc[-1:] == ("match",) and kind == "model_type":
                message += " (write `match: {}` to match every message)"
        self.problem(self.at(loc), message)


_PYDANTIC_WORDS = {
    "dict_type": "should be a mapping of key: value",
    "model_type": "should be a mapping of key: value",
    "model_attributes_type": "should be a mapping of key: value",
    "tuple_type": "should be a list",
    "list_type": "should be a list",
    "string_type": "should be text",
    "int_type": "should be a whole number",
    "int_parsing": "should be a whole number",
    "int_from_float": "should be a whole number",
    "bool_type": "should be true or false",
    "bool_parsing": "should be true or false",
    "float_type": "should be a number",
}


def _pydantic_message(error: Any) -> str:
    words = _PYDANTIC_WORDS.get(error["type"])
    if words:
        return words
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message.replace("Input should", "should", 1)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)
