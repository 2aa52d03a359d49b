#!/usr/bin/env python3
"""Derive ``bus/contract/data/admin_units.json`` from the official 1 July 2025 conversion table.

The bus must translate pre-reform province/commune codes without guessing, so this script
turns the two messy source CSVs into a small, deterministic lookup table and reports every
data anomaly it had to work around. Usage::

    python scripts/derive_admin_units.py [--source DIR] [--out PATH] [--check]

``--source`` defaults to ``$DVCBUS_ADMIN_UNITS_SRC``, else ``<repo>/../shared/data/admin-units``.
``--check`` writes nothing and exits 1 when the shipped table differs from a fresh derivation.

Derivation rules (see docs/admin-units.md):

* current provinces and communes come from the "new" columns of the conversion table;
* an old commune's province is taken from the pre-reform list (by commune code, else by
  district code, else from the table's "Tỉnh cũ" label): the table's labels contain typos;
* an old commune's candidates are every new commune the table sends it to;
* a table row whose old-commune name disagrees with the code it cites, and matches another
  commune of the same old district, is "suspect": its target is added to both communes and
  both are marked so that the bus never translates them on the strength of that row;
* a single target reached only by "partial" notes is marked, since the rest went somewhere
  the table does not say.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bus" / "contract" / "data" / "admin_units.json"
CONVERSION = "conversion-2025-07-01.csv"
COMMUNES_BEFORE = "communes-before-2025-07-01.csv"
FORMAT = 1

_LABEL = re.compile(r"^(.*?)\s*\((\d+)\)\s*$")
_TONES = frozenset("\u0300\u0301\u0303\u0309\u0323")  # grave, acute, tilde, hook, dot below


def default_source() -> Path:
    """Where the source CSVs live unless told otherwise (env var, then the shared checkout)."""
    env = os.environ.get("DVCBUS_ADMIN_UNITS_SRC")
    return Path(env) if env else REPO.parent / "shared" / "data" / "admin-units"


def clean(text: str) -> str:
    """Collapse the stray spaces and in-cell line breaks the table is full of."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def name_key(text: str) -> str:
    """Compare names ignoring case and tone marks ("Hòa" = "Hoà", "Thụy" = "Thuỵ")."""
    decomposed = unicodedata.normalize("NFD", clean(text).casefold())
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONES))


def parse_label(text: str) -> tuple[str, str] | None:
    """Split "Tỉnh Hà Giang (02)" into ("Tỉnh Hà Giang", "02")."""
    m = _LABEL.match(clean(text))
    return (m.group(1), m.group(2)) if m else None


def partial_note(note: str) -> bool:
    """True for the "Nhập một phần ..." family (including its typo variants)."""
    return "một phần" in clean(note).casefold().replace("nhâp", "nhập")


def whole_population(note: str) -> bool:
    """True for "Nhập một phần diện tích, toàn bộ dân số": the whole population went there."""
    return "toàn bộ dân số" in clean(note).casefold()


@dataclass(slots=True)
class Row:
    """One data row of the conversion table, cleaned."""

    line: int
    new_province: str
    new_name: str
    new_code: str
    old_name: str
    old_code: str
    note: str
    district: str
    old_province_label: str


@dataclass(slots=True)
class Report:
    """What the derivation found: counts and the anomalies it worked around."""

    counts: dict[str, int] = field(default_factory=dict)
    anomalies: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Human-readable report for the terminal."""
        width = max(len(k) for k in self.counts)
        lines = ["admin units derivation report", ""]
        lines += [f"  {k.ljust(width)}  {v:>6}" for k, v in self.counts.items()]
        lines += ["", f"data anomalies ({len(self.anomalies)}):"]
        lines += [f"  - {a}" for a in self.anomalies]
        return "\n".join(lines)


def sha256(path: Path) -> str:
    """Fingerprint a source file so the shipped table says exactly what it came from."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_conversion(path: Path, report: Report) -> list[Row]:
    """Read the conversion table, skipping the two header rows and the section rows."""
    rows: list[Row] = []
    sections: list[tuple[str, int]] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        last = 0
        for index, cells in enumerate(reader):
            start, last = last + 1, reader.line_num
            if index < 2:
                continue
            cells = [*cells, *[""] * (8 - len(cells))]
            if not cells[2].strip():
                sections.append((clean(cells[0]), start))
                continue
            rows.append(
                Row(
                    line=start,
                    new_province=clean(cells[0]),
                    new_name=clean(cells[1]),
                    new_code=cells[2].strip(),
                    old_name=clean(cells[3]),
                    old_code=cells[4].strip(),
                    note=clean(cells[5]),
                    district=clean(cells[6]),
                    old_province_label=clean(cells[7]),
                )
            )
    odd = [f"{text!r} (line {line})" for text, line in sections if parse_label(text)]
    report.anomalies.append(
        f"{len(sections)} section rows without a new commune skipped (province banners); "
        f"full labels instead of a banner: {', '.join(odd) or 'none'}"
    )
    return rows


