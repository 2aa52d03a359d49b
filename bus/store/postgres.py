"""The store on PostgreSQL (by URL): for several hosts sharing one store, and full durability."""

from __future__ import annotations

from typing import Any

import psycopg

from bus.store.sql import SqlStore


class PostgresStore(SqlStore):
    """PostgreSQL through psycopg 3; both parts (deliveries, audit) in one database."""

    dialect = "postgres"
    placeholder = "%s"

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        super().__init__(**kwargs)

    def connect(self, part: str) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url)  # both parts in the one database
