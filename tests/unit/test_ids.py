"""Message ids sort by creation time and are valid UUIDv7."""

import uuid

from bus.contract.ids import uuid7


def test_uuid7_has_version_7_and_rfc_variant() -> None:
    value = uuid.UUID(uuid7())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_ids_from_later_milliseconds_sort_later() -> None:
    assert uuid7(now_ms=1_000) < uuid7(now_ms=1_001) < uuid7(now_ms=2**40)


def test_ids_are_unique() -> None:
    assert len({uuid7() for _ in range(10_000)}) == 10_000