def read_before(
    path: Path,
) -> tuple[dict[str, tuple[str, str, str]], dict[str, tuple[str, str]], dict[str, str]]:
    """Read the pre-reform list: communes (name, district, province), districts, provinces."""
    communes: dict[str, tuple[str, str, str]] = {}
    districts: dict[str, tuple[str, str]] = {}
    provinces: dict[str, str] = {}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for cells in reader:
            pname, pcode, dname, dcode, cname, ccode = (c.strip() for c in cells[:6])
            provinces[pcode] = clean(pname)
            districts[dcode] = (clean(dname), pcode)
            if ccode:
                communes[ccode] = (clean(cname), dcode, pcode)
    return communes, districts, provinces


def _pick(names: Counter[str]) -> str:
    """Most frequent spelling, ties broken alphabetically: deterministic."""
    return sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def build(source: Path) -> tuple[dict[str, Any], Report]:
    """Derive the table (a JSON-ready dict) and the report from the two source CSVs."""
    report = Report()
    conv_path, before_path = source / CONVERSION, source / COMMUNES_BEFORE
    rows = read_conversion(conv_path, report)
    old_communes, old_districts, old_provinces = read_before(before_path)
    anomalies = report.anomalies

    # current units --------------------------------------------------------------------------
    prov_names: dict[str, Counter[str]] = defaultdict(Counter)
    comm_names: dict[str, Counter[str]] = defaultdict(Counter)
    comm_prov: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        label = parse_label(r.new_province)
        if label is None:
            raise SystemExit(f"line {r.line}: cannot read new province {r.new_province!r}")
        prov_names[label[1]][label[0]] += 1
        comm_names[r.new_code][r.new_name] += 1
        comm_prov[r.new_code].add(label[1])
    provinces = {code: _pick(names) for code, names in prov_names.items()}
    communes: dict[str, list[str]] = {}
    for code, names in comm_names.items():
        if len(comm_prov[code]) != 1:
            raise SystemExit(f"new commune {code} listed under provinces {sorted(comm_prov[code])}")
        if len(names) > 1:
            anomalies.append(
                f"new commune {code} spelled {len(names)} ways ({', '.join(sorted(names))}); "
                f"kept {_pick(names)!r}"
            )
        communes[code] = [_pick(names), next(iter(comm_prov[code]))]

    # old province of each row ---------------------------------------------------------------
    by_name = {name_key(n): c for c, n in old_provinces.items()}
    label_fixes: list[str] = []

    def old_province_of(r: Row) -> str:
        label = parse_label(r.old_province_label)
        if r.old_code in old_communes:
            actual = old_communes[r.old_code][2]
        else:
            district = parse_label(r.district)
            if district and district[1] in old_districts:
                actual = old_districts[district[1]][1]
            elif label and name_key(label[0]) in by_name:
                actual = by_name[name_key(label[0])]
            else:
                raise SystemExit(f"line {r.line}: cannot tell the old province")
        if (
            label is None
            or label[1] != actual
            or name_key(label[0]) != name_key(old_provinces[actual])
        ):
            label_fixes.append(
                f"line {r.line}: {r.old_province_label!r} for {r.old_code or r.district} "
                f"→ {actual} ({old_provinces[actual]})"
            )
        return actual

    # old communes ---------------------------------------------------------------------------
    by_district_name: dict[tuple[str, str], list[str]] = defaultdict(list)
    for code, (name, dcode, _p) in old_communes.items():
        by_district_name[(dcode, name_key(name))].append(code)

    targets: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    table_only: dict[str, tuple[Counter[str], str, str]] = {}
    issues: dict[str, list[str]] = defaultdict(list)
    successors: dict[str, set[str]] = defaultdict(set)
    name_variants: list[str] = []
    no_old_code: list[str] = []
    for r in rows:
        old_prov = old_province_of(r)
        successors[old_prov].add(communes[r.new_code][1])
        if not r.old_code:
            no_old_code.append(f"line {r.line} {r.old_name or r.district!r} → {r.new_code}")
            continue
        targets[r.old_code][r.new_code].append(r.note)
        if r.old_code not in old_communes:
            district = parse_label(r.district)
            dcode = district[1] if district else ""
            names, _d, _p = table_only.setdefault(r.old_code, (Counter(), dcode, old_prov))
            names[r.old_name] += 1
            if district and dcode not in old_districts:
                old_districts[dcode] = (district[0], old_prov)
            continue
        listed, dcode, _p = old_communes[r.old_code]
        if name_key(r.old_name) == name_key(listed):
            continue
        others = [c for c in by_district_name[(dcode, name_key(r.old_name))] if c != r.old_code]
        if not others:
            name_variants.append(f"{r.old_code} {r.old_name!r}/{listed!r}")
            continue
        detail = (
            f"conversion-table line {r.line} cites {r.old_code} ({listed}) under the name "
            f"{r.old_name!r}, which is {', '.join(others)}; it sends it to "
            f"{r.new_code} {communes[r.new_code][0]}"
        )
        anomalies.append(f"suspect row: {detail}; both codes are left untranslated")
        for code in (r.old_code, *others):
            issues[code].append(detail)
            if code != r.old_code:
                targets[code][r.new_code].append(r.note)

    if label_fixes:
        anomalies.append(
            f"{len(label_fixes)} 'Tỉnh cũ' labels disagree with the pre-reform list; the list "
            f"(by commune code, else district code) wins: " + "; ".join(label_fixes)
        )
    anomalies.append(
        f"{len(no_old_code)} rows have no old commune code (island districts without communes, "
        f"an unnumbered coastal area); used only for province succession: " + "; ".join(no_old_code)
    )
    anomalies.append(
        f"{len(table_only)} old commune codes in the table are missing from the pre-reform list "
        f"(units created after that list was drawn up); name and district taken from the table: "
        + ", ".join(f"{c} {_pick(n)}" for c, (n, _d, _p) in sorted(table_only.items()))
    )
    anomalies.append(
        f"{len(name_variants)} table rows spell the old commune differently from the pre-reform "
        f"list beyond tone-mark placement (renames, typos); the code is trusted and the list's "
        f"name kept, e.g. " + ", ".join(name_variants[:5])
    )

    # assemble old communes ------------------------------------------------------------------
    all_old = dict(old_communes)
    for code, (names, dcode, pcode) in table_only.items():
        all_old[code] = (_pick(names), dcode, pcode)
    old_out: dict[str, list[Any]] = {}
    absent: list[str] = []
    partial_only: list[str] = []
    for code in sorted(all_old):
        name, dcode, _p = all_old[code]
        to = targets.get(code, {})
        entry: list[Any] = [name, dcode, sorted(to)]
        extra: dict[str, str] = {}
        if not to:
            absent.append(f"{code} {name}")
        if code in issues:
            extra["issue"] = "; ".join(issues[code])
        if len(to) == 1 and all(partial_note(n) for notes in to.values() for n in notes):
            partial_only.append(code)
            extra.setdefault(
                "issue",
                "the table says only part of it merged into that commune "
                "and lists no successor for the rest",
            )
        population = sorted(t for t, notes in to.items() if any(whole_population(n) for n in notes))
        if len(to) > 1 and len(population) == 1:
            extra["population"] = population[0]
        if extra:
            entry.append(extra)
        old_out[code] = entry
    absent_retired = [a for a in absent if a.split()[0] not in communes]
    suspect_only = sorted(c for c in issues if c not in {r.old_code for r in rows})
    anomalies.append(
        f"{len(absent)} communes of the pre-reform list are cited by no table row (most were "
        f"merged in early 2025, after that list was drawn up); never translated: "
        + ", ".join(absent)
        + f"; {len(suspect_only)} more are named only by a suspect row: {', '.join(suspect_only)}"
    )
    anomalies.append(
        f"{len(partial_only)} old communes have a single target reached only through 'partial' "
        f"notes; never translated: {', '.join(partial_only) or 'none'}"
    )

    old_prov_out: dict[str, list[Any]] = {}
    for code in sorted(old_provinces):
        old_prov_out[code] = [old_provinces[code], sorted(successors.get(code, ()))]
    split_provinces = [c for c, (_n, s) in old_prov_out.items() if len(s) != 1]
    anomalies.append(
        "old provinces with other than one successor after the label fixes: "
        + (", ".join(split_provinces) or "none")
    )

    doc = {
        "about": "Vietnam administrative units, 1 July 2025 reform. Generated by "
        "scripts/derive_admin_units.py; do not edit. See docs/admin-units.md.",
        "format": FORMAT,
        "layout": {
            "provinces": "code: name (current, 34)",
            "communes": "code: [name, province] (current)",
            "old_provinces": "code: [name, [current successor provinces]] (before 1 July 2025)",
            "old_districts": "code: [name, old province] (abolished 1 July 2025)",
            "old_communes": "code: [name, old district, [candidate current communes], "
            "{issue: why never translated, population: candidate that took the whole "
            "population}?] (before 1 July 2025)",
        },
        "sources": {
            CONVERSION: sha256(conv_path),
            COMMUNES_BEFORE: sha256(before_path),
        },
        "anomalies": anomalies,
        "provinces": dict(sorted(provinces.items())),
        "communes": dict(sorted(communes.items())),
        "old_provinces": old_prov_out,
        "old_districts": {k: list(v) for k, v in sorted(old_districts.items())},
        "old_communes": old_out,
    }

    retired = {c: e for c, e in old_out.items() if c not in communes}
    split_current = sum(1 for c, e in old_out.items() if c in communes and len(e[2]) > 1)
    anomalies.append(
        f"{split_current} split old communes kept their code as a current commune; by the "
        f"code-is-never-reused rule such a code is read as the current unit, not translated"
    )

    def clean_single(e: list[Any]) -> bool:
        return len(e[2]) == 1 and len(e) == 3

    report.counts = {
        "current provinces": len(provinces),
        "current communes": len(communes),
        "old provinces": len(old_provinces),
        "old provinces retired (code not reused)": sum(
            1 for c in old_provinces if c not in provinces
        ),
        "old districts": len(old_districts),
        "old communes (pre-reform list)": len(old_communes),
        "old communes only in the table": len(table_only),
        "old communes, all": len(old_out),
        "table: old → exactly one new commune": sum(1 for e in old_out.values() if len(e[2]) == 1),
        "table: old → several (split)": sum(1 for e in old_out.values() if len(e[2]) > 1),
        "table: old absent": len(absent),
        "table: old named only by a suspect row": len(suspect_only),
        "old codes still current (no translation)": len(old_out) - len(retired),
        "retired codes translated to one commune": sum(
            1 for e in retired.values() if clean_single(e)
        ),
        "retired codes ambiguous: split": sum(1 for e in retired.values() if len(e[2]) > 1),
        "retired codes ambiguous: suspect/partial": sum(
            1 for e in retired.values() if len(e[2]) == 1 and len(e) == 4
        ),
        "retired codes ambiguous: absent": len(absent_retired),
        "retired codes ambiguous, total": sum(1 for e in retired.values() if not clean_single(e)),
        "table rows": len(rows),
    }
    return doc, report


