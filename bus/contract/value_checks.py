"""Checks a JSON Schema pattern cannot express, named in a schema by ``x-check``.

A schema node says ``"x-check": "citizen_id"``; outside validators ignore the annotation,
the bus runs the named check on the value once the schema has accepted the message, and a
failure is the same ``invalid`` problem as a schema's (path, rule = the check's name, what is
expected), never quoting the value. The paths are found once, at load (hot path: a few dict
lookups per message of a type that has any).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bus.contract.citizen_id import citizen_id_problem

__all__ = ["CHECKS", "ValueCheck", "any_failed", "failed_checks"]

# value -> what it must be (the problem's expected text), or None when it may be real
Check = Callable[[object], str | None]

CHECKS: dict[str, Check] = {
    "citizen_id": citizen_id_problem,
}

# (path from the message root, "*" = every array item; the check's name; the check)
ValueCheck = tuple[tuple[str, ...], str, Check]


def any_failed(doc: Any, checks: tuple[ValueCheck, ...]) -> bool:
    """Whether a check refuses a value of ``doc``: the hot path's question, without building
    problems (a few dict lookups per check path when no path crosses an array)."""
    for path, _, check in checks:
        if "*" in path:
            for _, value in _values(doc, path, ()):
                if check(value) is not None:
                    return True
            continue
        node = doc
        for key in path:
            node = node.get(key) if type(node) is dict else None
            if node is None:
                break
        else:
            if check(node) is not None:
                return True
    return False


def failed_checks(
    doc: Any, checks: tuple[ValueCheck, ...]
) -> Iterator[tuple[tuple[Any, ...], str, str]]:
    """(concrete path, check name, expected) of every value of ``doc`` a check refuses."""
    for path, name, check in checks:
        for where, value in _values(doc, path, ()):
            expected = check(value)
            if expected is not None:
                yield where, name, expected


def _values(
    node: Any, path: tuple[str, ...], where: tuple[Any, ...]
) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if not path:
        yield where, node
        return
    key, rest = path[0], path[1:]
    if key == "*":
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from _values(item, rest, (*where, index))
    elif isinstance(node, dict) and key in node:
        yield from _values(node[key], rest, (*where, key))
