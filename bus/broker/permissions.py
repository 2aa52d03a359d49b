"""Who may publish where on the broker: the users and permissions of one namespace, planned
here, applied through the management API, and checked before a process starts.

Only bus processes may write to the delivery, retry and dead-letter exchanges; a sender may
write to the ingress exchange and nothing else (configure nothing, read nothing). RabbitMQ
checks a regex per user and vhost for each of configure, write and read, over exchange and
queue names alike:

    role        configure        write                             read
    router      the namespace    the namespace                     the namespace
    dispatcher  the namespace    the namespace                     the namespace
    cli         nothing          ingress, deliver, dead exchanges  nothing
    gateway     nothing          the ingress exchange              nothing
    sender      nothing          the ingress exchange              nothing

A registered sender's user (senders.yaml ``amqp_user``) also gets a topic permission on the
ingress exchange, whose routing key is the message type: it may publish its own types only.

Router and dispatcher declare the whole topology at start and on a routes reload, and
RabbitMQ asks more of a declaration than its name: read on a queue and write on its
dead-letter exchange, read on an exchange and write on its alternate exchange, write on a
queue and read on the exchange it is bound to. Every internal name is in one of those, so
both need the namespace (and nothing outside it: not even the default exchange, which
reaches every queue by name). The operators' CLI declares nothing: it sends (ingress),
replays (deliver, ingress) and parks what it cannot replay (dead).

The roles are data (:data:`BUS_ROLES`); ``dvcbus broker users sync`` adds one sender per
registered AMQP sender through :func:`sender_user`. No user is ever given a tag (not
``impersonator``): each may set only its own name as ``user_id``, which is what the router
trusts (``bus.routing.identity``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bus.broker.topology import Names, Topology

NOTHING = "^$"
DEFAULT_EXCHANGE = "amq.default"  # the nameless exchange, as RabbitMQ's permissions name it


@dataclass(frozen=True, slots=True)
class Permission:
    """RabbitMQ's three regexes for one user on one vhost."""

    configure: str
    write: str
    read: str

    def as_json(self) -> dict[str, str]:
        return {"configure": self.configure, "write": self.write, "read": self.read}


@dataclass(frozen=True, slots=True)
class TopicPermission:
    """What routing keys a user may publish with on one topic exchange."""

    exchange: str
    write: str
    read: str = NOTHING

    def as_json(self) -> dict[str, str]:
        return {"exchange": self.exchange, "write": self.write, "read": self.read}


@dataclass(frozen=True, slots=True)
class BrokerUser:
    """A RabbitMQ user the bus wants, with the role it plays and what that lets it do."""

    name: str
    role: str
    permission: Permission
    topics: tuple[TopicPermission, ...] = ()


def _exactly(*names: str) -> str:
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


def namespace_pattern(names: Names) -> str:
    """Every exchange and queue of the namespace, and nothing else."""
    ns = re.escape(names.namespace)
    return rf"^{ns}\.(ingress|deliver|unrouted|dead|(deliver|retry)\..+)$"


def _declares(names: Names) -> Permission:
    everything = namespace_pattern(names)
    return Permission(everything, everything, everything)


def _operates(names: Names) -> Permission:
    return Permission(
        NOTHING, _exactly(names.ingress_exchange, names.deliver_exchange, names.dead_exchange),
        NOTHING,
    )  # fmt: skip


def _sends(names: Names) -> Permission:
    return Permission(NOTHING, _exactly(names.ingress_exchange), NOTHING)


# role -> its permissions in a namespace. The bus's own users are named {namespace}-{role}
# (the gateway's may be named otherwise: setting gateway_broker_user).
BUS_ROLES = {"router": _declares, "dispatcher": _declares, "cli": _operates, "gateway": _sends}
# The roles that write the internal exchanges: the check leaves them out.
INTERNAL_WRITERS = ("router", "dispatcher", "cli")
SENDER_ROLE = "sender"


def bus_user_name(names: Names, role: str) -> str:
    return f"{names.namespace}-{role}"


