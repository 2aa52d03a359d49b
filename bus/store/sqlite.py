"""The default store: SQLite files in WAL mode (readers never wait for the batched writers)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from bus.store.sql import SqlStore


class SqliteStore(SqlStore):
    """SQLite with WAL and ``synchronous=NORMAL``: a commit survives a process crash.

    The audit trail lives in a second file beside the first (``bus.db`` and
    ``bus-audit.db``), so its batches and the delivery records never wait for one lock.
    (An operating-system crash may lose the last commits; PostgreSQL is the choice when
    that matters, or when several hosts share one store.)
    """

    dialect = "sqlite"

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        self.path = Path(path)
        self.audit_path = self.path.with_name(f"{self.path.stem}-audit{self.path.suffix or '.db'}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(**kwargs)

    audit_prefix = "audit."

    def connect_both(self) -> sqlite3.Connection:
        conn = self.connect("main")
        conn.execute("ATTACH DATABASE ? AS audit", (str(self.audit_path),))
        return conn

    def connect(self, part: str) -> sqlite3.Connection:
        path = self.audit_path if part == "audit" else self.path
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        for attempt in range(50):
            # Two processes opening a new file together: switching it to WAL can report
            # "database is locked" at once, without waiting for the busy timeout.
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
