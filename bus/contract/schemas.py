"""The message contract at run time: load ``schemas/``, validate messages, read annotations.

Two validators are compiled once per schema at load:

* ``fastjsonschema`` on the hot path (every message), which only answers yes or no;
* ``jsonschema`` (Draft 7) only when a message fails, to say precisely what is wrong
  (path + rule), without ever quoting the offending value, which may be personal data.

Schema files may reference each other (``common.v1.json#/definitions/agency_id``); the
references are inlined here so both validators receive self-contained schemas and nothing
is ever resolved over the network.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import fastjsonschema
from jsonschema import Draft7Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError

from bus.contract.rejections import Reason, Rejection
from bus.contract.value_checks import CHECKS, ValueCheck, any_failed, failed_checks
from bus.errors import ConfigError
from bus.settings import PROJECT_ROOT

__all__ = [
    "PII_KINDS",
    "ROUTE_ATTRIBUTES",
    "Problem",
    "SchemaLoadError",
    "SchemaRegistry",
    "format_problems",
]

ENVELOPE_FILE = "envelope.v1.json"
PII_KINDS = frozenset({"name", "id_number", "phone", "email", "address", "tax_code", "free_text"})
ROUTE_ATTRIBUTES = frozenset({"agency", "procedure", "province", "commune"})
MAX_DETAIL_PROBLEMS = 5

# <type>.v<version>.json; "envelope.v1.json" and "common.v1.json" have no dot in the type
# part, so they never count as message types.
_TYPE_FILE = re.compile(r"^(?P<type>[a-z]+(?:\.[a-z_]+)+)\.v(?P<version>[1-9][0-9]*)\.json$")
# fastjsonschema rewrites every unescaped "$" of a pattern into "\Z" (so "abc\n" does not
# match "^abc$"); jsonschema keeps Python's "$", which also matches before a final newline.
# The jsonschema side is given the same rewrite so the two never disagree.
_DOLLAR = re.compile(r"(?<!\\)\$")
# Python's \d, \w, \b are Unicode-aware (full-width and Arabic-Indic digits match \d);
# ECMA-262 validators used by agency teams are ASCII-only. Refused so both agree.
_NON_PORTABLE_CLASS = re.compile(r"(?<!\\)(?:\\\\)*\\[dDwWbB]")
_ANNOTATIONS = frozenset({"description", "title", "$comment", "examples"})
_SAFE_PROPERTY_NAME = re.compile(r"^[^\W\d][\w-]{0,63}\Z")


class SchemaLoadError(ConfigError):
    """A schema file is missing, not JSON, not a valid draft-07 schema, or breaks a house rule."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation failure: where and which rule, never the offending value."""

    path: str  # "payload.applicant.id_number", "payload.documents[0].sha256", "" for the root
    rule: str  # the JSON Schema keyword that failed: "pattern", "required", "type", ...
    expected: str  # the constraint: the regex, "integer", "property 'dossier_no'", "<= 10"

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.rule} {self.expected}"


def format_problems(problems: Sequence[Problem], limit: int = MAX_DETAIL_PROBLEMS) -> str:
    """The one text of validation problems: a dead letter's ``invalid`` detail, CLI output.

    ``path: rule expected`` per problem, ``; `` between them, the first ``limit`` only, then
    ``; and N more``. Operators filter dead letters on this text: keep it stable.
    """
    text = "; ".join(str(p) for p in problems[:limit])
    if len(problems) > limit:
        text += f"; and {len(problems) - limit} more"
    return text


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One schema ready for use: the fast yes/no check and the precise explainer."""

    schema: dict[str, Any]
    fast: Callable[[Any], Any]
    slow: Draft7Validator


@dataclass(frozen=True, slots=True)
class _TypeSchema:
    """A message type's payload schema and what the hot path needs to know about it."""

    key: tuple[str, int]
    compiled: _Compiled
    routes: tuple[tuple[str, tuple[str, ...]], ...]  # (attribute, path from the doc root)
    checks: tuple[ValueCheck, ...] = ()  # x-check: semantic checks after the schema's
    pii: dict[tuple[str, ...], str] = field(default_factory=dict)
    vi_names: dict[tuple[str, ...], str] = field(default_factory=dict)


# --------------------------------------------------------------------------- loading