def bus_users(names: Names, gateway_user: str | None = None) -> list[BrokerUser]:
    """The bus's own users of a namespace (``gateway_user``: the gateway's, if not the usual)."""
    named = {"gateway": gateway_user} if gateway_user else {}
    return [
        BrokerUser(named.get(role) or bus_user_name(names, role), role, permission(names))
        for role, permission in BUS_ROLES.items()
    ]


def sender_user(
    names: Names, sender: str, types: Iterable[str] | None = None, role: str = SENDER_ROLE
) -> BrokerUser:
    """A sender's user: it may publish to the namespace's ingress exchange, nothing more;
    with ``types``, only with those routing keys (the ingress routing key is the type)."""
    topics = ()
    if types is not None:
        topics = (TopicPermission(names.ingress_exchange, _exactly(*sorted(types))),)
    return BrokerUser(sender, role, _sends(names), topics)


def plan_users(
    names: Names, senders: Iterable[str] = (), gateway_user: str | None = None
) -> list[BrokerUser]:
    """Every user ``dvcbus broker setup`` creates or updates for a namespace."""
    return [*bus_users(names, gateway_user), *(sender_user(names, s) for s in senders)]


# --- the check -------------------------------------------------------------------------------


def internal_names(names: Names, topology: Topology) -> list[str]:
    """What no sender may write: the internal exchanges, the queues they feed (write on a
    queue lets a user bind it to an exchange it can publish to) and the default exchange
    (it reaches every queue by name)."""
    exchanges = [e.name for e in topology.exchanges if e.name != names.ingress_exchange]
    queues = [q.name for q in topology.queues if q.name != names.ingress_queue]
    return [DEFAULT_EXCHANGE, *sorted({*exchanges, *queues})]


@dataclass(frozen=True, slots=True)
class TooWide:
    """A user other than the bus's own that may write (or reconfigure) internal names."""

    user: str
    administrator: bool  # the broker lets it grant itself anything: a warning, not a refusal
    writes: tuple[str, ...]
    configures: tuple[str, ...]

    def describe(self) -> str:
        parts = []
        if self.writes:
            parts.append("may write " + _short(self.writes))
        if self.configures:
            parts.append("may delete or re-declare " + _short(self.configures))
        who = f"{self.user} (administrator)" if self.administrator else self.user
        return f"{who}: " + "; ".join(parts)


def too_wide(
    names: Names,
    topology: Topology,
    permissions: Sequence[dict[str, str]],
    administrators: set[str],
) -> list[TooWide]:
    """Users of the vhost (other than the namespace's bus users) that could get a message to
    an agency without the router: ``permissions`` as the management API lists them."""
    ours = {bus_user_name(names, role) for role in INTERNAL_WRITERS}
    internal = internal_names(names, topology)
    found = []
    for entry in permissions:
        user = entry["user"]
        if user in ours:
            continue
        writes = _matching(entry.get("write", ""), internal)
        configures = _matching(entry.get("configure", ""), internal[1:])
        if writes or configures:
            found.append(TooWide(user, user in administrators, writes, configures))
    return sorted(found, key=lambda t: (t.administrator, t.user))


def _short(names: tuple[str, ...]) -> str:
    """Names for a line: a family of three or more (``bus.deliver.*``) as one entry."""
    families: dict[str, list[str]] = {}
    for name in names:
        family = name.rsplit(".", 1)[0] + ".*" if name.count(".") >= 2 else name
        families.setdefault(family, []).append(name)
    shown = []
    for family, members in families.items():
        if len(members) >= 3:
            shown.append(f"{family} ({len(members)})")
        else:
            shown.extend(members)
    return ", ".join(shown)


def _matching(pattern: str, candidates: list[str]) -> tuple[str, ...]:
    if not pattern:
        return ()
    try:
        regex = re.compile(pattern)
    except re.error:  # Erlang's regex dialect; one Python cannot read is shown whole
        return (f"(unreadable pattern {pattern!r})",)
    return tuple(name for name in candidates if regex.search(name))
