"""What ``dvcbus routes explain`` can say about a status update's lifecycle check.

The dispatcher checks a status against the last one the bus delivered for the dossier to
each target (``bus.delivery.steps.screen_status``); explain has no delivery history, so it
judges the step the message itself declares (``previous_status`` → ``status``) and says, per
target, what would become of a late status and of an impossible step.
"""

from __future__ import annotations

from typing import Any

from bus.routes.lifecycle import Lifecycle
from bus.routes.model import RoutesConfig
from bus.routes.table import Explanation


def status_lines(
    lifecycle: Lifecycle, routes: RoutesConfig, explanation: Explanation, payload: dict[str, Any]
) -> tuple[str, ...]:
    """One line per fact, prefixed ``statuses:``, for the explanation's checks."""
    new, previous = payload.get("status"), payload.get("previous_status")
    lines = [
        "statuses: no delivery history here: the dispatcher checks the step from the last "
        f"status the bus delivered for dossier {payload.get('dossier_no')} to each target"
    ]
    if previous is None:
        lines.append(f"statuses: {lifecycle.name(new)}; the message names no previous status")
    else:
        lines.append(f"statuses: as the message declares it, {lifecycle.verdict(previous, new)}")
    forwarding = {r.name for r in routes.routes if r.on_invalid_transition == "forward"}
    by_route = bool(forwarding & set(explanation.routes))
    for name in explanation.targets:
        target = routes.targets[name]
        if target.statuses == "history":
            late = "delivered flagged as history"
        else:
            late = "superseded (it keeps the current state only)"
        if by_route:
            invalid = "forwarded flagged (the route says on_invalid_transition: forward)"
        elif target.on_invalid_transition == "forward":
            invalid = "forwarded flagged (the target says on_invalid_transition: forward)"
        else:
            invalid = "dead-lettered invalid_transition"
        lines.append(
            f"statuses: {name} keeps {target.statuses}: a late status is {late}; an "
            f"impossible step is {invalid}"
        )
    return tuple(lines)
