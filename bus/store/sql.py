"""The store in SQL, shared by SQLite and PostgreSQL (they differ in connecting and DDL types).

Two connections: one for reads on the caller's thread (point lookups by primary key), one
for writes guarded by a lock (batched commits, possibly from a worker thread).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from bus.observability.audit import GENESIS, AuditRecord, chain
from bus.store import migrations
from bus.store.audit_gaps import find_gaps
from bus.store.base import (
    DEAD_LETTERED,
    DELIVERED,
    GATEWAY_BATCHABLE,
    PARKED,
    PURGED,
    AuditGap,
    DeadFilter,
    DeadLetter,
    DeadLetterState,
    IdempotencyKey,
    KeyState,
    Outcome,
    PaymentState,
    PendingPayment,
    StatusPosition,
    Store,
    Submission,
    TargetState,
    now,
)


class _Db:
    """One database as the store uses it: a reader, and a writer guarded by a lock."""

    def __init__(self, store: SqlStore, part: str) -> None:
        self.store = store
        self.reader = store.connect(part)
        self.writer = store.connect(part)
        self.lock = threading.Lock()

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[Any]:
        with self.lock:
            cur = self.writer.cursor()
            try:
                if immediate and self.store.dialect == "sqlite":
                    cur.execute("BEGIN IMMEDIATE")
                yield cur
                self.writer.commit()
            except BaseException:
                self.writer.rollback()
                raise
            finally:
                cur.close()

    def read(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.reader.cursor()
        try:
            cur.execute(self.store.sql(text), params)
            rows = cur.fetchall()
        finally:
            cur.close()
        if self.store.dialect == "postgres":
            self.reader.rollback()  # end the read's implicit transaction: no idle-in-transaction
        return rows

    def close(self) -> None:
        for conn in (self.reader, self.writer):
            conn.close()


class SqlStore(Store):
    """Store on DB-API connections; subclasses provide :meth:`connect` and the dialect.

    Two parts: ``main`` (deliveries, status positions, dead letters, target states) and
    ``audit`` (the hash chain). A dialect may keep them in one database (PostgreSQL) or in
    two files (SQLite, so that the audit trail's large batches never hold the lock that a
    delivery's record waits for).
    """

    placeholder = "?"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._main = _Db(self, "main")
        self._audit = _Db(self, "audit")

    def connect(self, part: str) -> Any:
        raise NotImplementedError

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    @contextmanager
    def transaction(self, *, immediate: bool = False, part: str = "main") -> Iterator[Any]:
        """A write transaction on a part's writer connection.

        ``immediate`` takes SQLite's write lock at the start (for read-then-write, like
        extending the audit chain); PostgreSQL uses row locks instead.
        """
        db = self._audit if part == "audit" else self._main
        with db.transaction(immediate=immediate) as cur:
            yield cur

    def _read(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._main.read(text, params)

    def close(self) -> None:
        self._main.close()
        self._audit.close()

    # --- migrations ----------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply pending migrations of both parts; concurrent starters wait for each other."""
        applied = self._migrate(self._main, "schema_migrations", migrations.MIGRATIONS)
        self._migrate(self._audit, "audit_schema_migrations", migrations.AUDIT_MIGRATIONS)
        return applied

    def _migrate(self, db: _Db, table: str, steps: list[migrations.Migration]) -> list[int]:
        real = migrations.TYPES[self.dialect]["real"]
        applied = []
        with db.transaction(immediate=True) as cur:
            if self.dialect == "postgres":
                cur.execute("SELECT pg_advisory_xact_lock(727201)")  # one migrator at a time
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, "
                f"title TEXT NOT NULL, applied_at {real} NOT NULL)"
            )
            cur.execute(f"SELECT version FROM {table}")
            done = {row[0] for row in cur.fetchall()}
            for version, title, sql in steps:
                if version in done:
                    continue
                for step in migrations.render(self.dialect, sql):
                    if isinstance(step, str):
                        cur.execute(step)
                    else:
                        step(cur, self.sql)
                cur.execute(
                    self.sql(f"INSERT INTO {table} VALUES (?, ?, ?)"), (version, title, now())
                )
                applied.append(version)
        return applied

    # --- delivery path -------------------------------------------------------------------

    def delivered_already(self, message_id: str, target: str) -> bool:
        rows = self._read(
            "SELECT 1 FROM deliveries WHERE message_id = ? AND target = ? AND outcome = ?",
            (message_id, target, DELIVERED),
        )
        return bool(rows)

    def status_position(self, dossier_no: str, target: str) -> StatusPosition | None:
        rows = self._read(
            "SELECT status_at, sequence, status, message_id FROM status_positions "
            "WHERE dossier_no = ? AND target = ?",
            (dossier_no, target),
        )
        if not rows:
            return None
        status_at, sequence, status, message_id = rows[0]
        return StatusPosition(float(status_at), int(sequence), status, message_id)

    def dossier_agency(self, dossier_no: str) -> str | None:
        rows = self._read("SELECT agency FROM dossier_agencies WHERE dossier_no = ?", (dossier_no,))
        return str(rows[0][0]) if rows else None

    def payment_state(self, reference: str, target: str) -> PaymentState | None:
        rows = self._read(
            "SELECT result, message_id FROM payment_states WHERE reference = ? AND target = ?",
            (reference, target),
        )
        return PaymentState(reference, rows[0][0], rows[0][1]) if rows else None

    def pending_payments(self, before: float | None = None) -> list[PendingPayment]:
        rows = self._read(
            "SELECT reference, target, at, message_id, body, result_rank FROM payment_states "
            "WHERE reference IN (SELECT reference FROM payment_states WHERE result_rank = 0) "
            "ORDER BY reference, at"
        )
        found: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            found.setdefault(row[0], []).append(row)
        pending = []
        for reference, rows_of in found.items():
            if any(r[5] > 0 for r in rows_of):
                continue  # a final result reached some target: the platform has answered
            first = rows_of[0]
            if before is not None and first[2] > before:
                continue
            body = next((bytes(r[4]) for r in rows_of if r[4] is not None), None)
            targets = tuple(sorted(r[1] for r in rows_of))
            pending.append(PendingPayment(reference, float(first[2]), first[3], targets, body))
        return sorted(pending, key=lambda p: p.since)

    def write_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        with self.transaction() as cur:
            cur.executemany(
                self.sql(
                    "INSERT INTO deliveries (message_id, target, outcome, at, attempts, reference) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id, target) DO UPDATE SET "
                    "outcome = excluded.outcome, at = excluded.at, attempts = excluded.attempts, "
                    "reference = excluded.reference WHERE deliveries.outcome <> ?"
                ),
                [
                    (o.message_id, o.target, o.outcome, o.at, o.attempts, o.reference, DELIVERED)
                    for o in outcomes
                ],
            )
            advances = [
                (o.dossier_no, o.target, p.status_at, p.sequence, p.status, o.message_id, o.at)
                for o in outcomes
                if o.outcome == DELIVERED and o.dossier_no and (p := o.position) is not None
            ]
            if advances:
                cur.executemany(
                    self.sql(
                        "INSERT INTO status_positions "
                        "(dossier_no, target, status_at, sequence, status, message_id, at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dossier_no, target) DO UPDATE "
                        "SET status_at = excluded.status_at, sequence = excluded.sequence, "
                        "status = excluded.status, message_id = excluded.message_id, "
                        "at = excluded.at "
                        "WHERE excluded.status_at > status_positions.status_at "
                        "OR (excluded.status_at = status_positions.status_at "
                        "AND excluded.sequence > status_positions.sequence)"
                    ),
                    advances,
                )
            received = {
                o.dossier_no: (o.dossier_no, o.receiving_agency, o.at)
                for o in outcomes
                if o.outcome == DELIVERED and o.dossier_no and o.receiving_agency
            }
            if received:
                cur.executemany(
                    self.sql(
                        "INSERT INTO dossier_agencies (dossier_no, agency, at) VALUES (?, ?, ?) "
                        "ON CONFLICT (dossier_no) DO UPDATE SET agency = excluded.agency, "
                        "at = excluded.at"
                    ),
                    list(received.values()),
                )
            payments = [
                (p.reference, o.target, p.result, p.rank, o.message_id, o.at, p.body)
                for o in outcomes
                if o.outcome == DELIVERED and (p := o.payment) is not None
            ]
            if payments:
                cur.executemany(
                    self.sql(
                        "INSERT INTO payment_states "
                        "(reference, target, result, result_rank, message_id, at, body) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (reference, target) DO UPDATE "
                        "SET result = excluded.result, result_rank = excluded.result_rank, "
                        "message_id = excluded.message_id, at = excluded.at, "
                        "body = excluded.body "
                        "WHERE excluded.result_rank > payment_states.result_rank"
                    ),
                    payments,
                )

    def outcomes(self, message_ids: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
        rows = self._read("SELECT message_id, target, outcome FROM deliveries")
        if message_ids is None:
            return [tuple(r) for r in rows]  # type: ignore[misc]
        wanted = set(message_ids)
        return [tuple(r) for r in rows if r[0] in wanted]  # type: ignore[misc]

    def recently_settled(self, target: str, limit: int) -> list[str]:
        ids: list[str] = []
        for text in (
            "SELECT message_id FROM deliveries WHERE target = ? ORDER BY at DESC LIMIT ?",
            # a copy parked for lack of a queue was never in the queue
            "SELECT message_id FROM dead_letters WHERE target = ? "
            "AND reason <> 'no_delivery_queue' ORDER BY dead_at DESC LIMIT ?",
        ):
            ids.extend(row[0] for row in self._read(text, (target, limit)) if row[0])
        return ids

    # --- dead letters --------------------------------------------------------------------

    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> list[int]:
        ids = []
        recorded = now()
        with self.transaction() as cur:
            for dl in letters:
                # At-least-once upstream: the same dead letter may come twice (a crash between
                # parking it and acking the original), and is kept once. The body's digest is
                # part of what "the same" means: distinct bodies refused with one message id
                # and reason are distinct dead letters, each with its own error.
                digest = migrations.body_sha256(dl.body)
                cur.execute(
                    self.sql(
                        "SELECT id FROM dead_letters WHERE body_sha256 = ? AND "
                        "COALESCE(message_id, '') = ? AND COALESCE(target, '') = ? AND "
                        "reason = ? AND state = ?"
                    ),
                    (digest, dl.message_id or "", dl.target or "", dl.reason, PARKED),
                )
                existing = cur.fetchone()
                if existing is not None:
                    ids.append(int(existing[0]))
                    continue
                cur.execute(
                    self.sql(
                        "INSERT INTO dead_letters (message_id, message_type, target, reason, "
                        "detail, stage, attempts, history, headers, body, body_sha256, dead_at, "
                        "recorded_at, dossier_no, state) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
                    ),
                    (
                        dl.message_id,
                        dl.message_type,
                        dl.target,
                        dl.reason,
                        dl.detail,
                        dl.stage,
                        dl.attempts,
                        orjson.dumps(dl.history).decode(),
                        orjson.dumps(dl.headers, default=str).decode(),
                        dl.body,
                        digest,
                        dl.dead_at,
                        recorded,
                        dl.dossier_no,
                        PARKED,
                    ),
                )
                ids.append(int(cur.fetchone()[0]))
                if dl.message_id and dl.target:
                    cur.execute(
                        self.sql(
                            "INSERT INTO deliveries (message_id, target, outcome, at, attempts) "
                            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_id, target) DO NOTHING"
                        ),
                        (dl.message_id, dl.target, DEAD_LETTERED, dl.dead_at, dl.attempts),
                    )
        return ids

    _COLUMNS = (
        "id, message_id, message_type, target, reason, detail, stage, attempts, history, "
        "headers, dead_at, recorded_at, dossier_no, state"
    )

    def dead_letters(self, flt: DeadFilter, *, with_body: bool = False) -> list[DeadLetter]:
        where, params = [], []
        for column, value in (
            ("target", flt.target),
            ("message_type", flt.message_type),
            ("reason", flt.reason),
            ("state", flt.state),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if flt.since is not None:
            where.append("dead_at >= ?")
            params.append(flt.since)
        if flt.ids:
            where.append(f"id IN ({', '.join('?' for _ in flt.ids)})")
            params.extend(flt.ids)
        columns = self._COLUMNS + (", body" if with_body else "")
        text = f"SELECT {columns} FROM dead_letters"
        if where:
            text += " WHERE " + " AND ".join(where)
        text += " ORDER BY id"
        if flt.limit:
            text += f" LIMIT {int(flt.limit)}"
        return [self._letter(row, with_body) for row in self._read(text, params)]

    def dead_letter(self, dead_id: int) -> DeadLetter | None:
        rows = self._read(
            f"SELECT {self._COLUMNS}, body FROM dead_letters WHERE id = ?", (dead_id,)
        )
        if not rows:
            return None
        letter = self._letter(rows[0], True)
        letter.actions = [
            {"action": a, "at": at, "actor": actor, "detail": detail}
            for a, at, actor, detail in self._read(
                "SELECT action, at, actor, detail FROM dead_letter_actions "
                "WHERE dead_letter_id = ? ORDER BY id",
                (dead_id,),
            )
        ]
        return letter

    @staticmethod
    def _letter(row: Sequence[Any], with_body: bool) -> DeadLetter:
        (id_, mid, mtype, target, reason, detail, stage, attempts, history, headers, dead_at,
         recorded_at, dossier_no, state) = row[:14]  # fmt: skip
        return DeadLetter(
            id=int(id_),
            message_id=mid,
            message_type=mtype,
            target=target,
            reason=reason,
            detail=detail,
            stage=stage,
            attempts=int(attempts),
            history=orjson.loads(history),
            headers=orjson.loads(headers),
            body=bytes(row[14]) if with_body and row[14] is not None else b"",
            dead_at=float(dead_at),
            recorded_at=float(recorded_at),
            dossier_no=dossier_no,
            state=state,
        )

    def mark(
        self,
        dead_id: int,
        state: DeadLetterState,
        action: str,
        actor: str,
        detail: str,
        *,
        was: DeadLetterState = PARKED,
    ) -> bool:
        with self.transaction() as cur:
            body_clause = ", body = NULL" if state == PURGED else ""
            cur.execute(
                self.sql(
                    f"UPDATE dead_letters SET state = ?{body_clause} WHERE id = ? AND state = ?"
                ),
                (state, dead_id, was),
            )
            if cur.rowcount != 1:
                return False
            cur.execute(
                self.sql(
                    "INSERT INTO dead_letter_actions (dead_letter_id, action, at, actor, detail) "
                    "VALUES (?, ?, ?, ?, ?)"
                ),
                (dead_id, action, now(), actor, detail),
            )
        return True

    # --- audit trail ---------------------------------------------------------------------

    _AUDIT = (
        "seq, at, process, stage, event, message_id, message_type, dossier_no, target, "
        "reason, detail, attempt, duration, body_sha256, status, prev_hash, hash"
    )

    def _lock_head(self, cur: Any) -> tuple[int, str]:
        """Read the chain's head inside the write transaction, keeping other writers out."""
        if self.dialect == "sqlite":
            cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1")
        else:
            cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
        seq, head = cur.fetchone()  # the row is created by the migration
        return int(seq), head

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        with self.transaction(immediate=True, part="audit") as cur:
            seq, head = chain(list(records), *self._lock_head(cur))
            cur.executemany(
                self.sql(f"INSERT INTO audit_log ({self._AUDIT}) VALUES ({', '.join('?' * 17)})"),
                [(*r.fields().values(), r.prev_hash, r.hash) for r in records],
            )
            cur.execute(
                self.sql("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"), (seq, head)
            )

    def audit_head(self) -> tuple[int, str]:
        rows = self._audit.read("SELECT seq, hash FROM audit_head WHERE id = 1")
        return (int(rows[0][0]), rows[0][1]) if rows else (0, GENESIS)

    def audit_extent(self) -> tuple[int, str, int]:
        # One statement: the head and the newest record as of the same snapshot.
        rows = self._audit.read(
            "SELECT h.seq, h.hash, (SELECT MAX(seq) FROM audit_log) FROM audit_head h "
            "WHERE h.id = 1"
        )
        if not rows:
            return 0, GENESIS, 0
        seq, head, last = rows[0]
        return int(seq), head, int(last or 0)

    def audit_anchor(self) -> tuple[int, str]:
        rows = self._audit.read(
            "SELECT through_seq, hash FROM audit_anchors ORDER BY id DESC LIMIT 1"
        )
        return (int(rows[0][0]), rows[0][1]) if rows else (0, GENESIS)

    def audit_records(
        self,
        *,
        dossier_no: str | None = None,
        message_ids: Sequence[str] = (),
        after_seq: int = 0,
        limit: int | None = None,
        through_seq: int | None = None,
    ) -> list[AuditRecord]:
        where, params = ["seq > ?"], [after_seq]
        if through_seq is not None:
            where.append("seq <= ?")
            params.append(through_seq)
        if dossier_no is not None or message_ids:
            ors = []
            if dossier_no is not None:
                ors.append("dossier_no = ?")
                params.append(dossier_no)
            if message_ids:
                ors.append(f"message_id IN ({', '.join('?' for _ in message_ids)})")
                params.extend(message_ids)
            where.append("(" + " OR ".join(ors) + ")")
        text = f"SELECT {self._AUDIT} FROM audit_log WHERE {' AND '.join(where)} ORDER BY seq"
        if limit:
            text += f" LIMIT {int(limit)}"
        return [_audit_record(row) for row in self._audit.read(text, params)]

    def audit_keys(self, process: str, first_at: float, last_at: float) -> set[tuple[Any, ...]]:
        rows = self._audit.read(
            "SELECT at, event, message_id, target, attempt FROM audit_log "
            "WHERE at >= ? AND at <= ? AND process = ?",
            (first_at, last_at, process),
        )
        return {
            (float(at), event, mid, target, int(attempt))
            for at, event, mid, target, attempt in rows
        }

    def audit_cutoff(self) -> float:
        if self.audit_anchor()[0] == 0:
            return 0.0
        rows = self._audit.read("SELECT MIN(at) FROM audit_log")
        return float(rows[0][0]) if rows and rows[0][0] is not None else 0.0

    audit_prefix = ""  # where the main part's queries find the chain's tables

    def connect_both(self) -> Any:
        """A connection that sees both parts (the deliveries and the chain) in one query."""
        return self.connect("main")

    def audit_gaps(self, *, since: float, until: float) -> Iterator[AuditGap]:
        conn = self.connect_both()
        try:

            def cursor_for(name: str) -> Any:
                # PostgreSQL streams only through a named (server-side) cursor.
                return conn.cursor(name=name) if self.dialect == "postgres" else conn.cursor()

            yield from find_gaps(cursor_for, self.sql, self.audit_prefix, since, until)
        finally:
            conn.close()

    def purge_audit(self, before: float, actor: str) -> int:
        with self.transaction(immediate=True, part="audit") as cur:
            cur.execute(self.sql("SELECT MAX(seq) FROM audit_log WHERE at < ?"), (before,))
            row = cur.fetchone()
            through = row[0] if row else None
            if through is None:
                return 0
            cur.execute(self.sql("SELECT hash FROM audit_log WHERE seq = ?"), (through,))
            last_hash = cur.fetchone()[0]
            cur.execute(self.sql("DELETE FROM audit_log WHERE seq <= ?"), (through,))
            purged = cur.rowcount
            cur.execute(
                self.sql(
                    "INSERT INTO audit_anchors (through_seq, hash, purged, at, actor) "
                    "VALUES (?, ?, ?, ?, ?)"
                ),
                (through, last_hash, purged, now(), actor),
            )
        return int(purged)

    # --- gateway (bus/ingress) -----------------------------------------------------------

    _KEY = "sender, idempotency_key, request_sha256, state, message_id, created_at, updated_at"

    def claim_idempotency_key(
        self, sender: str, key: str, request_sha256: str, at: float
    ) -> IdempotencyKey | None:
        with self.transaction() as cur:
            return self._claim_idempotency_key(cur, sender, key, request_sha256, at)

    def take_over_idempotency_key(
        self, sender: str, key: str, request_sha256: str, was_updated_at: float, at: float
    ) -> bool:
        with self.transaction() as cur:
            return self._take_over_idempotency_key(
                cur, sender, key, request_sha256, was_updated_at, at
            )

    def answer_idempotency_key(self, sender: str, key: str, message_id: str, at: float) -> None:
        with self.transaction() as cur:
            self._answer_idempotency_key(cur, sender, key, message_id, at)

    def release_idempotency_key(self, sender: str, key: str) -> None:
        with self.transaction() as cur:
            self._release_idempotency_key(cur, sender, key)

    def record_submission(self, submission: Submission) -> None:
        with self.transaction() as cur:
            self._record_submission(cur, submission)

    def submission(self, message_id: str) -> Submission | None:
        rows = self._read(self._SUBMISSION, (message_id,))
        return _submission(rows[0]) if rows else None

    def gateway_batch(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """The calls in one transaction on the writer connection: one commit for all."""
        ops = []
        for name, args in calls:
            if name not in GATEWAY_BATCHABLE:
                raise ValueError(f"{name} cannot be batched")
            ops.append((getattr(self, f"_{name}"), args))
        with self.transaction() as cur:
            return [op(cur, *args) for op, args in ops]

    def _claim_idempotency_key(
        self, cur: Any, sender: str, key: str, request_sha256: str, at: float
    ) -> IdempotencyKey | None:
        while True:
            cur.execute(
                self.sql(
                    f"INSERT INTO gateway_idempotency_keys ({self._KEY}) "
                    "VALUES (?, ?, ?, ?, NULL, ?, ?) "
                    "ON CONFLICT (sender, idempotency_key) DO NOTHING"
                ),
                (sender, key, request_sha256, KeyState.IN_FLIGHT, at, at),
            )
            if cur.rowcount == 1:
                return None
            cur.execute(
                self.sql(
                    f"SELECT {self._KEY} FROM gateway_idempotency_keys "
                    "WHERE sender = ? AND idempotency_key = ?"
                ),
                (sender, key),
            )
            row = cur.fetchone()
            if row is not None:  # else purged between the two statements: claim it again
                break
        s, k, digest, state, mid, created, updated = row
        return IdempotencyKey(s, k, digest, KeyState(state), mid, float(created), float(updated))

    def _take_over_idempotency_key(
        self,
        cur: Any,
        sender: str,
        key: str,
        request_sha256: str,
        was_updated_at: float,
        at: float,
    ) -> bool:
        cur.execute(
            self.sql(
                "UPDATE gateway_idempotency_keys SET updated_at = ? WHERE sender = ? AND "
                "idempotency_key = ? AND state = ? AND updated_at = ? AND request_sha256 = ?"
            ),
            (at, sender, key, KeyState.IN_FLIGHT, was_updated_at, request_sha256),
        )
        return bool(cur.rowcount == 1)

    def _answer_idempotency_key(
        self, cur: Any, sender: str, key: str, message_id: str, at: float
    ) -> None:
        cur.execute(
            self.sql(
                "UPDATE gateway_idempotency_keys SET state = ?, message_id = ?, "
                "updated_at = ? WHERE sender = ? AND idempotency_key = ?"
            ),
            (KeyState.ANSWERED, message_id, at, sender, key),
        )

    def _release_idempotency_key(self, cur: Any, sender: str, key: str) -> None:
        cur.execute(
            self.sql(
                "DELETE FROM gateway_idempotency_keys "
                "WHERE sender = ? AND idempotency_key = ? AND state = ?"
            ),
            (sender, key, KeyState.IN_FLIGHT),
        )

    def _record_submission(self, cur: Any, submission: Submission) -> None:
        cur.execute(
            self.sql(
                "INSERT INTO gateway_submissions "
                "(message_id, sender, message_type, body_sha256, accepted_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING"
            ),
            (
                submission.message_id,
                submission.sender,
                submission.message_type,
                submission.body_sha256,
                submission.accepted_at,
            ),
        )

    _SUBMISSION = (
        "SELECT message_id, sender, message_type, body_sha256, accepted_at "
        "FROM gateway_submissions WHERE message_id = ?"
    )

    def _submission(self, cur: Any, message_id: str) -> Submission | None:
        cur.execute(self.sql(self._SUBMISSION), (message_id,))
        row = cur.fetchone()
        return _submission(row) if row else None

    def purge_gateway(self, before: float) -> int:
        with self.transaction() as cur:
            cur.execute(
                self.sql("DELETE FROM gateway_idempotency_keys WHERE created_at < ?"), (before,)
            )
            purged = cur.rowcount
            cur.execute(
                self.sql("DELETE FROM gateway_submissions WHERE accepted_at < ?"), (before,)
            )
            return int(purged + cur.rowcount)

    def dead_letters_of(self, message_id: str) -> list[tuple[str | None, str, str, str, float]]:
        rows = self._read(
            "SELECT target, stage, reason, detail, dead_at FROM dead_letters "
            "WHERE message_id = ? ORDER BY id",
            (message_id,),
        )
        return [(t, stage, r, d, float(at)) for t, stage, r, d, at in rows]

    def deliveries_of(self, message_id: str) -> list[tuple[str, str, float, int]]:
        rows = self._read(
            "SELECT target, outcome, at, attempts FROM deliveries WHERE message_id = ? "
            "ORDER BY target",
            (message_id,),
        )
        return [(t, o, float(at), int(n)) for t, o, at, n in rows]

    # --- targets -------------------------------------------------------------------------

    def save_target_states(self, states: Sequence[TargetState]) -> None:
        with self.transaction() as cur:
            cur.executemany(
                self.sql(
                    "INSERT INTO target_states (target, process, state, in_flight, last_error, "
                    "last_error_at, oldest_in_flight_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (target, process) DO UPDATE SET state = excluded.state, "
                    "in_flight = excluded.in_flight, last_error = excluded.last_error, "
                    "last_error_at = excluded.last_error_at, "
                    "oldest_in_flight_at = excluded.oldest_in_flight_at, "
                    "updated_at = excluded.updated_at"
                ),
                [
                    (
                        s.target,
                        s.process,
                        s.state,
                        s.in_flight,
                        s.last_error,
                        s.last_error_at,
                        s.oldest_in_flight_at,
                        s.updated_at,
                    )
                    for s in states
                ],
            )

    def target_states(self) -> list[TargetState]:
        rows = self._read(
            "SELECT target, process, state, in_flight, last_error, last_error_at, "
            "oldest_in_flight_at, updated_at FROM target_states ORDER BY target, process"
        )
        return [TargetState(*row) for row in rows]


def _audit_record(row: Sequence[Any]) -> AuditRecord:
    (seq, at, process, stage, event, mid, mtype, dossier_no, target, reason, detail, attempt,
     duration, body_sha256, status, prev_hash, hash_) = row  # fmt: skip
    return AuditRecord(
        at=float(at),
        process=process,
        stage=stage,
        event=event,
        message_id=mid,
        message_type=mtype,
        dossier_no=dossier_no,
        target=target,
        reason=reason,
        detail=detail,
        attempt=int(attempt),
        duration=None if duration is None else float(duration),
        body_sha256=body_sha256,
        seq=int(seq),
        prev_hash=prev_hash,
        hash=hash_,
        status=None if status is None else int(status),
    )


def _submission(row: Sequence[Any]) -> Submission:
    mid, sender, mtype, digest, at = row
    return Submission(mid, sender, mtype, digest, float(at))
