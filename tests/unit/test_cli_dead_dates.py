"""Operator dates are Vietnam time: ``--since 2026-11-25`` is midnight in Hà Nội, and every
listing prints +07:00, whatever zone the server runs in."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click
import pytest

from bus.cli.dead import _since, _when


def test_a_date_without_an_offset_is_vietnam_midnight() -> None:
    assert _since("2026-11-25") == datetime(2026, 11, 24, 17, 0, tzinfo=UTC).timestamp()
    assert _since("2026-11-25T08:30") == datetime(2026, 11, 25, 1, 30, tzinfo=UTC).timestamp()


def test_a_date_with_an_offset_keeps_it() -> None:
    assert _since("2026-11-25T00:00:00+00:00") == datetime(2026, 11, 25, tzinfo=UTC).timestamp()


def test_a_duration_counts_back_from_now() -> None:
    assert abs(_since("2h") - (time.time() - 7200)) < 5
    with pytest.raises(click.BadParameter, match="2026-11-25"):
        _since("last tuesday")


def test_listings_print_vietnam_time_with_its_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        ts = datetime(2026, 11, 24, 17, 5, 9, tzinfo=UTC).timestamp()
        assert _when(ts) == "2026-11-25 00:05:09 +07:00"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
