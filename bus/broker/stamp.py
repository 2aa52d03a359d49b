"""The router's stamp on a routed copy: proof that a bus process, not a sender, put it there.

Anyone who may publish to the broker could otherwise write straight to the delivery exchange
and skip validation, authorisation and routing. Broker permissions keep senders out of the
internal exchanges; the stamp is the second wall: an HMAC-SHA256, with a key only bus
processes hold, over the message id, the target and the SHA-256 of the body. The dispatcher
delivers nothing whose stamp it cannot verify.

Each field is length-prefixed before it is MACed, so no id or target containing a separator
can be shifted into its neighbour to reuse a stamp. Cheap enough for every copy: one SHA-256
of the body (shared by all of a message's copies) and one HMAC of ~100 bytes per copy, from
hash states keyed once (RFC 2104's inner and outer pads), not re-keyed per copy.
"""

from __future__ import annotations

import hashlib
import hmac

_BLOCK = 64  # SHA-256's block size: the HMAC pads are this long


class StampKey:
    """A secret, with the HMAC-SHA256 hash states it keys computed once."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a stamp key needs at least 16 bytes")
        if len(secret) > _BLOCK:
            secret = hashlib.sha256(secret).digest()
        padded = secret.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def mac(self, data: bytes) -> str:
        """HMAC-SHA256 of ``data`` (hex); the same as ``hmac.new(secret, data, sha256)``."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:
        return "StampKey(…)"  # never the secret, in a log or a traceback


def body_digest(body: bytes) -> bytes:
    """The SHA-256 of a body: computed once per message, stamped into each of its copies."""
    return hashlib.sha256(body).digest()


def seal(key: StampKey, message_id: str | None, target: str, digest: bytes) -> str:
    """The stamp of a copy whose body has the SHA-256 ``digest``."""
    mid = (message_id or "").encode()
    tgt = target.encode()
    return key.mac(b"%d:%s%d:%s" % (len(mid), mid, len(tgt), tgt) + digest)


def stamp(key: StampKey, message_id: str | None, target: str, body: bytes) -> str:
    """The stamp of one copy of ``body`` for ``target``."""
    return seal(key, message_id, target, body_digest(body))


def verify(
    key: StampKey, message_id: str | None, target: str, body: bytes, presented: str | bytes
) -> bool:
    """Whether ``presented`` is the stamp of this copy (compared in constant time)."""
    return verify_digest(key, message_id, target, body_digest(body), presented)


def verify_digest(
    key: StampKey, message_id: str | None, target: str, digest: bytes, presented: str | bytes
) -> bool:
    """:func:`verify` for a body whose SHA-256 the caller has (and keeps, for the audit)."""
    if isinstance(presented, bytes):  # a header value the broker's table carried as bytes
        presented = presented.decode("ascii", "replace")
    return hmac.compare_digest(seal(key, message_id, target, digest), presented)
