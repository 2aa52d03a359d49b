"""How a problem in routes.yaml is said: where it is, whose it is, and the likely fix.

Shared by the loader (problems of shape and value) and the checks (problems across the file
and against what the bus knows), so both speak of a route or a target the same way.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

# Where a node sits in the file's data: keys of mappings and indexes of lists.
Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in routes.yaml, with where it is."""

    file: str
    line: int  # 1-based; 0 when the file could not be read at all
    column: int  # 1-based
    message: str
    severity: str = "error"  # "error" refuses the file; "warning" is worth a look

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.file}: {self.severity}: {self.message}"
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"


def suggest(word: str, choices: Any) -> str:
    """' (did you mean 'x'?)' for the closest of ``choices``, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def owner_of(loc: Path_, data: Any) -> str:
    """'route 'hanoi': match.agency: ' — who a problem belongs to, in the operator's words."""
    if not loc:
        return ""
    head, rest = loc[0], loc[1:]
    if head == "targets" and rest:
        owner, rest = f"target {rest[0]!r}", rest[1:]
    elif head == "sources" and rest:
        owner, rest = f"sources of {rest[0]}", rest[1:]
    elif head == "routes" and rest and isinstance(rest[0], int):
        owner, rest = _route_label(rest[0], data), rest[1:]
    else:
        owner = str(head)
    if head == "targets" and tuple(rest) == ("name",):
        rest = ()  # the name is the key: the message already says which
    named = ".".join(str(part) for part in rest if not isinstance(part, int) and part != "[key]")
    return f"{owner}: {named}: " if named else f"{owner}: "


def _route_label(index: int, data: Any) -> str:
    routes = data.get("routes") if isinstance(data, dict) else None
    if isinstance(routes, list) and index < len(routes) and isinstance(routes[index], dict):
        name = routes[index].get("name")
        if isinstance(name, str) and name:
            return f"route {name!r}"
    return f"route #{index + 1}"
