"""``dvcbus broker``: the broker users and permissions that keep senders out of the bus's
internal exchanges (``setup``), and who else could still write there (``check``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bus.cli.common import Ctx, console, err_console, load_or_exit

if TYPE_CHECKING:
    from bus.app import Loaded
    from bus.broker.management import ManagementApi
    from bus.broker.permissions import TooWide


def _vhost(loaded: Loaded) -> str:
    import pika

    from bus.broker.nodes import first_url

    return str(pika.URLParameters(first_url(loaded.settings.amqp_url)).virtual_host)


def _api(loaded: Loaded) -> ManagementApi:
    from bus.broker.management import ManagementApi

    if not loaded.settings.management_url:
        raise click.ClickException("management_url is empty: the management API is needed here")
    return ManagementApi(loaded.settings.management_url)


@click.group()
def broker() -> None:
    """Broker users and permissions of this namespace."""


@broker.command("setup")
@click.option(
    "--sender",
    "senders",
    multiple=True,
    metavar="NAME",
    help="Also a sender's user, which may write to the ingress exchange only (repeatable).",
)
@click.pass_obj
def setup(obj: Ctx, senders: tuple[str, ...]) -> None:
    """Create or update the bus's own users ({namespace}-router, -dispatcher, -cli,
    -gateway) and the senders' users, with their permissions on the vhost of amqp_url.

    Idempotent: run it again after adding a sender. Passwords come from the
    broker_passwords setting (env:/file: references), never from the command line, and are
    never printed. Connecting the processes as these users is a matter of their amqp_url.
    """
    from bus.broker import access
    from bus.broker.management import ManagementUnavailable
    from bus.broker.permissions import plan_users

    loaded = load_or_exit(obj.settings())
    api = _api(loaded)
    vhost = _vhost(loaded)
    users = plan_users(loaded.names, senders, loaded.settings.gateway_user)
    try:
        applied = access.apply(api, vhost, users, loaded.settings.broker_passwords)
    except ManagementUnavailable as exc:
        raise click.ClickException(f"cannot set up the broker's users: {exc}") from None
    for done in applied:
        console.print(done.describe(vhost), markup=False, soft_wrap=True)


@broker.group("users")
def users() -> None:
    """The broker users senders.yaml and the bus need."""


@users.command("sync")
@click.pass_obj
def users_sync(obj: Ctx) -> None:
    """Create or update the bus's own users (router, dispatcher, operators' CLI, gateway) and
    one user per sender with an amqp_user in senders.yaml, on the vhost of amqp_url.

    A sender's user may publish to the ingress exchange and nothing else, and only with its
    own message types as routing key (a topic permission). No user gets a tag, so none may
    impersonate another (user_id is what the router trusts). Passwords come from the
    broker_passwords setting, never from the command line, and are never printed. Users no
    longer in senders.yaml are left alone: delete them with rabbitmqctl.
    """
    from bus.broker import access
    from bus.broker.management import ManagementUnavailable
    from bus.ingress.broker_users import plan_registry_users

    loaded = load_or_exit(obj.settings())
    if loaded.senders is None:
        raise click.ClickException(f"no senders.yaml at {loaded.settings.senders_path}")
    api = _api(loaded)
    vhost = _vhost(loaded)
    planned = plan_registry_users(loaded.names, loaded.senders, loaded.settings.gateway_user)
    try:
        applied = access.apply(api, vhost, planned, loaded.settings.broker_passwords)
    except ManagementUnavailable as exc:
        raise click.ClickException(f"cannot set up the broker's users: {exc}") from None
    for done in applied:
        console.print(done.describe(vhost), markup=False, soft_wrap=True)


@broker.command("check")
@click.pass_obj
def check(obj: Ctx) -> None:
    """Name every user other than the bus's own that may write the namespace's delivery,
    retry or dead-letter exchanges (or the queues behind them, or the default exchange).

    Exit code 1 if there is one; administrators (the broker lets them grant themselves
    anything) are warnings only.
    """
    from bus.broker import access
    from bus.broker.management import ManagementUnavailable

    loaded = load_or_exit(obj.settings())
    try:
        found = access.read_too_wide(_api(loaded), _vhost(loaded), loaded.names, loaded.topology)
    except ManagementUnavailable as exc:
        raise click.ClickException(f"cannot read the broker's permissions: {exc}") from None
    for line in describe(found):
        console.print(line, markup=False, soft_wrap=True)
    if any(not t.administrator for t in found):
        raise SystemExit(1)
    if not found:
        console.print(
            f"no user but the bus's own may write the internals of {loaded.names.namespace}"
        )


def describe(found: list[TooWide]) -> list[str]:
    """One line per user: "warning:" for an administrator, "too wide:" for anyone else."""
    return [("warning: " if t.administrator else "too wide: ") + t.describe() for t in found]


def check_at_start(loaded: Loaded) -> None:
    """Before a process starts: warn about (or, with ``permission_check = "refuse"``, refuse
    to start beside) users that may write the bus's internal exchanges."""
    import structlog

    from bus.broker import access
    from bus.broker.management import ManagementApi, ManagementUnavailable

    settings = loaded.settings
    if not settings.management_url:
        return
    log = structlog.get_logger("bus.broker")
    try:
        api = ManagementApi(settings.management_url)
        found = access.read_too_wide(api, _vhost(loaded), loaded.names, loaded.topology)
    except ManagementUnavailable as exc:
        # The policy check ran just before on the same API: it has refused already, or the
        # operator chose to start without the API.
        log.warning("broker.permissions_not_checked", error=str(exc))
        return
    if not found:
        return
    refused = [t for t in found if not t.administrator]
    if settings.permission_check == "refuse" and refused:
        for line in describe(found):
            err_console.print(f"unsafe broker: {line}", markup=False, soft_wrap=True)
        err_console.print(
            "refusing to start: only the bus's own users may write its internal exchanges "
            "(dvcbus broker setup; permission_check)",
            markup=False,
            soft_wrap=True,
        )
        raise SystemExit(2)
    log.warning(
        "broker.permissions_too_wide",
        users=[t.user for t in found],
        detail=describe(found),
        check=settings.permission_check,
    )


COMMANDS = [broker]
