"""The default store: one SQLite file in WAL mode (readers never wait for the batched writer)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from bus.store.sql import SqlStore


class SqliteStore(SqlStore):
    """SQLite with WAL and ``synchronous=NORMAL``: a commit survives a process crash.

    (An operating-system crash may lose the last commits; PostgreSQL is the choice when that
    matters, or when several hosts share one store.)
    """

    dialect = "sqlite"

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(**kwargs)

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn
