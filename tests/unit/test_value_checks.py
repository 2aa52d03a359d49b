"""x-check paths: the hot path's yes/no and the explainer's problems agree, arrays included."""

from __future__ import annotations

from typing import Any

import pytest

from bus.contract.value_checks import ValueCheck, any_failed, failed_checks


def _no_sevens(value: object) -> str | None:
    return "no 7" if isinstance(value, str) and "7" in value else None


CHECKS: tuple[ValueCheck, ...] = (
    (("payload", "owner", "id"), "no_sevens", _no_sevens),
    (("payload", "people", "*", "id"), "no_sevens", _no_sevens),
)


@pytest.mark.parametrize(
    ("payload", "failed"),
    [
        ({"owner": {"id": "123"}, "people": [{"id": "1"}, {"id": "2"}]}, []),
        ({"owner": {"id": "173"}}, [("payload", "owner", "id")]),
        ({"people": [{"id": "1"}, {"id": "7"}]}, [("payload", "people", 1, "id")]),
        (
            {"people": [{"name": "x"}, "not an object", {"id": "77"}]},
            [("payload", "people", 2, "id")],
        ),
        ({"owner": "not an object", "people": {"id": "7"}}, []),  # the schema's business
        ({}, []),
    ],
)
def test_a_check_runs_on_each_value_at_its_path(
    payload: dict[str, Any], failed: list[tuple[Any, ...]]
) -> None:
    doc = {"payload": payload}
    assert [where for where, _, _ in failed_checks(doc, CHECKS)] == failed
    assert any_failed(doc, CHECKS) is bool(failed)
