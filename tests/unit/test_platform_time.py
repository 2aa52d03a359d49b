"""The platform's ``yyyyMMddHHmmss`` times are read one way by the gateway and the router."""

from __future__ import annotations

import pytest

from bus.contract.platform_time import platform_moment
from bus.ingress.soap_status import vietnam_time


def test_a_platform_time_is_the_vietnam_time_it_writes() -> None:
    moment = platform_moment("20261125093210")
    assert moment is not None
    assert moment.isoformat() == "2026-11-25T09:32:10+07:00"
    assert int(moment.timestamp()) == 1795573930  # 02:32:10 UTC
    assert vietnam_time("20261125093210") == "2026-11-25T09:32:10+07:00"


@pytest.mark.parametrize(
    "text",
    ["", "2026112509321", "202611250932100", "2026-11-25T09", "20261131093210", "20261125243210"],
)
def test_text_that_names_no_moment_is_none(text: str) -> None:
    assert platform_moment(text) is None
    assert vietnam_time(text) is None
