"""The agency registry: which province (and which system) a receiving agency belongs to.

Since the 2025 reform a procedure within a province no longer depends on the applicant's
administrative unit: a dossier goes to the system of the agency that receives it. Routes say
so with ``agency_province`` (bus/routes/table.py), read here from the agency's electronic
identifier (Decision 20/2020/QĐ-TTg, ``NNN.NN.NN.GNN``/``HNN``). ``agencies.yaml`` lists the
provincial people's committees (``000.00.00.HNN``) with their current province; a department
or commune office (``000.00.53.H26``) belongs to the committee of its last group (``H26``)
unless it is listed itself. The committees of provinces merged in 2025 are listed with the
province they joined, so their dossiers follow the new province.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bus.errors import ConfigError
from bus.routes.problems import Problem

AGENCY_ID = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[GH]\d{2}$")
PROVINCE = re.compile(r"^\d{2}$")
_FIELDS = frozenset({"name", "province", "system", "note"})


class AgencyRegistryError(ConfigError):
    """agencies.yaml cannot be used; says where (file and line) and what."""

    def __init__(self, path: Path, line: int, why: str) -> None:
        super().__init__(f"{path}:{line}: {why}")
        self.path, self.line, self.why = path, line, why


@dataclass(frozen=True, slots=True)
class Agency:
    """One registered agency."""

    id: str
    name: str
    province: str  # current province code (after the 2025 reform)
    system: str | None  # the target that serves it, for operators (routes decide)
    line: int


class AgencyRegistry:
    """Agency identifier → :class:`Agency`, with the province-committee fallback."""

    def __init__(self, agencies: dict[str, Agency], path: str = "") -> None:
        self.agencies = agencies
        self.path = path
        self.province_of = lru_cache(maxsize=8192)(self._province_of)

    @classmethod
    def empty(cls) -> AgencyRegistry:
        return cls({})

    def find(self, agency_id: str | None) -> Agency | None:
        """The agency itself if listed, else its province's committee, else None."""
        if not agency_id:
            return None
        found = self.agencies.get(agency_id)
        if found is None and AGENCY_ID.match(agency_id):
            found = self.agencies.get("000.00.00." + agency_id[-3:])
        return found

    def _province_of(self, agency_id: str | None) -> str | None:
        found = self.find(agency_id)
        return found.province if found is not None else None

    def describe(self, agency_id: str) -> str:
        """``000.00.53.H26 → province 01 (UBND Thành phố Hà Nội, agencies.yaml:12)``."""
        found = self.find(agency_id)
        if found is None:
            where = f" ({Path(self.path).name})" if self.path else ""
            return f"{agency_id} is not in the agency registry{where}"
        via = "" if found.id == agency_id else f" via {found.id}"
        place = f", {Path(self.path).name}:{found.line}" if self.path else ""
        return f"{agency_id} → province {found.province} ({found.name}{via}{place})"

    @classmethod
    def load(cls, path: Path, current_provinces: set[str] | None = None) -> AgencyRegistry:
        """Read ``path``; a missing file is an empty registry (no route can use it then)."""
        if not path.exists():
            return cls({}, str(path))
        try:
            root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            raise AgencyRegistryError(path, line, f"not valid YAML: {exc}") from None
        return cls(_read(root, path, current_provinces), str(path))


def _read(root: Any, path: Path, provinces: set[str] | None) -> dict[str, Agency]:
    def fail(line: int, why: str) -> AgencyRegistryError:
        return AgencyRegistryError(path, line, why)

    if not isinstance(root, yaml.MappingNode):
        raise fail(1, "expected `version: 1` and `agencies:`")
    top = {k.value: v for k, v in root.value}
    if set(top) - {"version", "agencies"}:
        raise fail(1, f"unknown key(s) {sorted(set(top) - {'version', 'agencies'})}")
    if getattr(top.get("version"), "value", None) != "1":
        raise fail(1, "`version: 1` is required")
    listed = top.get("agencies")
    if not isinstance(listed, yaml.MappingNode):
        raise fail(1, "`agencies:` must map agency identifiers to their entries")
    out: dict[str, Agency] = {}
    for key, node in listed.value:
        line = key.start_mark.line + 1
        agency_id = key.value
        if not AGENCY_ID.match(agency_id):
            raise fail(line, f"{agency_id!r} is not an agency identifier (NNN.NN.NN.HNN)")
        if agency_id in out:
            raise fail(line, f"{agency_id} is listed twice (first at line {out[agency_id].line})")
        if not isinstance(node, yaml.MappingNode):
            raise fail(line, f"{agency_id}: expected {{name, province, system}}")
        fields = {k.value: v.value for k, v in node.value if isinstance(v, yaml.ScalarNode)}
        unknown = {k.value for k, _ in node.value} - _FIELDS
        if unknown:
            raise fail(line, f"{agency_id}: unknown key(s) {sorted(unknown)}")
        province = fields.get("province", "")
        if not PROVINCE.match(province):
            raise fail(line, f"{agency_id}: province must be a 2-digit code, got {province!r}")
        if provinces is not None and province not in provinces:
            raise fail(line, f"{agency_id}: province {province} is not a current province code")
        if not fields.get("name"):
            raise fail(line, f"{agency_id}: a name is required")
        out[agency_id] = Agency(
            agency_id, fields["name"], province, fields.get("system") or None, line
        )
    return out


def check_agencies(
    path: Path, current_provinces: set[str], targets: set[str] | None, used: bool
) -> list[Problem]:
    """What ``dvcbus routes check`` adds for the agency registry at ``path``: its errors, a
    ``system`` naming no target (warning), and routes reading ``agency_province`` with no
    registry to read it from (error: every such route would be unroutable)."""
    if not path.exists():
        if used:
            why = "routes match agency_province, but there is no agency registry"
            return [Problem(str(path), 0, 0, why)]
        return []
    try:
        registry = AgencyRegistry.load(path, current_provinces)
    except AgencyRegistryError as exc:
        return [Problem(str(path), exc.line, 1, exc.why)]
    problems = []
    for agency in registry.agencies.values():
        if targets is not None and agency.system is not None and agency.system not in targets:
            why = f"{agency.id}: system {agency.system!r} is not a target of routes.yaml"
            problems.append(Problem(str(path), agency.line, 3, why, severity="warning"))
    return problems
