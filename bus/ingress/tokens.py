"""Bearer tokens → sender ids, compared in constant time.

The registry holds each token as its SHA-256 (``sha256:<hex>``) or as a reference to it
(``env:NAME``, ``file:/path``), read here once at start and kept only as its digest. A
presented token is hashed and compared with every known digest, all of them, with
:func:`hmac.compare_digest`: the time taken says nothing about which token came close.
A sender whose reference cannot be read is disabled alone (logged), like a target whose
credential is missing: one host's missing secret must not lock out the other senders.
"""

from __future__ import annotations

import hashlib
import hmac

from bus.ingress.senders import SendersConfig
from bus.routes.credentials import UnreadableReference, read_reference

MAX_TOKEN_CHARS = 4096


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenBook:
    """Who a bearer token belongs to."""

    def __init__(self, entries: list[tuple[bytes, str]]) -> None:
        self._entries = entries

    @classmethod
    def build(cls, registry: SendersConfig) -> tuple[TokenBook, dict[str, str], list[str]]:
        """The book, the senders disabled with why (never a value), and the token values read
        (for the log masker)."""
        entries: list[tuple[bytes, str]] = []
        disabled: dict[str, str] = {}
        secrets: list[str] = []
        for sid, sender in registry.senders.items():
            mine: list[tuple[bytes, str]] = []
            for spec in sender.auth.bearer:
                if spec.startswith("sha256:"):
                    mine.append((bytes.fromhex(spec[7:]), sid))
                    continue
                try:
                    token = read_reference(spec)
                except UnreadableReference as exc:
                    disabled[sid] = f"bearer token {spec} {exc.why}"
                    mine = []
                    break
                secrets.append(token)
                mine.append((token_digest(token), sid))
            entries.extend(mine)
        return cls(entries), disabled, secrets

    def sender_of(self, authorization: str | None) -> str | None:
        """The sender an ``Authorization: Bearer …`` header proves, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
            return None
        presented = token_digest(token)
        found: str | None = None
        for digest, sid in self._entries:  # every entry, no early exit
            if hmac.compare_digest(digest, presented):
                found = sid
        return found
