"""Cut the admin-unit fixture: every source row the derivation reads for a few old districts.

Run by hand; its output (the two CSVs beside it) is checked in::

    python tests/unit/admin_units_fixtures/cut.py 024,124,309

Source: ``$DVCBUS_ADMIN_UNITS_SRC``, else ``<repo>/../shared/data/admin-units``. Taken: the
pre-reform list's rows of those districts; the conversion rows citing their communes (or
naming the district), plus every row of each new commune those rows lead to (so its name is
picked from the same spellings); and the pre-reform rows of every old commune those cite.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def main(districts: set[str]) -> None:
    env = os.environ.get("DVCBUS_ADMIN_UNITS_SRC")
    source = Path(env) if env else REPO.parent / "shared" / "data" / "admin-units"
    with (source / "communes-before-2025-07-01.csv").open(encoding="utf-8-sig", newline="") as f:
        before = list(csv.reader(f))
    with (source / "conversion-2025-07-01.csv").open(encoding="utf-8-sig", newline="") as f:
        conversion = list(csv.reader(f))
    rows = [r for r in conversion[2:] if len(r) > 2 and r[2].strip()]
    communes = {r[5].strip() for r in before[1:] if r[3].strip() in districts and r[5].strip()}
    picked = [
        r for r in rows if r[4].strip() in communes or any(f"({d})" in r[6] for d in districts)
    ]
    new = {r[2].strip() for r in picked}
    picked = [r for r in rows if r in picked or r[2].strip() in new]
    cited = {r[4].strip() for r in picked if r[4].strip()}
    listed = [r for r in before[1:] if r[3].strip() in districts or r[5].strip() in cited]
    with (HERE / "conversion-2025-07-01.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([*conversion[:2], *picked])
    with (HERE / "communes-before-2025-07-01.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([before[0], *listed])


if __name__ == "__main__":
    main(set(sys.argv[1].split(",")))