def _pattern_keyword(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """jsonschema's ``pattern`` with fastjsonschema's ``$`` semantics; message has no value."""
    if validator.is_type(instance, "string") and not _regex(pattern).search(instance):
        yield ValidationError("does not match pattern")


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(_DOLLAR.sub(r"\\Z", pattern))


# types-jsonschema leaves validators.extend unannotated
_Explainer = validators.extend(Draft7Validator, {"pattern": _pattern_keyword})  # type: ignore[no-untyped-call]


def _read_files(directory: Path) -> dict[str, dict[str, Any]]:
    if not directory.is_dir():
        raise SchemaLoadError(f"{directory}: schema directory not found")
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaLoadError(f"{path}: cannot read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise SchemaLoadError(
                f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        if not isinstance(doc, dict):
            raise SchemaLoadError(f"{path}: top level must be a JSON object (a schema)")
        try:
            Draft7Validator.check_schema(doc)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "<root>"
            raise SchemaLoadError(
                f"{path}: not a valid draft-07 schema at {where}: {exc.message}"
            ) from None
        files[path.name] = doc
    if ENVELOPE_FILE not in files:
        raise SchemaLoadError(f"{directory / ENVELOPE_FILE}: missing")
    return files


def _split_ref(ref: str, current: str, files: dict[str, Any]) -> tuple[str, str]:
    name, _, pointer = ref.partition("#")
    if not name:
        name = current
    elif "/" in name or "\\" in name or ":" in name or name not in files:
        raise SchemaLoadError(
            f"{current}: $ref {ref!r} must name a schema file of the same directory "
            "(no URLs, no sub-directories; nothing is fetched)"
        )
    return name, pointer


def _resolve_pointer(doc: Any, pointer: str, where: str) -> Any:
    node = doc
    if pointer in ("", "/"):
        return node
    if not pointer.startswith("/"):
        raise SchemaLoadError(f"{where}: only JSON-pointer fragments are supported")
    for raw in pointer[1:].split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise SchemaLoadError(f"{where}: cannot resolve #{pointer}")
    return node


def _inline(
    node: Any, current: str, files: dict[str, dict[str, Any]], seen: tuple[str, ...]
) -> Any:
    """Replace every ``$ref`` by a copy of its target, recursively.

    A ``$ref`` may only carry annotations beside it (draft-07 ignores other siblings, so
    an outside validator would ignore them too); refine with ``allOf`` instead.
    """
    if isinstance(node, list):
        return [_inline(item, current, files, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name, pointer = _split_ref(ref, current, files)
        target_key = f"{name}#{pointer}"
        if target_key in seen:
            raise SchemaLoadError(f"{current}: circular $ref {' -> '.join([*seen, target_key])}")
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        refused = sorted(k for k in siblings if k not in _ANNOTATIONS and not k.startswith("x-"))
        if refused:
            raise SchemaLoadError(
                f"{current}: keywords {refused} beside $ref {ref!r} are ignored by draft-07 "
                "validators; wrap the $ref in allOf to refine it"
            )
        target = _resolve_pointer(files[name], pointer, f"{current}: $ref {ref!r}")
        resolved = _inline(target, name, files, (*seen, target_key))
        if not isinstance(resolved, dict):
            raise SchemaLoadError(f"{current}: $ref {ref!r} does not point to a schema object")
        merged = {k: v for k, v in resolved.items() if k not in ("$id", "$schema", "definitions")}
        merged.update(siblings)
        return merged
    return {k: _inline(v, current, files, seen) for k, v in node.items()}


def _subschemas(
    node: dict[str, Any], path: tuple[str, ...]
) -> Iterator[tuple[Any, tuple[str, ...]]]:
    """Child schemas of a schema node with the instance path they apply to."""
    for name, sub in (node.get("properties") or {}).items():
        yield sub, (*path, name)
    items = node.get("items")
    if isinstance(items, dict):
        yield items, (*path, "*")
    elif isinstance(items, list):
        for sub in items:
            yield sub, (*path, "*")
    for key in ("additionalItems", "additionalProperties", "contains", "propertyNames", "not"):
        if isinstance(node.get(key), dict):
            yield node[key], (*path, "*") if key != "not" else path
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(key) or ():
            yield sub, path
    for key in ("if", "then", "else"):
        if isinstance(node.get(key), dict):
            yield node[key], path


def walk(
    schema: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every schema node of an inlined schema with its instance path ("*" = any array item)."""
    yield path, schema
    for sub, sub_path in _subschemas(schema, path):
        if isinstance(sub, dict):
            yield from walk(sub, sub_path)


def properties(
    schema: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every declared property of an inlined schema: (path, its schema). Used by the docs test."""
    for node_path, node in walk(schema, path):
        for name, sub in (node.get("properties") or {}).items():
            if isinstance(sub, dict):
                yield (*node_path, name), sub


def _check_house_rules(schema: dict[str, Any], where: str) -> None:
    for path, node in walk(schema):
        at = f"{where} at {'.'.join(path) or '<root>'}"
        if "format" in node:
            raise SchemaLoadError(f"{at}: 'format' is not allowed (validators differ); use pattern")
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            if _NON_PORTABLE_CLASS.search(pattern):
                raise SchemaLoadError(f"{at}: pattern uses \\d, \\w or \\b; write [0-9] etc.")
            for match in _DOLLAR.finditer(pattern):
                end = match.end()
                if end != len(pattern) and pattern[end] not in ")|":
                    raise SchemaLoadError(f"{at}: '$' may only end a pattern or an alternative")
        pii = node.get("x-pii")
        if pii is not None and pii not in PII_KINDS:
            raise SchemaLoadError(f"{at}: x-pii {pii!r} is not one of {sorted(PII_KINDS)}")
        route = node.get("x-route")
        if route is not None:
            if route not in ROUTE_ATTRIBUTES:
                raise SchemaLoadError(
                    f"{at}: x-route {route!r} is not one of {sorted(ROUTE_ATTRIBUTES)}"
                )
            if "*" in path:
                raise SchemaLoadError(f"{at}: x-route inside an array cannot route a message")
        check = node.get("x-check")
        if check is not None and check not in CHECKS:
            raise SchemaLoadError(f"{at}: x-check {check!r} is not one of {sorted(CHECKS)}")


def _annotations(
    schema: dict[str, Any], prefix: tuple[str, ...], where: str
) -> tuple[dict[str, tuple[str, ...]], dict[tuple[str, ...], str], dict[tuple[str, ...], str]]:
    routes: dict[str, tuple[str, ...]] = {}
    pii: dict[tuple[str, ...], str] = {}
    vi: dict[tuple[str, ...], str] = {}
    for rel, node in walk(schema):
        path = (*prefix, *rel)
        if "x-route" in node:
            name = node["x-route"]
            if routes.get(name, path) != path:
                raise SchemaLoadError(
                    f"{where}: x-route {name!r} marks both {'.'.join(routes[name])} and "
                    f"{'.'.join(path)}; a routing attribute must have one place"
                )
            routes[name] = path
        if "x-pii" in node:
            pii.setdefault(path, node["x-pii"])
        if "x-vi-name" in node:
            vi.setdefault(path, node["x-vi-name"])
    return routes, pii, vi


def _value_checks(schema: dict[str, Any], prefix: tuple[str, ...]) -> tuple[ValueCheck, ...]:
    """The x-check marks of a payload schema: (path, name, check), once per path and name."""
    found: dict[tuple[tuple[str, ...], str], ValueCheck] = {}
    for rel, node in walk(schema):
        name = node.get("x-check")
        if name is not None:
            path = (*prefix, *rel)
            found.setdefault((path, name), (path, name, CHECKS[name]))
    return tuple(found.values())


def _compile(schema: dict[str, Any], where: str) -> _Compiled:
    for _, node in walk(schema):  # belt and braces: nothing may be left to resolve
        if "$ref" in node:
            raise SchemaLoadError(f"{where}: unresolved $ref after inlining")
    try:
        fast = fastjsonschema.compile(schema, handlers={}, use_default=False, use_formats=False)
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise SchemaLoadError(f"{where}: fastjsonschema cannot compile it: {exc}") from None
    return _Compiled(schema=schema, fast=fast, slow=_Explainer(schema))


# --------------------------------------------------------------------------- problems


def _format_path(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _property_label(name: str) -> str:
    """Name an unexpected property, unless it does not look like a field name (may be data)."""
    if _SAFE_PROPERTY_NAME.match(name):
        return repr(name)
    return f"<unnamed, {len(name)} characters>"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


_BOUNDS = {
    "minimum": ">= {}",
    "maximum": "<= {}",
    "exclusiveMinimum": "> {}",
    "exclusiveMaximum": "< {}",
    "minLength": ">= {} characters",
    "maxLength": "<= {} characters",
    "minItems": ">= {} items",
    "maxItems": "<= {} items",
    "minProperties": ">= {} properties",
    "maxProperties": "<= {} properties",
    "multipleOf": "multiple of {}",
}


def _expected(rule: str, value: Any) -> str:
    if rule in _BOUNDS:
        return _BOUNDS[rule].format(value)
    if rule == "pattern":
        return str(value)
    if rule == "type":
        return " or ".join(value) if isinstance(value, list) else str(value)
    if rule == "enum":
        return "one of " + ", ".join(_json(v) for v in value)
    if rule == "const":
        return _json(value)
    if rule == "uniqueItems":
        return "unique items"
    if rule in ("anyOf", "oneOf"):
        return f"{rule} of {len(value)} alternatives"
    if isinstance(value, str | int | float | bool) and len(str(value)) <= 80:
        return str(value)
    return ""


def _problems_of(error: ValidationError, prefix: tuple[Any, ...]) -> Iterator[Problem]:
    """Turn one jsonschema error into problems, from the keyword and schema, never the value."""
    path = _format_path((*prefix, *error.absolute_path))
    rule = str(error.validator) if error.validator is not None else "false"
    value = error.validator_value
    instance = error.instance
    if rule == "required" and isinstance(instance, dict):
        for name in cast("list[str]", value):  # "required" always holds its property names
            if name not in instance:
                yield Problem(path, "required", f"property {name!r}")
    elif rule == "additionalProperties" and isinstance(instance, dict):
        declared = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        for name in sorted(k for k in instance if k not in declared):
            yield Problem(path, rule, f"property {_property_label(name)} not allowed")
    else:
        yield Problem(path, rule, _expected(rule, value))


# array indexes after names at each level, then by rule and constraint
_SortKey = tuple[tuple[tuple[int, Any], ...], str, str]


def _sort_key(problem: Problem, parts: tuple[Any, ...]) -> _SortKey:
    return (
        tuple((1, p) if isinstance(p, int) else (0, p) for p in parts),
        problem.rule,
        problem.expected,
    )


def _explain(
    validator: Draft7Validator,
    instance: Any,
    prefix: tuple[Any, ...],
    checks: tuple[ValueCheck, ...] = (),
    doc: Any = None,
) -> list[Problem]:
    """Every problem of ``instance``, and of its x-checked values in ``doc``, ordered by path."""
    found: dict[Problem, _SortKey] = {}
    for error in validator.iter_errors(instance):
        parts = (*prefix, *error.absolute_path)
        for problem in _problems_of(error, prefix):
            found.setdefault(problem, _sort_key(problem, parts))
    for parts, name, expected in failed_checks(doc, checks):
        problem = Problem(_format_path(parts), name, expected)
        found.setdefault(problem, _sort_key(problem, parts))
    return sorted(found, key=found.__getitem__)


# --------------------------------------------------------------------------- registry


class SchemaRegistry:
    """All message schemas of a directory, compiled once; the router's validation step."""

    def __init__(
        self,
        envelope: _Compiled,
        types: dict[tuple[str, int], _TypeSchema],
        envelope_vi: dict[tuple[str, ...], str],
        directory: Path,
    ) -> None:
        self._envelope = envelope
        self._types = types
        self._envelope_vi = envelope_vi
        self.directory = directory
        self._known = ", ".join(f"{t} v{v}" for t, v in sorted(types))

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaRegistry:
        """Read, inline, check and compile every schema of ``directory``.

        Default: ``$DVCBUS_SCHEMAS``, else the repository's ``schemas/``. Raises
        :class:`SchemaLoadError` naming the file when anything is wrong, so a bad contract
        is refused at start-up rather than discovered message by message.
        """
        if directory is None:
            env = os.environ.get("DVCBUS_SCHEMAS")
            directory = Path(env) if env else PROJECT_ROOT / "schemas"
        directory = Path(directory)
        files = _read_files(directory)
        for name, raw in files.items():  # blame the file that breaks a rule, not its users
            _check_house_rules(raw, str(directory / name))
            for def_name, definition in (raw.get("definitions") or {}).items():
                if isinstance(definition, dict):
                    _check_house_rules(definition, f"{directory / name} definitions/{def_name}")

        def prepare(name: str) -> dict[str, Any]:
            where = str(directory / name)
            schema: dict[str, Any] = _inline(files[name], name, files, (f"{name}#",))
            schema.pop("$id", None)
            schema.pop("definitions", None)
            _check_house_rules(schema, where)
            return schema

        env_schema = prepare(ENVELOPE_FILE)
        envelope = _compile(env_schema, str(directory / ENVELOPE_FILE))
        _, env_pii, envelope_vi = _annotations(env_schema, (), ENVELOPE_FILE)
        if env_pii:
            raise SchemaLoadError(f"{directory / ENVELOPE_FILE}: the envelope must carry no x-pii")

        types: dict[tuple[str, int], _TypeSchema] = {}
        for name in files:
            match = _TYPE_FILE.match(name)
            if not match:
                continue
            where = str(directory / name)
            key = (match["type"], int(match["version"]))
            schema = prepare(name)
            if schema.get("type") != "object":
                raise SchemaLoadError(f"{where}: a payload schema must have type object")
            routes, pii, vi = _annotations(schema, ("payload",), where)
            types[key] = _TypeSchema(
                key=key,
                compiled=_compile(schema, where),
                routes=tuple(sorted(routes.items())),
                checks=_value_checks(schema, ("payload",)),
                pii=pii,
                vi_names=vi,
            )
        return cls(envelope, types, envelope_vi, directory)

    @property
    def message_types(self) -> list[tuple[str, int]]:
        """The (type, version) pairs this registry can validate, sorted."""
        return sorted(self._types)

    def validate(self, doc: dict[str, Any]) -> tuple[str, int]:
        """Check a parsed message; return its (type, version) or raise :class:`Rejection`.

        Hot path: two compiled checks when the message is valid. The precise (and slower)
        explanation is computed only for a message that fails.
        """
        try:
            self._envelope.fast(doc)
            ok = True
        except fastjsonschema.JsonSchemaException:
            ok = False
        if not ok:  # raised outside the except block: no chained exception quoting the value
            raise self._rejection(doc)
        entry = self._types.get((doc["type"], doc["version"]))
        if entry is None:
            raise Rejection(
                Reason.UNKNOWN_TYPE,
                f"no schema for {doc['type']} v{int(doc['version'])}; known: {self._known}",
            )
        try:
            entry.compiled.fast(doc["payload"])
            ok = True
        except fastjsonschema.JsonSchemaException:
            ok = False
        if not ok:
            raise self._rejection(doc)
        if entry.checks and any_failed(doc, entry.checks):
            raise self._rejection(doc)
        return entry.key

    def problems(self, doc: dict[str, Any]) -> list[Problem]:
        """Every problem of the envelope, then of the payload if the envelope is fine.

        Ordered by path (then rule); the semantic checks (x-check) of the payload's values
        are problems too, with the check's name as rule. An unknown (type, version) gives one
        problem with rule ``unknown_type`` at ``type`` (or ``version`` when the type exists in
        another version).
        """
        found = _explain(self._envelope.slow, doc, ())
        if found:
            return found
        key = (doc["type"], doc["version"])
        entry = self._types.get(key)
        if entry is None:
            at = "version" if any(t == key[0] for t, _ in self._types) else "type"
            return [Problem(at, "unknown_type", f"one of {self._known}")]
        return _explain(entry.compiled.slow, doc["payload"], ("payload",), entry.checks, doc)

    def _rejection(self, doc: Any) -> Rejection:
        found = self.problems(doc)
        if not found:  # the validators disagree: never let the message through unexplained
            found = [Problem("", "schema", "rejected by the compiled validator")]
        return Rejection(Reason.INVALID, format_problems(found))

    def _entry(self, type_: str, version: int) -> _TypeSchema:
        try:
            return self._types[(type_, version)]
        except KeyError:
            raise KeyError(f"no schema for {type_} v{version}; known: {self._known}") from None

    def route_attributes(self, doc: dict[str, Any]) -> dict[str, str]:
        """Values of the x-route fields of a valid message, e.g. {"agency": "000.00.00.H26"}.

        Absent optional fields are left out. Paths are precomputed at load (hot path).
        """
        out: dict[str, str] = {}
        for name, path in self._entry(doc["type"], doc["version"]).routes:
            node: Any = doc
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
                if node is None:
                    break
            else:
                out[name] = node
        return out

    def set_route_attribute(self, doc: dict[str, Any], name: str, value: str) -> None:
        """Write a translated unit code back where attribute ``name`` lives in ``doc``.

        Raises KeyError if the type has no such attribute or the message does not carry it
        (nothing to translate then).
        """
        paths = dict(self._entry(doc["type"], doc["version"]).routes)
        if name not in paths:
            raise KeyError(f"{doc['type']} v{doc['version']} has no routing attribute {name!r}")
        *parents, leaf = paths[name]
        node: Any = doc
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise KeyError(f"this message carries no {name!r} attribute")
        node[leaf] = value

    def pii_fields(self, type_: str, version: int) -> dict[tuple[str, ...], str]:
        """Personal-data fields: path ("payload" first, "*" = any array item) -> x-pii kind."""
        return dict(self._entry(type_, version).pii)

    def vi_names(self, type_: str, version: int) -> dict[tuple[str, ...], str]:
        """Vietnamese field names (x-vi-name) of the envelope and payload, by path."""
        return {**self._envelope_vi, **self._entry(type_, version).vi_names}
