"""What becomes of one message at one target: the dispatcher's decisions, as pure functions.

No broker, store or clock here: each step takes what the dispatcher read or measured and
returns one small decision, so every rule is testable with plain values. The dispatcher
(``bus.delivery.dispatcher``) only carries decisions out — store, publish, ack — in the
order that keeps a crash safe (each ack after the commit or confirm it depends on).

    on arrival        DeadLetter ``unauthorised`` (no valid router stamp: someone went around
                      the router)
    before the call   Suppress (already delivered) · Supersede (an older status at a target
                      that keeps the current state only, or a payment result behind the one
                      delivered) · DeadLetter ``invalid_transition`` (a status the lifecycle
                      does not allow after the last one delivered) · Flag (deliver, flagged:
                      a late status as history, an invalid transition forwarded by choice)
                      Defer (the circuit refused the call; no attempt used)
    the call          HandBack (the adapter raised) · a timeout becomes a transient failure
    after the call    Record (delivered) · RetryLater (transient, attempts left)
                      DeadLetter (permanent, or retries exhausted)

A message the adapter keeps crashing on is handed back to its queue until the broker's
delivery limit dead-letters it as ``poison``: that decision is the broker's, not ours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from adapters.base import Delivered, Outcome, PermanentFailure, TransientFailure
from adapters.message import INVALID_TRANSITION, STATUS_HISTORY
from bus.contract.rejections import Reason
from bus.delivery import ordering, payment_ordering
from bus.delivery.retry import AttemptRecord, GiveUp, next_step
from bus.routes.lifecycle import Lifecycle
from bus.store import PaymentState, StatusPosition

DEFAULT_DEFER = 10.0  # seconds a deferred message waits when no target has a retry schedule


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """A target's retry policy (routes.yaml ``retry``)."""

    schedule: tuple[float, ...]
    max_attempts: int
    max_age: float


@dataclass(frozen=True, slots=True)
class Suppress:
    """Already delivered to this target (a redelivery): ack, call nobody."""


SUPPRESS = Suppress()


@dataclass(frozen=True, slots=True)
class Supersede:
    """A status older than one already delivered for its dossier, or a payment result behind
    the one delivered for its reference: record it superseded, ack."""

    newer: StatusPosition | PaymentState  # the one delivered

    @property
    def detail(self) -> str:
        if isinstance(self.newer, PaymentState):
            newer = self.newer
            return f"payment already {newer.result} here (message {newer.message_id})"
        return f"newer status {self.newer}"


@dataclass(frozen=True, slots=True)
class Flag:
    """Deliver, with flags the adapter sends on (``Message.flags``) and a note for the audit."""

    flags: tuple[str, ...]
    note: str


@dataclass(frozen=True, slots=True)
class Defer:
    """No call made: to the delay tier of ``wait`` seconds untouched (no attempt used)."""

    wait: float
    why: str


@dataclass(frozen=True, slots=True)
class HandBack:
    """The adapter raised (our bug, not the agency's answer): back to its queue, unacked."""

    note: str  # the target's last error; says what was raised, never the message


