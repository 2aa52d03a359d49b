"""Real stores for tests: a SQLite file, and a throwaway schema on the local PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

PG_URL = os.environ.get("DVCBUS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped afterwards. Fails without PostgreSQL."""
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def sqlite_url(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'bus.db'}"


STORES = ("sqlite", "postgres")  # every proof that depends on the store runs on both


@contextmanager
def opened_store(kind: str, tmp: Path) -> Iterator[Any]:
    """An open store of ``kind`` ("sqlite" or "postgres"), closed (and its schema dropped) after."""
    from bus.store import open_store

    if kind == "sqlite":
        store = open_store(sqlite_url(tmp))
        try:
            yield store
        finally:
            store.close()
        return
    with postgres_schema_url() as url:
        store = open_store(url)
        try:
            yield store
        finally:
            store.close()
