"""Where a message is, as ``GET /v1/messages/{id}`` tells its sender.

Read from the audit trail (every hop: routed, delivered, retried, dead-lettered, replayed)
and the store's final outcomes, which are written before a delivery is acked and may be
ahead of the audit trail (written in batches). Reasons and details are the audit trail's,
masked like the logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from bus.observability.audit import AuditRecord
from bus.store import Submission

FINAL = {"delivered", "superseded", "dead_lettered"}
# A hop of the dispatcher (or an operator) and what it says of the copy for its target.
_TARGET_STATE = {
    "delivered": "delivered",
    "duplicate_suppressed": "delivered",
    "superseded": "superseded",
    "retried": "retrying",
    "deferred": "waiting",  # the target's circuit is open: not attempted yet
    "dead_lettered": "dead_lettered",
    "replayed": "replayed",
}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def message_status(
    submission: Submission,
    records: Sequence[AuditRecord],
    deliveries: Sequence[tuple[str, str, float, int]],
    dead_letters: Sequence[tuple[str | None, str, str, str, float]] = (),
    mask: Callable[[str], str] = str,
) -> dict[str, Any]:
    """The JSON a sender gets for one of its messages.

    ``dead_letters`` (the store's, by message id) stand in for a router refusal the audit
    trail cannot be searched for: a refused message's id is masked there like free text.
    """
    view: dict[str, Any] = {
        "id": submission.message_id,
        "type": submission.message_type,
        "accepted_at": iso(submission.accepted_at),
        "state": "accepted",  # the broker holds it; the router has not said more yet
    }
    targets: dict[str, dict[str, Any]] = {}
    router: dict[str, Any] | None = None
    for r in records:
        if r.stage == "router" and r.event in ("routed", "dead_lettered"):
            router = {"event": r.event, "at": iso(r.at)}
            if r.event == "dead_lettered":
                router.update(reason=r.reason, detail=r.detail)
            for name in (r.target or "").split(","):
                if name and r.event == "routed":
                    targets.setdefault(name, {"state": "routed", "at": iso(r.at)})
        elif r.stage in ("dispatcher", "operator") and r.target in targets:
            state = _TARGET_STATE.get(r.event)
            if state is None:
                continue
            entry: dict[str, Any] = {"state": state, "at": iso(r.at), "attempt": r.attempt}
            if r.reason:
                entry["reason"] = r.reason
            if r.detail and state in ("retrying", "dead_lettered"):
                entry["detail"] = r.detail
            targets[r.target] = entry
    for target, stage, reason, detail, at in dead_letters:
        if target is None and stage == "router" and router is None:
            router = {"event": "dead_lettered", "at": iso(at), "reason": reason}
            router["detail"] = mask(detail)
    for target, outcome, at, attempts in deliveries:
        known = targets.get(target, {})
        if known.get("state") != outcome:  # the store is ahead of the audit trail
            targets[target] = {"state": outcome, "at": iso(at), "attempt": attempts}
    if router is not None:
        view["router"] = router
    if targets:
        view["targets"] = dict(sorted(targets.items()))
    view["state"] = _overall(router, targets)
    return view


def _overall(router: dict[str, Any] | None, targets: dict[str, dict[str, Any]]) -> str:
    if router is None:
        # Deliveries without the router's hop: the audit trail lags the store. Which targets
        # the message went to is not known yet, so it cannot be called delivered.
        return "routed" if targets else "accepted"
    if router["event"] == "dead_lettered":
        return "dead_lettered"
    if not targets:
        return "routed"
    states = {t["state"] for t in targets.values()}
    if states <= {"delivered", "superseded"}:
        return "delivered"
    if "dead_lettered" in states:
        return "dead_lettered"  # at least one target: see targets
    if "retrying" in states or "waiting" in states:
        return "retrying"
    return "routed"
