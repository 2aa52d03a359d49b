"""A target's credential references turned into the secrets they name (env and file reads).

routes.yaml holds only references, ``env:NAME`` or ``file:/path`` (their shape is checked by
the model); the secrets are read here, when an adapter is built, so a file can be checked on a
machine that does not have them. Errors name the target and the reference, never a value.
"""

from __future__ import annotations

import os
from pathlib import Path

from bus.errors import ConfigError


class CredentialError(ConfigError):
    """A target's credential reference cannot be resolved; names the reference, never a value."""


def resolve_credential(target: str, key: str, ref: str) -> str:
    """The secret behind an ``env:NAME`` or ``file:/path`` reference.

    Errors name the target and the reference so an operator can fix them, never the value.
    """
    where = f"target {target!r}: credential {key!r}"
    try:
        return read_reference(ref)
    except UnreadableReference as exc:
        if exc.malformed:
            raise CredentialError(f"{where} {exc.why}") from None
        raise CredentialError(f"{where} refers to {ref}, which {exc.why}") from None


class UnreadableReference(Exception):
    """Why a reference gave no secret: ``why`` reads after the reference ("is not set")."""

    def __init__(self, why: str, *, malformed: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.malformed = malformed  # not an env:/file: reference at all


def read_reference(ref: str) -> str:
    """The secret an ``env:NAME`` or ``file:/path`` reference names (a file's final newline
    dropped); every bus secret setting (credentials, broker passwords) is read here."""
    if ref.startswith("env:"):
        value = os.environ.get(ref[4:])
        if value is None:
            raise UnreadableReference("is not set")
    elif ref.startswith("file:"):
        try:
            value = Path(ref[5:]).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise UnreadableReference(f"cannot be read: {why}") from None
    else:
        raise UnreadableReference("is not an env:NAME or file:/path reference", malformed=True)
    if not value:
        raise UnreadableReference("is empty")
    return value
