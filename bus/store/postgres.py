"""The store on PostgreSQL (by URL): for several hosts sharing one store, and full durability."""

from __future__ import annotations

from typing import Any

import psycopg

from bus.store.sql import SqlStore


class PostgresStore(SqlStore):
    """PostgreSQL through psycopg 3; the reader runs in autocommit so it sees every commit."""

    dialect = "postgres"
    placeholder = "%s"

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        super().__init__(**kwargs)

    def connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url)
        return conn

    def _end_read(self) -> None:
        self._reader.rollback()  # end the read's implicit transaction: no idle-in-transaction
