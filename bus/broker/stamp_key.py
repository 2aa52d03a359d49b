"""Where the stamp key comes from: an ``env:NAME`` or ``file:/path`` reference, or a key file
the first bus process on a host creates for all of them.

The default (``stamp_key = ""``) is ``var/stamp.key`` under the project root, made on first
use with 32 random bytes (hex) and mode 0600, so the demo, the tests and a single host need no
set-up. Processes on several hosts must share one key: give each the same ``env:``/``file:``.
The file appears complete or not at all (written aside, then hard-linked into place), so a
process racing the creator reads the winner's key, never half of it. Errors name the
reference, never the key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bus.broker.stamp import StampKey
from bus.errors import ConfigError

DEFAULT_KEY_FILE = Path("var") / "stamp.key"


class StampKeyError(ConfigError):
    """The stamp key cannot be read, or is too short to be one."""


def load_stamp_key(reference: str, root: Path) -> StampKey:
    """The key a reference names; ``""``: the default key file under ``root``, created if new."""
    if not reference:
        return _key(_default_secret(root / DEFAULT_KEY_FILE), str(root / DEFAULT_KEY_FILE))
    if reference.startswith("env:"):
        value = os.environ.get(reference[4:])
        if value is None:
            raise StampKeyError(f"stamp_key refers to {reference}, which is not set")
        return _key(value.encode(), reference)
    if reference.startswith("file:"):
        return _key(_read(Path(reference[5:]), reference), reference)
    raise StampKeyError('stamp_key is not "", env:NAME or file:/path')


def _key(secret: bytes, where: str) -> StampKey:
    secret = secret.strip()
    if len(secret) < 16:
        raise StampKeyError(f"stamp_key {where} holds fewer than 16 bytes: not a key")
    return StampKey(secret)


def _read(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StampKeyError(f"stamp_key {where} cannot be read: {exc.strerror}") from None


def _default_secret(path: Path) -> bytes:
    """The key file's content, after creating it atomically if no process has yet."""
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(aside, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            try:
                os.write(fd, secrets.token_hex(32).encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(aside, path)  # fails if another process linked its key first
            except FileExistsError:
                pass
            finally:
                aside.unlink()
        except OSError as exc:
            why = exc.strerror
            raise StampKeyError(f"stamp key file {path} cannot be created: {why}") from None
    return _read(path, str(path))
