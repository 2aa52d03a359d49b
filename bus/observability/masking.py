"""Personal data and secrets never reach a log line: masks for values, free text and log events.

Three layers, cheapest first:

* **by key** — a value under a secret-looking key (``token``, ``password``, ``authorization``,
  ``cookie``, ``session``, ``checksum`` …) becomes ``***``; a value under a key the schemas
  mark ``x-pii`` (``id_number``, ``phone``, ``full_name`` …) is masked by its kind;
* **by path** — a whole message (a dict with ``type``, ``version`` and ``payload``) is masked
  at exactly the paths its schema marks ``x-pii``, each by its kind;
* **safety net** — every other string is scanned for 12- and 9-digit id numbers, Vietnamese
  phone numbers, e-mail addresses, ``Bearer`` tokens, passwords in URLs and the credential
  values the bus itself resolved, so an agency's answer or an exception quoting a message
  cannot leak them either.

Formats (fixed star counts, so the mask does not tell the length either): id number
``001*******345``, phone ``09******12``, e-mail ``n***@example.vn``, name ``N***``.

:func:`mask_text` is the safety net on its own (also for adapters quoting an agency's answer);
:data:`LOG_MASKER` is the structlog processor ``bus.log`` puts in every process's chain.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from adapters.masking import (
    MASK,
    mask_email,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_tax_code,
    mask_text,
)

if TYPE_CHECKING:
    from bus.contract.schemas import SchemaRegistry

__all__ = [
    "LOG_MASKER",
    "LogMasker",
    "MaskingFormatter",
    "mask_email",
    "mask_id_number",
    "mask_kind",
    "mask_phone",
    "mask_text",
    "printable",
]

MIN_SECRET_LENGTH = 6  # shorter resolved credentials are not searched for in free text

_SECRET_KEY = re.compile(
    r"(?i)(token|passw|secret|authori[sz]ation|cookie|session|api[_-]?key|credential|"
    r"checksum|signature|private[_-]?key|otp)"
)
_MESSAGE_ID = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-7][0-9A-HJKMNP-TV-Z]{25})$"
)
# Keys whose values the bus writes itself and which cannot carry personal data.
_TRUSTED_KEYS = frozenset(
    {"timestamp", "level", "logger", "process", "stage", "outcome", "attempt", "duration_ms"}
)
_MAX_DEPTH = 8
_CACHE_SIZE = 4096
_SCALARS = frozenset({int, float, bool})
_CACHED_MAX_LEN = 80

# Key names the shipped schemas mark x-pii, with their kind; extended from the loaded
# registry by :meth:`LogMasker.use_schemas`. Used wherever a value is logged under that key.
DEFAULT_PII_KEYS: dict[str, str] = {
    "full_name": "name",
    "id_number": "id_number",
    "tax_code": "tax_code",
    "phone": "phone",
    "email": "email",
    "street": "address",
    "summary": "free_text",
    "note": "free_text",
}
# When several x-pii paths end in the same key with different kinds, the strictest wins.
_STRICTNESS = {
    "free_text": 6,
    "address": 5,
    "name": 4,
    "tax_code": 3,
    "id_number": 2,
    "phone": 1,
    "email": 0,
}


_BY_KIND = {
    "id_number": mask_id_number,
    "phone": mask_phone,
    "email": mask_email,
    "name": mask_name,
    "tax_code": mask_tax_code,
}
# Kinds whose key names are unambiguous enough to mask also as top-level log fields; a
# top-level "name" or "url" is the code's own field, nested ones are data.
_TOP_LEVEL_KINDS = frozenset({"id_number", "phone", "email", "tax_code"})


def mask_kind(kind: str, value: Any) -> Any:
    """Mask one value by its x-pii kind; address, free text and unknown kinds become ``***``."""
    if value is None or value == "":
        return value
    if isinstance(value, dict | list | tuple):
        return MASK
    if isinstance(value, str) and MASK in value:
        return value  # already masked (by path, then again by key)
    masker = _BY_KIND.get(kind)
    return masker(str(value)) if masker is not None else MASK


def _looks_like_message(value: Mapping[str, Any]) -> bool:
    return "payload" in value and "type" in value and "version" in value


class LogMasker:
    """The structlog processor that masks personal data and secrets in every event.

    Pure function of the event dict (plus the schemas and resolved secrets it was given),
    so it is tested with plain dicts. It never mutates a value it was handed: a message
    dict logged by a caller is copied where it is masked, never changed in place.
    """

    def __init__(self, pii_keys: Mapping[str, str] | None = None) -> None:
        self.pii_keys: dict[str, str] = dict(pii_keys or DEFAULT_PII_KEYS)
        self.top_keys: dict[str, str] = dict(self.pii_keys)
        self.schemas: SchemaRegistry | None = None
        self.secrets: tuple[str, ...] = ()
        self._paths: dict[tuple[str, int], dict[tuple[str, ...], str]] = {}
        # Masked forms of strings seen recently: event names, types and targets repeat on
        # every line. Bounded: cleared when full, so hostile unique strings cost only misses.
        self._texts: dict[str, str] = {}

    def use_schemas(self, schemas: SchemaRegistry) -> None:
        """Mask messages by their schema's x-pii paths, and x-pii key names everywhere."""
        keys = dict(self.pii_keys)
        paths: dict[tuple[str, int], dict[tuple[str, ...], str]] = {}
        for type_, version in schemas.message_types:
            fields = schemas.pii_fields(type_, version)
            paths[(type_, version)] = fields
            for path, kind in fields.items():
                leaf = path[-1]
                if leaf == "*":
                    continue
                if _STRICTNESS.get(kind, 9) >= _STRICTNESS.get(keys.get(leaf, ""), -1):
                    keys[leaf] = kind
        top = dict(self.top_keys)
        top.update({k: v for k, v in keys.items() if v in _TOP_LEVEL_KINDS})
        self.pii_keys, self.top_keys, self._paths, self.schemas = keys, top, paths, schemas

    def add_secrets(self, values: Iterable[str]) -> None:
        """Exact secret values (resolved credentials) to blank wherever they appear."""
        found = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
        # longest first, so a secret containing another is replaced whole
        self.secrets = tuple(sorted(found | set(self.secrets), key=len, reverse=True))
        self._texts.clear()

    def __call__(self, _logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in event.items():
            if key in _TRUSTED_KEYS or value is None:
                continue
            if key == "message_id" and type(value) is str and _MESSAGE_ID.match(value):
                continue
            event[key] = self.mask_value(key, value, 0)
        return event

    def mask_value(self, key: str, value: Any, depth: int) -> Any:
        """The masked form of ``value`` logged under ``key``."""
        kind = (self.pii_keys if depth else self.top_keys).get(key)
        kind_of_value = type(value)
        if kind_of_value is str:
            if kind is not None:
                return mask_kind(kind, value)
            if _is_secret_key(key):
                return MASK if value else value
            return self.text(value)
        if kind_of_value in _SCALARS or value is None:
            return mask_kind(kind, value) if kind and value is not None else _secret(key, value)
        if (kind_of_value is list or kind_of_value is tuple) and kind is None:
            if _is_secret_key(key):
                return MASK
            return [
                self.text(item) if type(item) is str else self.mask_value(key, item, depth + 1)
                for item in value
            ]
        if _is_secret_key(key):
            return MASK
        if kind is not None:
            return mask_kind(kind, value)
        if depth >= _MAX_DEPTH:
            return MASK
        if isinstance(value, Mapping):
            return self._mask_mapping(value, depth + 1)
        if isinstance(value, list | tuple | set | frozenset):
            return [self.mask_value(key, item, depth + 1) for item in value]
        if isinstance(value, bytes | bytearray):
            return self.text(bytes(value).decode("utf-8", "replace"))
        return self.text(str(value))

    def text(self, value: str) -> str:
        """:func:`mask_text` with this masker's secrets, remembering short strings."""
        texts = self._texts
        masked = texts.get(value)
        if masked is None:
            masked = mask_text(value, self.secrets)
            if len(value) <= _CACHED_MAX_LEN:
                if len(texts) >= _CACHE_SIZE:
                    texts.clear()
                texts[value] = masked
        return masked

    def _mask_mapping(self, value: Mapping[str, Any], depth: int) -> dict[str, Any]:
        doc: dict[str, Any] = dict(value)
        if _looks_like_message(doc):
            doc = self._mask_message_paths(doc)
        return {
            str(k): v if v is None else self.mask_value(str(k), v, depth) for k, v in doc.items()
        }

    def _mask_message_paths(self, doc: dict[str, Any]) -> dict[str, Any]:
        try:
            fields = self._paths.get((doc["type"], int(doc["version"])))
        except (TypeError, ValueError):
            fields = None
        if not fields:
            return doc
        for path, kind in fields.items():
            doc = _mask_path(doc, path, kind)
        return doc


@lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def _secret(key: str, value: Any) -> Any:
    return MASK if value is not None and _is_secret_key(key) else value


def _mask_path(node: Any, path: tuple[str, ...], kind: str) -> Any:
    """A copy of ``node`` with the value at ``path`` ("*" = every array item) masked."""
    if not path:
        return mask_kind(kind, node)
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(node, list):
            return [_mask_path(item, rest, kind) for item in node]
        return node
    if isinstance(node, dict) and head in node:
        copy = dict(node)
        copy[head] = _mask_path(node[head], rest, kind)
        return copy
    return node


# C0 controls but newline and tab, DEL, and C1 controls: a terminal acts on them (ESC starts a
# colour or cursor sequence, CR overwrites the line), so operator views show them escaped.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def printable(text: str) -> str:
    """``text`` with its control characters written as ``\\xNN`` (newlines and tabs kept)."""
    return _CONTROL.sub(_escaped, text)


class MaskingFormatter(logging.Formatter):
    """For records that bypass structlog (libraries' stdlib logging): mask the whole line."""

    def __init__(self, masker: LogMasker, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self.masker = masker

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record), self.masker.secrets)


LOG_MASKER = LogMasker()
