"""Broker users and permissions through the management API: ``dvcbus broker setup`` applies
the plan of :mod:`bus.broker.permissions`, ``dvcbus broker check`` and every process at start
read back who else may write where the senders must not.

Passwords come from a reference template (setting ``broker_passwords``), never from the
command line, and are never printed: ``env:DVCBUS_BROKER_PASSWORD_{USER}`` reads
``DVCBUS_BROKER_PASSWORD_BUS_ROUTER`` for user ``bus-router``; ``file:/etc/dvcbus/{user}``
reads ``/etc/dvcbus/bus-router``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bus.broker.management import ManagementApi, quoted
from bus.broker.permissions import BrokerUser, TooWide, too_wide
from bus.broker.topology import Names, Topology
from bus.errors import ConfigError
from bus.routes.credentials import UnreadableReference, read_reference


class BrokerPasswordError(ConfigError):
    """A broker user's password reference cannot be resolved; names it, never a value."""


def password_for(template: str, user: str) -> str:
    """The password of ``user`` behind the ``broker_passwords`` reference template."""
    ref = template.replace("{USER}", re.sub(r"[^A-Z0-9]", "_", user.upper())).replace(
        "{user}", user
    )
    where = f"broker user {user!r}: password {ref}"
    try:
        return read_reference(ref)
    except UnreadableReference as exc:
        raise BrokerPasswordError(f"{where} {exc.why}") from None


@dataclass(frozen=True, slots=True)
class Applied:
    """One user as ``broker setup`` left it (what it says; never the password)."""

    user: BrokerUser
    created: bool

    def describe(self, vhost: str) -> str:
        p = self.user.permission
        verb = "created" if self.created else "updated"
        topics = "".join(f"  routing keys on {t.exchange}: {t.write}" for t in self.user.topics)
        return (
            f"{verb} {self.user.name} ({self.user.role}) on vhost {vhost}: "
            f"configure {p.configure}  write {p.write}  read {p.read}{topics}"
        )


def apply(api: ManagementApi, vhost: str, users: list[BrokerUser], passwords: str) -> list[Applied]:
    """Create or update each user and set its permissions on ``vhost``: no tags at all (so
    never ``impersonator``: a user may set only its own name as ``user_id``), and exactly
    the topic permissions planned (none planned: any left from before are removed).

    Every password is resolved before anything is changed, so a missing one changes nothing.
    """
    secrets = {u.name: password_for(passwords, u.name) for u in users}
    existing = {u["name"] for u in api.get("users")}
    done = []
    for user in users:
        at = f"{quoted(vhost)}/{quoted(user.name)}"
        api.put(f"users/{quoted(user.name)}", {"password": secrets[user.name], "tags": ""})
        api.put(f"permissions/{at}", user.permission.as_json())
        if user.topics:
            for topic in user.topics:
                api.put(f"topic-permissions/{at}", topic.as_json())
        else:
            api.delete(f"topic-permissions/{at}")
        done.append(Applied(user, user.name not in existing))
    return done


def administrators(users: list[dict[str, Any]]) -> set[str]:
    """Users tagged administrator (tags are a list, or a comma-separated string before 3.13)."""
    found = set()
    for user in users:
        tags = user.get("tags") or []
        if isinstance(tags, str):
            tags = tags.split(",")
        if "administrator" in (t.strip() for t in tags):
            found.add(user["name"])
    return found


def read_too_wide(
    api: ManagementApi, vhost: str, names: Names, topology: Topology
) -> list[TooWide]:
    """Users of ``vhost`` other than the bus's own that may write internal exchanges or queues."""
    permissions = api.get(f"vhosts/{quoted(vhost)}/permissions")
    return too_wide(names, topology, permissions, administrators(api.get("users")))
