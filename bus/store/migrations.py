"""Schema migrations, in order, for both dialects. Never edit an applied one: add the next.

DDL differs between SQLite and PostgreSQL only in a few type names, filled in per dialect.
A step SQL cannot do in both dialects (hashing existing rows) is a Python function given
the migration's cursor and the store's placeholder rewriting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

TYPES = {
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "blob": "BLOB"},
    "postgres": {"id": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION", "blob": "BYTEA"},
}

Sql = Callable[[str], str]  # "?" placeholders → the dialect's
Step = str | Callable[[Any, Sql], None]  # a statement, or a function of (cursor, sql)
Migration = tuple[int, str, list[Step]]  # (version, title, steps)
BACKFILL_CHUNK = 100  # rows per read: bodies may be up to the message cap each


def body_sha256(body: bytes) -> str:
    """The digest that tells a dead letter's body from another one with the same id."""
    return hashlib.sha256(body).hexdigest()


def _digest_stored_bodies(cur: Any, sql: Sql) -> None:
    """Give the dead letters stored before migration 2 their body digest, a chunk at a time,
    so a redelivery of one of them after the upgrade is still recognised."""
    last = 0
    while True:
        cur.execute(
            sql(
                "SELECT id, body FROM dead_letters WHERE id > ? AND body IS NOT NULL "
                f"ORDER BY id LIMIT {BACKFILL_CHUNK}"
            ),
            (last,),
        )
        rows = cur.fetchall()
        if not rows:
            return
        for id_, body in rows:
            cur.execute(
                sql("UPDATE dead_letters SET body_sha256 = ? WHERE id = ?"),
                (body_sha256(bytes(body)), id_),
            )
        last = rows[-1][0]


MIGRATIONS: list[Migration] = [
    (
        1,
        "deliveries, status positions, dead letters and their actions, target states",
        [
            """CREATE TABLE deliveries (
                message_id TEXT NOT NULL,
                target TEXT NOT NULL,
                outcome TEXT NOT NULL,
                at {real} NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 1,
                reference TEXT,
                PRIMARY KEY (message_id, target))""",
            """CREATE TABLE status_positions (
                dossier_no TEXT NOT NULL,
                target TEXT NOT NULL,
                occurred_at {real} NOT NULL,
                sequence BIGINT NOT NULL,
                status INTEGER,
                message_id TEXT NOT NULL,
                at {real} NOT NULL,
                PRIMARY KEY (dossier_no, target))""",
            """CREATE TABLE dead_letters (
                id {id},
                message_id TEXT,
                message_type TEXT,
                target TEXT,
                reason TEXT NOT NULL,
                detail TEXT NOT NULL,
                stage TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                history TEXT NOT NULL,
                headers TEXT NOT NULL,
                body {blob},
                dead_at {real} NOT NULL,
                recorded_at {real} NOT NULL,
                dossier_no TEXT,
                state TEXT NOT NULL)""",
            "CREATE INDEX dead_letters_state_reason ON dead_letters (state, reason)",
            "CREATE INDEX dead_letters_target ON dead_letters (target, dead_at)",
            "CREATE INDEX dead_letters_message ON dead_letters (message_id)",
            """CREATE TABLE dead_letter_actions (
                id {id},
                dead_letter_id BIGINT NOT NULL,
                action TEXT NOT NULL,
                at {real} NOT NULL,
                actor TEXT NOT NULL,
                detail TEXT NOT NULL)""",
            "CREATE INDEX dead_letter_actions_letter ON dead_letter_actions (dead_letter_id)",
            """CREATE TABLE target_states (
                target TEXT NOT NULL,
                process TEXT NOT NULL,
                state TEXT NOT NULL,
                in_flight INTEGER NOT NULL,
                last_error TEXT,
                last_error_at {real},
                oldest_in_flight_at {real},
                updated_at {real} NOT NULL,
                PRIMARY KEY (target, process))""",
        ],
    ),
    (
        2,
        "dead letters: the body's SHA-256, so distinct bodies refused with one id stay distinct",
        [
            "ALTER TABLE dead_letters ADD COLUMN body_sha256 TEXT",
            "CREATE INDEX dead_letters_body ON dead_letters (body_sha256)",
            _digest_stored_bodies,
        ],
    ),
    (
        3,
        "gateway: who sent each message id, and senders' idempotency keys",
        [
            """CREATE TABLE gateway_submissions (
                message_id TEXT PRIMARY KEY,
                sender TEXT NOT NULL,
                message_type TEXT NOT NULL,
                body_sha256 TEXT NOT NULL,
                accepted_at {real} NOT NULL)""",
            "CREATE INDEX gateway_submissions_at ON gateway_submissions (accepted_at)",
            """CREATE TABLE gateway_idempotency_keys (
                sender TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                request_sha256 TEXT NOT NULL,
                state TEXT NOT NULL,
                message_id TEXT,
                created_at {real} NOT NULL,
                updated_at {real} NOT NULL,
                PRIMARY KEY (sender, idempotency_key))""",
            "CREATE INDEX gateway_idempotency_keys_at ON gateway_idempotency_keys (created_at)",
        ],
    ),
    (
        4,
        "payment states: the furthest result delivered per payment reference and target "
        "(and a pending one's body, for reconciliation)",
        [
            """CREATE TABLE payment_states (
                reference TEXT NOT NULL,
                target TEXT NOT NULL,
                result TEXT NOT NULL,
                result_rank INTEGER NOT NULL,
                message_id TEXT NOT NULL,
                at {real} NOT NULL,
                body {blob},
                PRIMARY KEY (reference, target))""",
            "CREATE INDEX payment_states_pending ON payment_states (result_rank, at)",
        ],
    ),
    (
        5,
        "status positions are placed by the contract's status_at, not the envelope's "
        "occurred_at (rows kept: their envelope time stands in until the next status)",
        ["ALTER TABLE status_positions RENAME COLUMN occurred_at TO status_at"],
    ),
    (
        6,
        "dossier agencies: the receiving agency of each dossier the bus delivered, so a status "
        "update is checked against it (bus/routing/reporting.py)",
        [
            """CREATE TABLE dossier_agencies (
                dossier_no TEXT PRIMARY KEY,
                agency TEXT NOT NULL,
                at {real} NOT NULL)""",
        ],
    ),
]

