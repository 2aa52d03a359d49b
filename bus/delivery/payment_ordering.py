"""Payment ordering: a payment's result never goes backward at a target.

Per payment reference and target, results follow ``pending`` → ``failed`` → ``success``
(a failed payment may be paid again; success is final). A confirmation whose result is
behind the one already delivered there (a late ``pending`` or ``failed`` after ``success``)
is not delivered: it is recorded ``superseded``, as an older dossier status is. An equal
result goes on: the agency's own "already recorded" answer settles a repeat, and counts as
delivered only for that same result (``adapters.kinds.payment``).
"""

from __future__ import annotations

from bus.contract.envelope import Message
from bus.store import PaymentState

__all__ = ["PAYMENT_TYPE", "is_behind", "lock_key", "state_of"]

PAYMENT_TYPE = "payment.confirmed"


def state_of(message: Message) -> PaymentState | None:
    """Where a payment confirmation would put its reference; None for other types."""
    if message.type != PAYMENT_TYPE:
        return None
    payload = message.payload
    result = payload["result"]
    body = message.body if result == "pending" else None  # kept for reconciliation
    return PaymentState(payload["reference"], result, message.id, body)


def lock_key(state: PaymentState) -> str:
    """One payment's deliveries to a target are decided one at a time (never a dossier no)."""
    return f"payment:{state.reference}"


def is_behind(candidate: PaymentState, current: PaymentState | None) -> bool:
    """Whether ``candidate`` would move the payment backward from ``current`` (delivered)."""
    return current is not None and candidate.rank < current.rank
