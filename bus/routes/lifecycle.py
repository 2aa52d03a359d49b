"""The dossier status lifecycle as data: which status may follow which (statuses.yaml).

The portal's ten status codes and their plausible transitions (DOMAIN.md: 1→2|3, 2→4,
4→5|6|8|9, 5→4, 6→4|9, {1,2,4,5}→7, 9→10; 3, 7, 8 and 10 final) are an operator's file, not
code, so a ministry's quirk is a line to change and ``dvcbus routes check`` checks it by line
like routes.yaml. The table is compiled once into a set of allowed pairs: the dispatcher's
per-message check is one set lookup (``bus.delivery.steps.screen_status``).

A status repeated (4 after 4: a new due date, a new note) is no transition and always allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bus.errors import ConfigError
from bus.routes.problems import Problem

# The codes the status contract allows (schemas/dossier.status_changed.v1.json: 1..10).
CONTRACT_CODES = frozenset(range(1, 11))
_TOP = frozenset({"version", "statuses"})
_FIELDS = frozenset({"name", "next", "final"})


class LifecycleError(ConfigError):
    """statuses.yaml cannot be used; ``problems`` says where (file and line) and what."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        super().__init__(f"statuses refused: {errors[0] if errors else 'no details'}")


@dataclass(frozen=True, slots=True)
class Status:
    """One status code: its name, the codes that may follow it, where it is written."""

    code: int
    name: str
    next: frozenset[int]
    final: bool
    line: int


class Lifecycle:
    """The compiled transition table: ``allows(previous, new)`` costs one set lookup."""

    def __init__(self, statuses: dict[int, Status], path: str = "") -> None:
        self.statuses = statuses
        self.path = path
        self._allowed = frozenset((s.code, n) for s in statuses.values() for n in s.next) | {
            (code, code) for code in statuses
        }

    def allows(self, previous: int | None, new: int | None) -> bool:
        """Whether ``new`` may follow ``previous`` (a first status, or an unknown one, may)."""
        if previous is None or new is None:
            return True
        return (previous, new) in self._allowed

    def name(self, code: int | None) -> str:
        found = self.statuses.get(code) if code is not None else None
        return f"{code} ({found.name})" if found is not None else str(code)

    def refusal(self, previous: int, new: int) -> str:
        """Why ``previous`` → ``new`` is refused, naming both statuses and the file line."""
        found = self.statuses.get(previous)
        where = ""
        if found is not None and self.path:
            where = f" ({Path(self.path).name}:{found.line})"
        if found is not None and found.final:
            allowed = f"status {self.name(previous)} is final"
        elif found is not None:
            allowed = f"after {previous} only {', '.join(map(str, sorted(found.next)))}"
        else:
            allowed = f"status {previous} is not in the lifecycle"
        step = f"status {self.name(previous)} → {self.name(new)}"
        return f"{step} is not a transition ({allowed}{where})"

    def verdict(self, previous: int | None, new: int | None) -> str:
        """One line for ``routes explain``: allowed or refused, and why."""
        if previous is None:
            return f"first status {self.name(new)} of the dossier: forwarded"
        if self.allows(previous, new):
            return f"{self.name(previous)} → {self.name(new)} allowed"
        return self.refusal(previous, new)

    @classmethod
    def load(cls, path: Path) -> Lifecycle:
        """Read ``path``; raises :class:`LifecycleError` with every problem when broken."""
        statuses, problems = _read(path)
        if statuses is None or any(p.severity == "error" for p in problems):
            raise LifecycleError(problems)
        return cls(statuses, str(path))


def check_lifecycle(path: Path) -> list[Problem]:
    """Every problem of the lifecycle file at ``path`` (``dvcbus routes check``)."""
    return _read(path)[1]


