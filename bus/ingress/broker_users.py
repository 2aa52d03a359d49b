"""The broker users senders.yaml asks for (``dvcbus broker users sync``): the bus's own,
the gateway's among them, and one per sender with an ``amqp_user``, which may publish to
the ingress exchange only and only its own message types."""

from __future__ import annotations

from bus.broker.permissions import BrokerUser, bus_users, sender_user
from bus.broker.topology import Names
from bus.errors import ConfigError
from bus.ingress.senders import SendersConfig


class UserClash(ConfigError):
    """Two users of the plan have one name: one would get the other's permissions."""


def plan_registry_users(
    names: Names, registry: SendersConfig | None, gateway_user: str
) -> list[BrokerUser]:
    """The bus's users, then each AMQP sender's (in senders.yaml's order)."""
    users = bus_users(names, gateway_user)
    taken = {u.name: u.role for u in users}
    senders = registry.senders.items() if registry is not None else ()
    for sid, sender in senders:
        if not sender.amqp_user:
            continue
        if sender.amqp_user in taken:
            raise UserClash(
                f"sender {sid!r}: amqp_user {sender.amqp_user!r} is the bus's "
                f"{taken[sender.amqp_user]} user: a sender needs a user of its own"
            )
        taken[sender.amqp_user] = f"sender {sid}"
        users.append(sender_user(names, sender.amqp_user, sender.types, f"sender {sid}"))
    return users
