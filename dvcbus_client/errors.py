"""What the client raises: one exception per way a message can fail to get on the bus.

A :class:`Refused` message will be refused again as it is (fix it, or the sender's
registration); :class:`GatewayUnavailable` and :class:`NotConfirmed` mean the bus could not
take it now and the client's retries ran out: send it again later, with the same message id
(and, over HTTP, the same idempotency key), and the bus still delivers it once.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Any failure of the client to get a message on the bus."""


class Refused(ClientError):
    """The gateway refused the message (4xx): its ``reason`` code and ``detail``.

    ``errors`` lists ``{path, rule, expected}`` for an ``invalid`` message.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail
        self.errors = errors or []
        self.idempotency_key = idempotency_key


class GatewayUnavailable(ClientError):
    """The gateway did not accept the message after every attempt (503, 429, 409 in flight,
    or no answer). Send it again later with the same ``idempotency_key``."""

    def __init__(self, attempts: int, last: str, idempotency_key: str) -> None:
        super().__init__(f"not accepted after {attempts} attempt(s): {last}")
        self.attempts = attempts
        self.last = last
        self.idempotency_key = idempotency_key


class PublishRefused(ClientError):
    """The broker refused the publish: ``PRECONDITION_FAILED`` (a ``user_id`` that is not
    the connection's user), ``ACCESS_REFUSED`` (a type this sender's user may not publish),
    or ``NO_ROUTE`` (returned: nothing bound to the exchange for this routing key)."""

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(f"{reply_code} {reply_text}")
        self.reply_code = reply_code
        self.reply_text = reply_text


class NotConfirmed(ClientError):
    """The broker nacked the message, or did not confirm it within the timeout, or could
    not be reached within the retry policy: it may not hold the message."""