# The audit trail is its own part: a second SQLite file, or the same PostgreSQL database.
AUDIT_MIGRATIONS: list[Migration] = [
    (
        1,
        "audit trail: a hash chain of every hop, its head, and anchors left by purges",
        [
            """CREATE TABLE audit_log (
                seq BIGINT PRIMARY KEY,
                at {real} NOT NULL,
                process TEXT NOT NULL,
                stage TEXT NOT NULL,
                event TEXT NOT NULL,
                message_id TEXT,
                message_type TEXT,
                dossier_no TEXT,
                target TEXT,
                reason TEXT,
                detail TEXT,
                attempt INTEGER NOT NULL,
                duration {real},
                body_sha256 TEXT,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL)""",
            "CREATE INDEX audit_log_dossier ON audit_log (dossier_no)",
            "CREATE INDEX audit_log_message ON audit_log (message_id)",
            "CREATE INDEX audit_log_at ON audit_log (at)",
            """CREATE TABLE audit_head (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                seq BIGINT NOT NULL,
                hash TEXT NOT NULL)""",
            f"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{'0' * 64}')",
            """CREATE TABLE audit_anchors (
                id {id},
                through_seq BIGINT NOT NULL,
                hash TEXT NOT NULL,
                purged INTEGER NOT NULL,
                at {real} NOT NULL,
                actor TEXT NOT NULL)""",
        ],
    ),
    (
        2,
        "audit trail: the status code of a status update (not personal; hashed when set)",
        ["ALTER TABLE audit_log ADD COLUMN status INTEGER"],
    ),
    (
        3,
        "audit trail: the body's digest indexed, to find a dead letter's hop by its body",
        ["CREATE INDEX audit_log_body ON audit_log (body_sha256)"],
    ),
]


def render(dialect: str, steps: list[Step]) -> list[Step]:
    """The steps of one migration for one dialect (type names filled into the statements)."""
    return [step.format(**TYPES[dialect]) if isinstance(step, str) else step for step in steps]
