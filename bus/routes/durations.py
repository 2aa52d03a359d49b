"""Durations ("10s", "1m", "72h") and rates ("50/s", "600/m") as written in routes.yaml.

A unit is always required: a bare ``10`` could be seconds or milliseconds, and at 3 am nobody
should have to guess which.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)/(s|m)$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: object) -> float:
    """Seconds in a duration such as ``"500ms"``, ``"10s"``, ``"1m"``, ``"72h"`` or ``"7d"``."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"a duration is written with a unit, e.g. 10s, 1m or 72h; got {text!r}")
    found = _DURATION.match(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a duration; write a number and a unit (ms, s, m, h, d)")
    seconds = float(found.group(1)) * _SECONDS[found.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be longer than zero")
    return seconds


def parse_rate(text: object) -> float:
    """Messages per second in a rate such as ``"100/s"`` or ``"600/m"``."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"a rate is written as N/s or N/m, e.g. 100/s; got {text!r}")
    found = _RATE.match(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a rate; write N/s or N/m, e.g. 100/s or 600/m")
    per_second = float(found.group(1)) / (1.0 if found.group(2) == "s" else 60.0)
    if per_second <= 0:
        raise ValueError(f"rate {text!r} must be more than zero")
    return per_second


def format_duration(seconds: float) -> str:
    """The shortest readable form of a duration, for ``routes explain`` and logs."""
    for unit in ("d", "h", "m", "s"):
        size = _SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"
