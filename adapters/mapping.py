"""Declared mappings: the canonical message rewritten to an agency's field names and formats.

A target's ``options`` say, field by field, what the agency wants; the mapping is compiled
once when the adapter is built (a mistake is reported then, naming the field) and applied
to every message as a few dictionary look-ups. Paths are dotted, from the envelope's root
(``id``, ``type``, ``correlation_id``, ``payload.dossier_no``; a list index is a number,
``payload.documents.0.url``). Forms a field may take::

    MaHoSo: payload.dossier_no                      # the value at a path (left out if absent)
    NgayTiepNhan: {from: payload.status_at, format: yyyyMMddHHmmss}   # Vietnam time by default
    TrangThai: {from: payload.status, map: {"1": MOI, "2": DA_TIEP_NHAN}, default: KHAC}
    SoTien: {from: payload.amount, type: string}
    NguonDongBo: {value: DVCBUS}                    # a constant
    GhiChu: {template: "Hồ sơ {payload.dossier_no}"}
    GiayTo: {each: payload.documents, fields: {Ten: name, DuongDan: url}}   # paths per item
    NguoiNop: {HoTen: payload.applicant.full_name}  # a nested object (any other mapping)

Add ``required: true`` to refuse a message without the value (a permanent failure naming
the field) and ``default: ...`` to send a value when the path is absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

VIETNAM = timezone(timedelta(hours=7), "ICT")
_MISSING = object()
_RESERVED = frozenset(
    {"from", "value", "format", "timezone", "map", "default", "type", "template", "each",
     "fields", "required"}
)  # fmt: skip
_TYPES = ("string", "integer", "number", "boolean")


class MappingError(ValueError):
    """A mapping in the configuration is wrong; the message names the field."""


class MissingValue(ValueError):
    """A message lacks a value its mapping requires (permanent: the message cannot change)."""


Getter = Callable[[Any], Any]


def path_getter(path: str, where: str = "") -> Getter:
    """A function returning the value at a dotted ``path`` of a document, or the _MISSING mark."""
    if not isinstance(path, str) or not path or path.strip() != path:
        raise MappingError(f"{where}: a path must be a non-empty dotted name, got {path!r}")
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".")]
    if any(p == "" for p in parts):
        raise MappingError(f"{where}: path {path!r} has an empty part")

    def get(doc: Any) -> Any:
        value = doc
        for part in parts:
            if isinstance(part, int) and isinstance(value, list):
                if part >= len(value):
                    return _MISSING
                value = value[part]
            elif isinstance(value, dict):
                value = value.get(part, _MISSING)
                if value is _MISSING:
                    return _MISSING
            else:
                return _MISSING
        return value

    return get


# --- date and time patterns ------------------------------------------------------------

_TOKENS = re.compile(r"yyyy|yy|MM|dd|HH|mm|ss|SSS|'[^']*'|[A-Za-z]|[^A-Za-z']+")
_STRFTIME = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M",
             "ss": "%S"}  # fmt: skip


def date_formatter(pattern: str, tz: timezone = VIETNAM) -> Callable[[str], str]:
    """A function turning an RFC 3339 date-time into ``pattern`` (Java style) in ``tz``.

    Supported letters: ``yyyy yy MM dd HH mm ss SSS``; text in single quotes is literal.
    The portal's integrations use ``yyyyMMddHHmmss`` in Vietnam time (UTC+7).
    """
    parts: list[str] = []
    millis = False
    for token in _TOKENS.findall(pattern):
        if token in _STRFTIME:
            parts.append(_STRFTIME[token])
        elif token == "SSS":
            parts.append("\ue000")
            millis = True
        elif token.startswith("'"):
            parts.append(token[1:-1].replace("%", "%%") or "'")
        elif token.isalpha():
            raise MappingError(
                f"date format {pattern!r}: letter {token!r} is not supported "
                "(use yyyy yy MM dd HH mm ss SSS, literal text in 'quotes')"
            )
        else:
            parts.append(token.replace("%", "%%"))
    fmt = "".join(parts)
    if not fmt:
        raise MappingError(f"date format {pattern!r} is empty")

    def format_(value: str) -> str:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError(f"date-time {value!r} has no UTC offset")
        local = moment.astimezone(tz)
        text = local.strftime(fmt)
        if millis:
            text = text.replace("\ue000", f"{local.microsecond // 1000:03d}")
        return text

    return format_


def parse_offset(text: str) -> timezone:
    """``+07:00`` / ``-05:30`` / ``Z`` as a timezone."""
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})|Z", text)
    if not m:
        raise MappingError(f"timezone {text!r} must be an offset such as +07:00")
    if text == "Z":
        return UTC
    sign = -1 if m.group(1) == "-" else 1
    return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))


# --- compiling a mapping ---------------------------------------------------------------


class Mapper:
    """A compiled mapping: call it with the envelope document to get the agency's shape."""

    def __init__(self, build: Callable[[Any], Any], source: Any) -> None:
        self._build = build
        self.source = source

    def __call__(self, doc: Any) -> Any:
        return self._build(doc)


def compile_mapping(spec: Any, where: str = "body") -> Mapper:
    """Compile a mapping declared in routes.yaml; raises :class:`MappingError` naming the field."""
    if not isinstance(spec, dict) or not spec:
        raise MappingError(f"{where}: a mapping is a non-empty set of 'agency field: source'")
    build = _object(spec, where)

    def run(doc: Any) -> Any:
        return build(doc)

    return Mapper(run, spec)