def _read(path: Path) -> tuple[dict[int, Status] | None, list[Problem]]:
    name = str(path)
    problems: list[Problem] = []

    def problem(line: int, column: int, why: str, severity: str = "error") -> None:
        problems.append(Problem(name, line, column, why, severity))

    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except OSError as exc:
        problem(0, 0, f"cannot read the file: {exc.strerror}")
        return None, problems
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem(mark.line + 1 if mark else 1, mark.column + 1 if mark else 1, "not valid YAML")
        return None, problems
    if not isinstance(root, yaml.MappingNode):
        problem(1, 1, "expected `version: 1` and `statuses:`")
        return None, problems
    top = {}
    for key, value in root.value:
        if key.value not in _TOP:
            problem(*_at(key), f"unknown key {key.value!r}; expected version and statuses")
        top[key.value] = (key, value)
    version = top.get("version")
    if version is None or getattr(version[1], "value", None) != "1":
        problem(*(_at(version[1]) if version else (1, 1)), "`version: 1` is required")
    listed = top.get("statuses")
    if listed is None or not isinstance(listed[1], yaml.MappingNode):
        problem(*(_at(listed[0]) if listed else (1, 1)), "`statuses:` must map codes to entries")
        return None, problems
    statuses: dict[int, Status] = {}
    exits: dict[int, list[tuple[int, tuple[int, int]]]] = {}
    for key, node in listed[1].value:
        where = _at(key)
        code = _code(key.value)
        if code is None or code not in CONTRACT_CODES:
            problem(*where, f"status {key.value!r} is not a status code of the contract (1-10)")
            continue
        if code in statuses:
            problem(*where, f"status {code} is listed twice (first at line {statuses[code].line})")
            continue
        fields = _fields(node, code, problem)
        if fields is None:
            continue
        final = fields.get("final") is True
        nexts: list[tuple[int, tuple[int, int]]] = []
        for item in fields.get("next") or []:
            value, at = item
            target = _code(value)
            if target is None or target not in CONTRACT_CODES:
                problem(*at, f"status {code}: next {value!r} is not a status code (1-10)")
            elif target == code:
                problem(*at, f"status {code}: a repeat is always allowed; drop {code}", "warning")
            else:
                nexts.append((target, at))
        if final and nexts:
            problem(*where, f"status {code} is final but lists next statuses: drop one or other")
        if not final and not fields.get("next"):
            problem(*where, f"status {code} has no next status: say `final: true` if it ends here")
        exits[code] = nexts
        name_ = fields.get("name")
        statuses[code] = Status(
            code, name_ if isinstance(name_, str) else str(code),
            frozenset(t for t, _ in nexts), final, where[0],
        )  # fmt: skip
    for code, nexts in exits.items():
        for target, at in nexts:
            if target not in statuses:
                problem(*at, f"status {code}: next {target} is not listed under statuses")
    missing = sorted(CONTRACT_CODES - set(statuses))
    if missing:
        problem(
            *_at(listed[0]),
            f"status code(s) {', '.join(map(str, missing))} of the contract are not listed: "
            "a status update with one could not be judged",
        )
    return statuses, problems


def _at(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _code(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) <= 3 else None


def _fields(node: yaml.Node, code: int, problem: Any) -> dict[str, Any] | None:
    """A status entry's name, next (values with positions) and final flag."""
    if not isinstance(node, yaml.MappingNode):
        problem(*_at(node), f"status {code}: expected {{name, next}} or {{name, final: true}}")
        return None
    out: dict[str, Any] = {}
    for key, value in node.value:
        if key.value not in _FIELDS:
            problem(*_at(key), f"status {code}: unknown key {key.value!r} (name, next, final)")
        elif key.value == "next":
            items = value.value if isinstance(value, yaml.SequenceNode) else [value]
            out["next"] = [(getattr(i, "value", None), _at(i)) for i in items]
        elif key.value == "final":
            if value.value not in ("true", "false"):
                problem(*_at(value), f"status {code}: final must be true or false")
            out["final"] = value.value == "true"
        else:
            out["name"] = value.value if isinstance(value, yaml.ScalarNode) else None
    return out
