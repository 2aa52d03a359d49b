"""The store: idempotency, status ordering, dead letters, target states (see ``base``)."""

from __future__ import annotations

from pathlib import Path

from bus.errors import DvcBusError
from bus.store.base import (
    DEAD_LETTERED,
    DELIVERED,
    PARKED,
    PAYMENT_RANKS,
    PURGED,
    REPLAYED,
    SUPERSEDED,
    AuditGap,
    DeadFilter,
    DeadLetter,
    DeadLetterState,
    FinalOutcome,
    IdempotencyKey,
    KeyState,
    Outcome,
    PaymentState,
    PendingPayment,
    StatusPosition,
    Store,
    Submission,
    TargetState,
)

__all__ = [
    "DEAD_LETTERED",
    "DELIVERED",
    "PARKED",
    "PAYMENT_RANKS",
    "PURGED",
    "REPLAYED",
    "SUPERSEDED",
    "AuditGap",
    "DeadFilter",
    "DeadLetter",
    "DeadLetterState",
    "FinalOutcome",
    "IdempotencyKey",
    "KeyState",
    "Outcome",
    "PaymentState",
    "PendingPayment",
    "StatusPosition",
    "Store",
    "StoreError",
    "Submission",
    "TargetState",
    "open_store",
]


class StoreError(DvcBusError):
    """The store URL is not one we can open."""


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open ``sqlite:///path/to/file.db`` (relative or absolute) or ``postgresql://…``."""
    if url.startswith("sqlite:///"):
        from bus.store.sqlite import SqliteStore

        store: Store = SqliteStore(Path(url.removeprefix("sqlite:///")))
    elif url.startswith(("postgresql://", "postgres://")):
        from bus.store.postgres import PostgresStore

        store = PostgresStore(url)
    else:
        raise StoreError(f"unsupported store URL {url!r}: use sqlite:///FILE or postgresql://…")
    if migrate:
        store.migrate()
    return store
