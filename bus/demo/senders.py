"""The demo's senders: who sends its traffic, which way each comes in, and their credentials.

The demo sends as the real senders would (docs/ingress.md): the portal over HTTP, the payment
platform over its native callback, and each province's one-stop system by one of the ways
agencies use — SOAP, AMQP as its own RabbitMQ user, or HTTP. Every credential is made up for
this run (``secrets``): the senders.yaml written into the demo's temporary folder holds only
the tokens' SHA-256, and the broker users' passwords are files there, read through the
``broker_passwords`` reference template. Nothing secret is in the repository.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from bus.broker.nodes import first_url, with_user
from bus.broker.permissions import bus_user_name
from bus.broker.topology import Names
from bus.demo.traffic import PAYMENT_PLATFORM, PORTAL, PROVINCE_AGENCY

HTTP, SOAP, AMQP, CALLBACK = "HTTP", "SOAP", "AMQP", "callback"
WAYS = (HTTP, SOAP, AMQP, CALLBACK)
# Which way each province's system uses: the SOAP-era one-stop systems (Hà Nội's among
# them) over SOAP, a few with their own AMQP client (TP Hồ Chí Minh's), the rest over HTTP.
SOAP_AGENCIES = frozenset({"000.00.00.H26", "000.00.00.H31", "000.00.00.H38", "000.00.00.H40"})
AMQP_AGENCIES = frozenset({"000.00.00.H29", "000.00.00.H48", "000.00.00.H92"})
STATUS = "dossier.status_changed"
RATE = "5000/s"  # high enough that the demo's bursts are not rate limited


@dataclass(frozen=True, slots=True)
class DemoSender:
    """One registered sender of the demo and how its system reaches the bus."""

    id: str
    agency: str
    sources: tuple[str, ...]
    types: tuple[str, ...]
    way: str
    token: str = field(repr=False)
    amqp_user: str | None = None

    def entry(self) -> str:
        """Its senders.yaml entry: the token by its SHA-256 only."""
        digest = hashlib.sha256(self.token.encode()).hexdigest()
        sources = ", ".join(f'"{s}"' for s in self.sources)
        lines = [
            f"  {self.id}:",
            f"    agencies: [{self.agency}]",
            f"    sources: [{sources}]",
            f"    types: [{', '.join(self.types)}]",
            f"    auth: {{ bearer: [sha256:{digest}] }}",
            f"    rate_limit: {RATE}",
        ]
        if self.amqp_user:
            lines.append(f"    amqp_user: {self.amqp_user}")
        return "\n".join(lines)


class DemoSenders:
    """The portal, the payment platform and one sender per province, for one namespace."""

    def __init__(self, names: Names) -> None:
        self.names = names
        ns = names.namespace
        agencies = [
            DemoSender(
                "portal", "000.00.00.G22", (PORTAL,), ("dossier.submitted",), HTTP, _token()
            ),
            DemoSender(
                "payment", "000.00.00.G22", (PAYMENT_PLATFORM,), ("payment.confirmed",),
                CALLBACK, _token(),
            ),
        ]  # fmt: skip
        for agency in sorted(set(PROVINCE_AGENCY.values())):
            suffix = agency.rsplit(".", 1)[1].lower()
            way = SOAP if agency in SOAP_AGENCIES else AMQP if agency in AMQP_AGENCIES else HTTP
            user = f"{ns}-sender-{suffix}" if way == AMQP else None
            agencies.append(
                DemoSender(
                    f"agency-{suffix}", agency, (agency, f"{agency}/*"), (STATUS,), way,
                    _token(), user,
                )
            )  # fmt: skip
        self.senders = {s.id: s for s in agencies}
        self._by_agency = {s.agency: s for s in agencies if s.types == (STATUS,)}
        users = [bus_user_name(names, r) for r in ("router", "dispatcher", "cli", "gateway")]
        users += [s.amqp_user for s in agencies if s.amqp_user]
        self.passwords = {user: secrets.token_urlsafe(18) for user in users}

    def of_agency(self, agency: str) -> DemoSender:
        """The system sending ``agency``'s status updates."""
        return self._by_agency[agency]

    def neighbour_of(self, agency: str, way: str | None = None) -> DemoSender:
        """Another province's system (the next in order, of those sending by ``way``): for
        a source it may not claim."""
        ordered = sorted(self._by_agency)
        start = ordered.index(agency)
        for step in range(1, len(ordered)):
            other = self._by_agency[ordered[(start + step) % len(ordered)]]
            if way is None or other.way == way:
                return other
        raise LookupError(f"no other province's system sends by {way}")

    def registry_text(self) -> str:
        """The demo's senders.yaml: deny by default, tokens by SHA-256 only."""
        head = "# The demo's senders (made up for this run; tokens by SHA-256 only).\nversion: 1\n"
        return head + "senders:\n" + "\n".join(s.entry() for s in self.senders.values()) + "\n"

    def write(self, folder: Path) -> tuple[Path, str]:
        """Write senders.yaml and one password file per broker user (mode 600) into
        ``folder``; return the senders file and the ``broker_passwords`` template."""
        senders_file = folder / "senders.yaml"
        senders_file.write_text(self.registry_text(), encoding="utf-8")
        secrets_dir = folder / "broker-passwords"
        secrets_dir.mkdir(mode=0o700, exist_ok=True)
        for user, password in self.passwords.items():
            path = secrets_dir / user
            path.touch(mode=0o600)
            path.write_text(password, encoding="utf-8")
        return senders_file, f"file:{secrets_dir}/{{user}}"

    def url(self, amqp_url: str, user: str) -> str:
        """``amqp_url`` (one node or a cluster's list) connecting as one of the demo's users."""
        return with_user(amqp_url, user, self.passwords[user])

    def bus_url(self, amqp_url: str, role: str) -> str:
        """``amqp_url`` as the namespace's own user for ``role`` (router, dispatcher, …)."""
        return self.url(amqp_url, bus_user_name(self.names, role))


def _token() -> str:
    return secrets.token_urlsafe(24)


@contextmanager
def broker_users(
    management_url: str,
    amqp_url: str,
    senders: DemoSenders,
    senders_file: Path,
    passwords: str,
    gateway_user: str,
) -> Iterator[list[str]]:
    """The namespace's own users and the AMQP senders' (``broker users sync``'s plan and
    code), for the demo's run; deleted afterwards, as users are node-wide."""
    import pika

    from bus.broker.access import apply
    from bus.broker.management import ManagementApi, ManagementUnavailable, quoted
    from bus.ingress.broker_users import plan_registry_users
    from bus.ingress.senders import load_senders

    if not management_url:
        raise SystemExit(
            "the demo makes its broker users through the management API: management_url is empty"
        )
    api = ManagementApi(management_url)
    vhost = str(pika.URLParameters(first_url(amqp_url)).virtual_host)
    planned = plan_registry_users(senders.names, load_senders(senders_file), gateway_user)
    # Every planned name is this run's (it starts with the namespace's), so all are removed
    # afterwards, even if the management API failed halfway through making them.
    ours = [u.name for u in planned if u.name.startswith(f"{senders.names.namespace}-")]
    try:
        try:
            apply(api, vhost, planned, passwords)
        except ManagementUnavailable as exc:
            raise SystemExit(f"cannot make the demo's broker users: {exc}") from None
        yield ours
    finally:
        for name in ours:
            with suppress(Exception):
                api.delete(f"users/{quoted(name)}")
