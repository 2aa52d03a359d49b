"""A tiny stand-in for contract.admin_units.AdminUnits (same API), for table and loader tests.

Current provinces 01, 08, 79; old province 02 became 08. Current communes 00097 and 00004
(in 01) and 26740 (in 79); old commune 00001 became 00097; old commune 00007 was split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FakeTranslation:
    province: str | None
    commune: str | None
    notes: tuple[str, ...] = ()
    ambiguous: str | None = None
    unknown: tuple[str, ...] = ()
    unsure: tuple[str, ...] = ()

    @property
    def translated(self) -> bool:
        return bool(self.notes)


class FakeUnits:
    PROVINCES: ClassVar[dict[str, str]] = {
        "01": "Thành phố Hà Nội",
        "08": "Tỉnh Tuyên Quang",
        "79": "Thành phố Hồ Chí Minh",
    }
    OLD_PROVINCES: ClassVar[dict[str, str]] = {"02": "08"}
    COMMUNES: ClassVar[dict[str, str]] = {"00097": "01", "00004": "01", "26740": "79"}
    OLD_COMMUNES: ClassVar[dict[str, str]] = {"00001": "00097"}
    SPLIT: ClassVar[dict[str, str]] = {
        "00007": "old commune 00007 (Phường Cống Vị) was split across 00008, 00025"
    }

    def __init__(self) -> None:
        self.calls = 0

    def translate(
        self, province: str | None, commune: str | None, as_of: str | None = None
    ) -> FakeTranslation:
        self.calls += 1
        notes: list[str] = []
        unknown: list[str] = []
        if commune in self.SPLIT:
            unsure = ("commune",) if province else ("commune", "province")
            return FakeTranslation(province, commune, ambiguous=self.SPLIT[commune], unsure=unsure)
        if commune in self.OLD_COMMUNES:
            new = self.OLD_COMMUNES[commune]
            notes.append(f"commune {commune} → {new}")
            commune = new
        elif commune is not None and commune not in self.COMMUNES:
            unknown.append(f"commune {commune}")
        if province in self.OLD_PROVINCES:
            new = self.OLD_PROVINCES[province]
            notes.append(f"province {province} → {new} ({self.PROVINCES[new]})")
            province = new
        elif province is not None and province not in self.PROVINCES:
            unknown.append(f"province {province}")
        if province is None and commune in self.COMMUNES:
            province = self.COMMUNES[commune]
        return FakeTranslation(province, commune, tuple(notes), None, tuple(unknown))

    def is_current_province(self, code: str) -> bool:
        return code in self.PROVINCES

    def is_current_commune(self, code: str) -> bool:
        return code in self.COMMUNES

    def successor_province(self, old_code: str) -> str | None:
        if old_code in self.PROVINCES:
            return old_code
        return self.OLD_PROVINCES.get(old_code)

    def current_provinces(self) -> dict[str, str]:
        return dict(self.PROVINCES)

    def describe_province(self, code: str) -> str:
        return f"{code} ({self.PROVINCES.get(code, 'unknown province')})"

    def describe_commune(self, code: str) -> str:
        return f"{code} (commune in {self.COMMUNES.get(code, '?')})"