@dataclass(frozen=True, slots=True)
class Record:
    """Delivered: record it (the store's commit), then ack."""

    reference: str | None  # the agency's own id for it


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Failed transiently with attempts left: to the delay tier of ``wait`` seconds."""

    wait: float
    record: AttemptRecord  # carried into the next attempt (it counts the failed one)
    failure: str  # the adapter's reason


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """To the dead-letter exchange with a reason; ``record`` rides in its headers."""

    reason: Reason
    detail: str
    record: AttemptRecord
    failure: str | None = None  # the adapter's reason when a call failed; None: no call made
    agency_answered: bool = False  # a refusal: the agency is up, the message is wrong


Screened = Suppress | Supersede
StatusVerdict = Supersede | DeadLetter | Flag
AfterCall = Record | RetryLater | DeadLetter
Decision = Suppress | Supersede | Defer | HandBack | Record | RetryLater | DeadLetter | Flag


def unreadable(error: Exception, record: AttemptRecord) -> DeadLetter:
    """A body that is no canonical message: the router validated it, so someone went around it."""
    return DeadLetter(Reason.REJECTED, f"not a canonical message: {error}", record)


def unstamped(presented: object, record: AttemptRecord) -> DeadLetter:
    """A copy without the router's valid stamp: published around the router, never delivered.

    The detail says what was wrong with the stamp, never what it should have been.
    """
    what = "carries no router stamp" if presented is None else "has a stamp that does not match"
    detail = f"{what} (message id, target and body): not routed by the bus, refused unread"
    return DeadLetter(Reason.UNAUTHORISED, detail, record)


def screen(
    delivered_already: bool, position: StatusPosition | None, current: StatusPosition | None
) -> Screened | None:
    """Before any call: skip a redelivery, or a status older than ``current`` (delivered).

    ``current`` is the newest status delivered for the dossier at this target (None when
    none, or when the message is no status update).
    """
    if delivered_already:
        return SUPPRESS
    if position is not None and ordering.is_older(position, current):
        assert current is not None
        return Supersede(current)
    return None


def screen_status(
    position: StatusPosition,
    current: StatusPosition | None,
    lifecycle: Lifecycle | None,
    keeps_history: bool,
    forward_invalid: bool,
    record: AttemptRecord,
) -> StatusVerdict | None:
    """Before any call: a status update against ``current``, the last status delivered for
    its dossier to this target (the same store read that orders it).

    Late (older by status_at, sequence): history for a target that keeps it (flagged, not
    checked against the lifecycle: it happened before the current one), superseded at one
    that keeps the current state only. Newer: a transition the lifecycle does not allow is
    dead-lettered ``invalid_transition`` naming both statuses, or forwarded flagged when the
    route or target says so. A dossier with nothing delivered yet: forwarded (counter
    dossiers the bus never saw submitted exist).
    """
    if current is None:
        return None
    if ordering.is_older(position, current):
        if keeps_history:
            return Flag((STATUS_HISTORY,), f"late status delivered as history (newer {current})")
        return Supersede(current)
    if lifecycle is None or lifecycle.allows(current.status, position.status):
        return None
    assert current.status is not None and position.status is not None
    why = lifecycle.refusal(current.status, position.status)
    if forward_invalid:
        return Flag((INVALID_TRANSITION,), f"forwarded as the target asks: {why}")
    return DeadLetter(Reason.INVALID_TRANSITION, f"{why}; last delivered: {current}", record)


def forward_instead(refused: DeadLetter, by: str) -> Flag:
    """An ``invalid_transition`` a route forwards instead (``on_invalid_transition``)."""
    return Flag((INVALID_TRANSITION,), f"forwarded as {by} asks: {refused.detail}")


def screen_payment(state: PaymentState, current: PaymentState | None) -> Supersede | None:
    """Before any call: a payment result behind ``current`` (delivered to this target)."""
    if current is not None and payment_ordering.is_behind(state, current):
        return Supersede(current)
    return None


def circuit_open(plans: Iterable[RetryPlan]) -> Defer:
    """What a message in hand becomes when its target's circuit refuses the call.

    It waits the shortest delay tier any target uses, so it is back soon after the probe
    that may close the circuit, and keeps its attempts: the agency was not even called.
    """
    wait = min((w for plan in plans for w in plan.schedule), default=DEFAULT_DEFER)
    return Defer(wait, "circuit_open")


def timed_out(deadline: float) -> TransientFailure:
    """The outcome of a call cut at the adapter deadline: the agency may just be slow."""
    return TransientFailure(f"no outcome within {deadline:.0f}s (adapter deadline)")


def adapter_raised(error: BaseException) -> HandBack:
    """An adapter must return an outcome; one that raises hands the message back.

    Retrying it in place could loop for ever; the broker's delivery limit ends the loop
    by dead-lettering it as ``poison``.
    """
    return HandBack(f"adapter crashed: {type(error).__name__}")


def after_call(
    outcome: Outcome, record: AttemptRecord, plan: RetryPlan, target: str, now: float
) -> AfterCall:
    """The fate of a message after the adapter's ``outcome`` for attempt ``record.attempt``.

    A failure is added to the history the message carries on; a transient one goes to the
    next delay tier of ``plan``, unless the attempts or the age it allows are used up.
    """
    if isinstance(outcome, Delivered):
        return Record(outcome.reference)
    failed = record.failed(now, outcome.reason, target)
    if isinstance(outcome, PermanentFailure):
        return DeadLetter(Reason.REJECTED, outcome.reason, failed, outcome.reason, True)
    step = next_step(
        record,
        schedule=plan.schedule,
        max_attempts=plan.max_attempts,
        max_age=plan.max_age,
        now=now,
    )
    if isinstance(step, GiveUp):
        detail = f"{outcome.reason}; gave up: {step.why}"
        return DeadLetter(Reason.RETRIES_EXHAUSTED, detail, failed, outcome.reason)
    return RetryLater(step.seconds, failed, outcome.reason)