def render(doc: dict[str, Any]) -> str:
    """Serialise deterministically: sorted keys, one table entry per line, UTF-8 text."""

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    parts = []
    for key in sorted(doc):
        value = doc[key]
        if isinstance(value, dict) and key not in ("layout", "sources"):
            inner = ",\n".join(f"  {dump(k)}:{dump(v)}" for k, v in sorted(value.items()))
            parts.append(f"{dump(key)}:{{\n{inner}\n}}")
        elif isinstance(value, list):
            inner = ",\n".join(f"  {dump(v)}" for v in value)
            parts.append(f"{dump(key)}:[\n{inner}\n]")
        else:
            parts.append(f"{dump(key)}:{dump(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def derive(source: Path, out: Path) -> Report:
    """Derive the table from ``source`` and write it to ``out``; return the report."""
    doc, report = build(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(doc), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=None, help="directory with the CSVs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = parser.parse_args(argv)
    source = args.source or default_source()
    for name in (CONVERSION, COMMUNES_BEFORE):
        if not (source / name).is_file():
            parser.error(f"{source / name} not found (use --source or DVCBUS_ADMIN_UNITS_SRC)")
    if args.check:
        doc, report = build(source)
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if render(doc) != current:
            print(f"{args.out} is out of date; rerun without --check", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    report = derive(source, args.out)
    print(report.text())
    print(f"\nwrote {args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
