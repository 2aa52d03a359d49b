"""Refuse to start on a broker whose policies could drop the bus's messages.

Queue arguments are the bus's own (a live queue declared with other arguments already stops
a process at declaration). Policies are the operator's: a policy matching a bus queue can
add a length limit that drops the oldest messages, a TTL or a delivery limit with nowhere
to dead-letter to, or make a queue expire. Before starting, the bus reads the policies
through the management API, works out what each of its queues would really get, and
refuses to start with the reasons if any of them could lose a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bus.broker.management import ManagementApi, ManagementUnavailable, quoted
from bus.broker.topology import Topology
from bus.errors import BrokerError

_LIMITS = ("max-length", "max-length-bytes", "delivery-limit", "message-ttl", "expires")


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    pattern: str
    apply_to: str
    priority: int
    definition: dict[str, Any]


class PolicyCheckUnavailable(BrokerError):
    """The management API could not be asked; the check did not run."""


def fetch_policies(management_url: str, vhost: str = "/") -> tuple[list[Policy], list[Policy]]:
    """(user policies, operator policies) of a vhost, from the management HTTP API."""
    api = ManagementApi(management_url)
    found = []
    for kind in ("policies", "operator-policies"):
        try:
            items = api.get(f"{kind}/{quoted(vhost)}")
        except ManagementUnavailable as exc:
            raise PolicyCheckUnavailable(str(exc)) from None
        found.append(
            [
                Policy(
                    p["name"],
                    p["pattern"],
                    p.get("apply-to", "all"),
                    int(p.get("priority", 0)),
                    p.get("definition", {}),
                )
                for p in items
            ]
        )
    return found[0], found[1]


def _applies(policy: Policy, queue: str) -> bool:
    return policy.apply_to in ("all", "queues", "quorum_queues") and bool(
        re.search(policy.pattern, queue)
    )


def effective(
    arguments: dict[str, Any], user: Policy | None, operator: Policy | None
) -> dict[str, Any]:
    """What a queue really gets: its arguments, then the policy where it sets nothing, with
    the operator policy's limits winning when they are stricter (as RabbitMQ does)."""
    result = {k.removeprefix("x-"): v for k, v in arguments.items()}
    for key, value in (user.definition if user else {}).items():
        if key in _LIMITS and key in result:
            result[key] = min(result[key], value)
        else:
            result.setdefault(key, value)
    for key, value in (operator.definition if operator else {}).items():
        if key in result and key in _LIMITS:
            result[key] = min(result[key], value)
        else:
            result.setdefault(key, value)
    return result


def risks(settings: dict[str, Any]) -> list[str]:
    """Ways a queue with these effective settings could lose a message."""
    found = []
    dlx = settings.get("dead-letter-exchange")
    if "expires" in settings:
        found.append(
            f"expires after {settings['expires']} ms unused: the queue and its messages vanish"
        )
    if ("max-length" in settings or "max-length-bytes" in settings) and settings.get(
        "overflow", "drop-head"
    ) not in ("reject-publish", "reject-publish-dlx"):
        found.append("a length limit with overflow drop-head: the oldest messages are dropped")
    if "delivery-limit" in settings and not dlx:
        found.append("a delivery limit with no dead-letter exchange: poison messages are dropped")
    if "message-ttl" in settings and not dlx:
        found.append("a message TTL with no dead-letter exchange: expired messages are dropped")
    dead_letters = any(k in settings for k in (*_LIMITS[:4],))
    if (
        dlx
        and dead_letters
        and settings.get("dead-letter-strategy", "at-most-once") != "at-least-once"
    ):
        found.append("at-most-once dead-lettering: a dead letter can be lost on the way")
    return found


def _strongest(policies: list[Policy], queue: str) -> Policy | None:
    """The one policy RabbitMQ applies to a queue: the highest-priority match."""
    matching = [p for p in policies if _applies(p, queue)]
    return max(matching, key=lambda p: p.priority, default=None)


def check(topology: Topology, user: list[Policy], operator: list[Policy]) -> list[str]:
    """Every risk for every bus queue, as sentences naming the queue and the policy."""
    problems = []
    for queue in topology.queues:
        u, o = _strongest(user, queue.name), _strongest(operator, queue.name)
        for risk in risks(effective(queue.arguments, u, o)):
            via = ", ".join(
                f"{kind} {p.name!r}" for kind, p in (("policy", u), ("operator policy", o)) if p
            )
            problems.append(f"queue {queue.name}: {risk}" + (f" (from {via})" if via else ""))
    return problems
