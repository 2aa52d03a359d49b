"""Whether a personal identification number can be real, beyond its shape (12 or 9 digits).

The 12-digit number (số định danh cá nhân, also the chip identity card's number) is built by
Decree 137/2015/NĐ-CP art. 7: 3 digits for the province where the birth was registered (0 and
one of the 63 province codes before the 1 July 2025 reform, Circular 07/2016/TT-BCA; a number
is kept for life, so the old codes stay valid), 1 digit for sex and century of birth (0/1 for
1900-1999, 2/3 for 2000-2099, 4/5 for the 22nd century …), 2 digits for the year of birth, 6
digits of sequence. The old 9-digit identity card numbers have no such structure; only all
zeros is refused for them.

The seed report's annex (2025) names ids "changed into other data and accepted" among the
failures; these checks refuse what no citizen can hold, cheaply: two set lookups, built once.
They never quote the value: what is wrong is said by position, not by digits.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["PRE_REFORM_PROVINCES", "citizen_id_problem"]

# The 63 province codes before 1 July 2025 (bus/contract/data/admin_units.json's
# old_provinces; a test keeps the two equal). The 34 current codes are a subset.
# fmt: off
PRE_REFORM_PROVINCES = frozenset((
    "01", "02", "04", "06", "08", "10", "11", "12", "14", "15", "17", "19", "20", "22", "24", "25",
    "26", "27", "30", "31", "33", "34", "35", "36", "37", "38", "40", "42", "44", "45", "46", "48",
    "49", "51", "52", "54", "56", "58", "60", "62", "64", "66", "67", "68", "70", "72", "74", "75",
    "77", "79", "80", "82", "83", "84", "86", "87", "89", "91", "92", "93", "94", "95", "96",
))
# fmt: on
_PREFIXES = frozenset("0" + code for code in PRE_REFORM_PROVINCES)


def _births(last_year: int) -> frozenset[str]:
    """Digits 4 to 6 (century-and-sex digit, two-digit year) of every possible birth year."""
    out = set()
    for year in range(1900, last_year + 1):
        century = (year - 1900) // 100
        for sex in (0, 1):
            out.add(f"{century * 2 + sex}{year % 100:02d}")
    return frozenset(out)


# Up to next year: a process started in December still accepts January's newborns.
_BIRTHS = _births(datetime.now(UTC).year + 1)


def citizen_id_problem(value: object) -> str | None:
    """What makes ``value`` impossible as a personal id number, or None.

    Only judges strings of 12 or 9 ASCII digits (the schema's pattern refuses anything else,
    with its own problem).
    """
    if type(value) is not str:
        return None
    if len(value) == 12:
        if value[:3] not in _PREFIXES:
            return "digits 1-3 are 0 and a province code of the 63 before 1 July 2025 (001 … 096)"
        if value[3:6] not in _BIRTHS:
            return "digits 4-6 are a sex-and-century digit and a year of birth, not in the future"
        return None
    if len(value) == 9 and value == "000000000":
        return "not all zeros"
    return None