def _object(spec: dict[str, Any], where: str) -> Callable[[Any], dict[str, Any]]:
    fields = [(str(name), _field(value, f"{where}.{name}")) for name, value in spec.items()]

    def build(doc: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, get in fields:
            value = get(doc)
            if value is not _MISSING:
                out[name] = value
        return out

    return build


def _field(spec: Any, where: str) -> Getter:
    if isinstance(spec, str):
        return path_getter(spec, where)
    if not isinstance(spec, dict):
        raise MappingError(
            f"{where}: expected a path, or a mapping with from/value/template/each, got "
            f"{type(spec).__name__}"
        )
    if not (set(spec) & _RESERVED - {"required", "default"}):
        return _object(spec, where)
    unknown = set(spec) - _RESERVED
    if unknown:
        raise MappingError(
            f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_RESERVED)}"
        )
    sources = [k for k in ("from", "value", "template", "each") if k in spec]
    if "fields" in spec and "each" not in spec:
        sources.append("fields")
    if len(sources) != 1:
        raise MappingError(f"{where}: give exactly one of from, value, template, each or fields")
    kind = sources[0]
    if kind == "value":
        constant = spec["value"]
        return lambda _doc: constant
    if kind == "template":
        get = _template(spec["template"], where)
    elif kind == "each":
        get = _each(spec, where)
    elif kind == "fields":
        if not isinstance(spec["fields"], dict):
            raise MappingError(f"{where}.fields: expected a mapping of fields")
        get = _object(spec["fields"], where)
    else:
        get = path_getter(spec["from"], where)
    get = _converted(get, spec, where)
    return _finished(get, spec, where)


def _converted(get: Getter, spec: dict[str, Any], where: str) -> Getter:
    steps: list[Callable[[Any], Any]] = []
    if "map" in spec:
        table = spec["map"]
        if not isinstance(table, dict) or not table:
            raise MappingError(f"{where}.map: expected a non-empty table of value: replacement")
        lookup = {str(k): v for k, v in table.items()}
        has_default = "default" in spec
        default = spec.get("default")

        def translate(value: Any) -> Any:
            key = str(value).lower() if isinstance(value, bool) else str(value)
            if key in lookup:
                return lookup[key]
            if has_default:
                return default
            raise MissingValue(f"{where}: value is not in the declared map")

        steps.append(translate)
    if "format" in spec:
        tz = parse_offset(spec["timezone"]) if "timezone" in spec else VIETNAM
        fmt = date_formatter(str(spec["format"]), tz)

        def as_date(value: Any) -> Any:
            try:
                return fmt(value)
            except (TypeError, ValueError):
                raise MissingValue(f"{where}: not an RFC 3339 date-time") from None

        steps.append(as_date)
    elif "timezone" in spec:
        raise MappingError(f"{where}: timezone applies only with format")
    if "type" in spec:
        type_ = spec["type"]
        if type_ not in _TYPES:
            raise MappingError(f"{where}.type: {type_!r} is not one of {', '.join(_TYPES)}")
        steps.append(_caster(type_, where))
    if not steps:
        return get

    def converted(doc: Any) -> Any:
        value = get(doc)
        if value is _MISSING or value is None:
            return value
        for step in steps:
            value = step(value)
        return value

    return converted


def _caster(type_: str, where: str) -> Callable[[Any], Any]:
    def cast(value: Any) -> Any:
        try:
            if type_ == "string":
                return value if isinstance(value, str) else str(value)
            if type_ == "integer":
                return int(value)
            if type_ == "number":
                return float(value)
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true")
        except (TypeError, ValueError):
            raise MissingValue(f"{where}: value cannot be read as {type_}") from None

    return cast


def _finished(get: Getter, spec: dict[str, Any], where: str) -> Getter:
    required = bool(spec.get("required", False))
    has_default = "default" in spec and "map" not in spec
    default = spec.get("default")
    if not required and not has_default:
        return get

    def finished(doc: Any) -> Any:
        value = get(doc)
        if value is _MISSING:
            if has_default:
                return default
            raise MissingValue(f"{where}: required value is missing from the message")
        return value

    return finished


def _each(spec: dict[str, Any], where: str) -> Getter:
    items = path_getter(spec["each"], where)
    fields = spec.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise MappingError(f"{where}: each needs fields: a mapping applied to every item")
    build = _object(fields, f"{where}[]")

    def each(doc: Any) -> Any:
        value = items(doc)
        if value is _MISSING or value is None:
            return _MISSING
        if not isinstance(value, list):
            raise MissingValue(f"{where}: {spec['each']} is not a list")
        return [build(item) for item in value]

    return each


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def template_parts(template: str, where: str) -> list[str | Getter]:
    """A template's literal text and path getters, in order (``{{`` and ``}}`` are braces)."""
    if not isinstance(template, str):
        raise MappingError(f"{where}: a template is text with {{path}} placeholders")
    parts: list[str | Getter] = []
    pos = 0
    text = template.replace("{{", "\x01").replace("}}", "\x02")
    for m in _PLACEHOLDER.finditer(text):
        if m.start() > pos:
            parts.append(_literal(text[pos : m.start()], template, where))
        parts.append(path_getter(m.group(1), where))
        pos = m.end()
    if pos < len(text):
        parts.append(_literal(text[pos:], template, where))
    return parts


def _literal(text: str, template: str, where: str) -> str:
    if "{" in text or "}" in text:
        raise MappingError(f"{where}: template {template!r} has an unmatched brace")
    return text.replace("\x01", "{").replace("\x02", "}")


def render(parts: list[str | Getter], doc: Any, convert: Callable[[Any], str] = str) -> str:
    """Fill a compiled template; a missing value raises :class:`MissingValue`."""
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = part(doc)
        if value is _MISSING or value is None:
            raise MissingValue("a template placeholder has no value in this message")
        out.append(convert(value))
    return "".join(out)


def _template(template: str, where: str) -> Getter:
    parts = template_parts(template, where)
    return lambda doc: render(parts, doc)
