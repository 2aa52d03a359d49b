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
    if ref.startswith("env:"):
        value = os.environ.get(ref[4:])
        if value is None:
            raise CredentialError(f"{where} refers to {ref}, which is not set")
    elif ref.startswith("file:"):
        try:
            value = Path(ref[5:]).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise CredentialError(f"{where} refers to {ref}, which cannot be read: {why}") from None
    else:
        raise CredentialError(f"{where} is not an env:NAME or file:/path reference")
    if not value:
        raise CredentialError(f"{where} refers to {ref}, which is empty")
    return value
