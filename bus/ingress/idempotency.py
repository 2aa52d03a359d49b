"""The Idempotency-Key rules: what a request with a key already seen gets.

A sender retries a POST it got no answer to (a timeout, a 503) with the same key. The
first request's answer is kept once the broker confirmed its message; the retry gets that
answer again and nothing is published twice. The key's record is claimed in the store
before anything is published, so two gateway processes cannot both publish for one key.

* same key, same body, answered → the first answer (202, the same id), nothing published;
* same key, another body → 422: a key names one request, never two;
* same key, still being handled → 409: wait and retry;
* a key left in flight by a gateway that died (older than :data:`STALE_AFTER`) is taken over.

Only a 202 is remembered: a refusal (403, 422, 503 …) releases the key, so the sender may
fix its request or retry later with the same key.
"""

from __future__ import annotations

import re
from enum import StrEnum

from bus.ingress.refusals import Refusal, Refused
from bus.store import IdempotencyKey, KeyState

HEADER = "Idempotency-Key"
# A request lives at most the body timeout plus the confirm timeout; well past both, a key
# still in flight was left by a gateway that died.
STALE_AFTER = 120.0
_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Verdict(StrEnum):
    PROCEED = "proceed"  # the key is ours now: handle the request
    TAKE_OVER = "take_over"  # left in flight by a dead gateway: claim it, then proceed
    ANSWER_AGAIN = "answer_again"  # the first answer again, nothing published
    CONFLICT = "conflict"  # another body under this key (422)
    IN_FLIGHT = "in_flight"  # being handled now (409)


def valid_key(value: str) -> bool:
    """1 to 128 characters of letters, digits and ``. _ : -`` (a UUID fits)."""
    return bool(_KEY.match(value))


def checked_key(key: str | None, name: str = HEADER) -> str | None:
    """``key`` as sent (None: none was), once its shape is checked: every way in refuses a
    key of another shape the same way (400), naming it as that way does (``name``)."""
    if key is not None and not valid_key(key):
        raise Refused(
            Refusal.BAD_REQUEST,
            f"{name} must be 1 to 128 characters of letters, digits and . _ : -",
        )
    return key


def judge(
    existing: IdempotencyKey | None,
    request_sha256: str,
    now: float,
    stale_after: float = STALE_AFTER,
) -> Verdict:
    """What to do with a request whose key the store already held as ``existing``
    (None: the claim succeeded, the key is new)."""
    if existing is None:
        return Verdict.PROCEED
    if existing.request_sha256 != request_sha256:
        return Verdict.CONFLICT
    if existing.state == KeyState.ANSWERED and existing.message_id:
        return Verdict.ANSWER_AGAIN
    if now - existing.updated_at > stale_after:
        return Verdict.TAKE_OVER
    return Verdict.IN_FLIGHT
