"""The message envelope: the first step of the router's path (size check, decode, parse)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import orjson

from adapters.message import Message, dossier_no_of, short_str
from bus.contract.rejections import Reason, Rejection

DEFAULT_MAX_BYTES = 1024 * 1024
STATUS_TYPE = "dossier.status_changed"
SUBMITTED_TYPE = "dossier.submitted"

# The message adapters receive is the SDK's (bus -> adapters, never the reverse); it is
# re-exported here so the bus keeps one place to import the envelope from.
__all__ = [
    "DEFAULT_MAX_BYTES",
    "STATUS_TYPE",
    "SUBMITTED_TYPE",
    "Message",
    "dossier_no_of",
    "parse",
    "refuse_repeated_keys",
    "short_str",
    "status_of",
]


def status_of(doc: Any) -> int | None:
    """The status code a status update carries (1 … 10), else None."""
    payload = doc.get("payload") if isinstance(doc, dict) else None
    status = payload.get("status") if isinstance(payload, dict) else None
    return status if type(status) is int else None


def parse(body: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Decode a message body into a JSON object, refusing oversized or non-JSON input.

    The size is checked before anything else so a hostile 100 MB body costs nothing.
    """
    if len(body) > max_bytes:
        raise Rejection(Reason.TOO_LARGE, f"body is {len(body)} bytes, cap is {max_bytes}")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejection(Reason.MALFORMED, _decode_problem(body, exc)) from None
    if not isinstance(doc, dict):
        raise Rejection(
            Reason.MALFORMED, f"top level is a JSON {type(doc).__name__}, not an object"
        )
    refuse_repeated_keys(body, doc)
    return doc


def refuse_repeated_keys(body: bytes, doc: Any) -> None:
    """Raise ``malformed`` when ``body`` (which orjson parsed into ``doc``) repeats a key in
    any of its objects; for whoever re-serialises or forwards what orjson parsed."""
    if _may_repeat_a_key(body, doc):
        _refuse_duplicate_keys(body)


def _decode_problem(body: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as uexc:
        return f"not UTF-8: invalid byte at offset {uexc.start}"
    return f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


# --------------------------------------------------------------------------- duplicate keys
#
# orjson keeps the last of two equal keys without a word, so a body saying "type" twice would
# be checked on one value and forwarded byte for byte to an agency whose parser may keep the
# other. orjson cannot report duplicates; the stdlib parser can (object_pairs_hook) but costs
# three times as much, so it only runs when a cheap test says a duplicate is possible.

_COLON_ESCAPE = re.compile(rb"\\u003[aA]")  # a colon written as an escape
_SAFE_KEY = re.compile(r"^[^\W\d][\w-]{0,63}\Z")
_MAX_PATH = 120  # characters of a path in a detail


def _may_repeat_a_key(body: bytes, doc: Any) -> bool:
    r"""False only when ``body`` cannot have an object with two equal keys (2 to 6 µs on 1.5 KB).

    Outside strings, a colon in valid JSON is a member separator, so the colons of ``body``
    (plus its possible escaped colons, ``\u003a``) are at least the members it declares plus
    the colons its strings decode to. orjson re-serialises ``doc`` with every member and string
    it kept and never escapes a colon, so its colons are the members kept plus their strings'
    colons. A dropped duplicate leaves ``body`` with more colons than the re-serialised ``doc``;
    without duplicates the two are equal unless a string holds a literal backslash-u003
    (``"\\u003a"``), and then the exact check below simply runs for nothing.
    """
    try:
        kept = orjson.dumps(doc)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (254 levels)
        kept_colons = _colons_kept(doc)
    else:
        if kept == body:  # a compact sender (orjson, JSON.stringify, Jackson): nothing dropped
            return False
        kept_colons = kept.count(b":")
    declared = body.count(b":")
    if b"\\" in body:  # no backslash, no escape to count
        declared += len(_COLON_ESCAPE.findall(body))
    return declared > kept_colons


def _colons_kept(doc: Any) -> int:
    """The colons orjson would write for ``doc`` (members + colons in strings), by a walk."""
    colons = 0
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            colons += len(node) + sum(key.count(":") for key in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            colons += node.count(":")
    return colons


class _Members(list[tuple[str, Any]]):
    """An object's members in text order, duplicates included (the stdlib parser's hook)."""


def _refuse_duplicate_keys(body: bytes) -> None:
    """Raise ``malformed`` naming the first repeated key (in text order) and its object's path."""
    try:
        root = json.loads(body, object_pairs_hook=_Members)
    except RecursionError:  # orjson allows 1024 levels, the stdlib parser about 1000
        raise Rejection(Reason.MALFORMED, "nested too deep to check for duplicate keys") from None
    found = _first_duplicate(root)
    if found is not None:
        key, path = found
        raise Rejection(Reason.MALFORMED, f"duplicate key {_key_label(key)} at {_path(path)}")


def _first_duplicate(root: Any) -> tuple[str, tuple[str | int, ...]] | None:
    """The first key repeated in one object, in text order, with that object's path.

    Iterative (a stack of member iterators) so a 1024-deep body cannot exhaust the stack.
    """
    stack: list[tuple[Iterator[tuple[Any, Any]], tuple[str | int, ...], set[str] | None]] = []

    def enter(node: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(node, _Members):
            stack.append((iter(node), path, set()))
        elif isinstance(node, list):
            stack.append((iter(enumerate(node)), path, None))

    enter(root, ())
    while stack:
        members, path, seen = stack[-1]
        for name, value in members:
            if seen is not None:
                if name in seen:
                    return name, path
                seen.add(name)
            if isinstance(value, list):  # an array, or an object (_Members is a list)
                enter(value, (*path, name))
                break
        else:
            stack.pop()
    return None


def _key_label(key: str) -> str:
    """A key quoted as it reads, unless it does not look like a field name (it may be data)."""
    if _SAFE_KEY.match(key):
        return f'"{key}"'
    return f"<unnamed, {len(key)} characters>"


def _path(parts: tuple[str | int, ...]) -> str:
    """``$`` for the top-level object, else ``payload.documents[0]``-style; a path longer
    than a detail can carry keeps its end (``….items[3]``), where the object is."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            label = part if _SAFE_KEY.match(part) else _key_label(part)
            out += f".{label}" if out else label
    if len(out) > _MAX_PATH:
        out = "…" + out[-_MAX_PATH:]
    return out or "$"
