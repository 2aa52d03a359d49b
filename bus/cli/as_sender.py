"""``--as SENDER`` of ``dvcbus send`` and ``dvcbus routes explain``: acting as a registered
sender, with its own broker user, the way its system would."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from bus.app import Loaded
    from bus.broker.sending import SendResult
    from bus.routing.identity import Verdict


def sender_url(loaded: Loaded, sender_id: str) -> str:
    """amqp_url with a registered sender's broker user and its password (broker_passwords),
    on every node of the list."""
    from urllib.parse import quote, urlsplit, urlunsplit

    from bus.broker.access import password_for
    from bus.broker.nodes import node_urls

    user = amqp_user_of(loaded, sender_id)
    password = password_for(loaded.settings.broker_passwords, user)
    urls = []
    for node in node_urls(loaded.settings.amqp_url):
        parts = urlsplit(node)
        host = parts.hostname or "127.0.0.1"
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
        if parts.port:
            netloc += f":{parts.port}"
        urls.append(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))
    return ",".join(urls)


def amqp_user_of(loaded: Loaded, sender_id: str) -> str:
    """The broker user of a senders.yaml sender; a click error naming what is missing."""
    registry = loaded.senders
    sender = registry.sender(sender_id) if registry is not None else None
    if sender is None:
        known = ", ".join(sorted(registry.senders)) if registry is not None else "no senders.yaml"
        raise click.ClickException(f"no sender {sender_id!r} in senders.yaml ({known})")
    if not sender.amqp_user:
        raise click.ClickException(
            f"sender {sender_id!r} has no amqp_user in senders.yaml: it cannot publish over AMQP"
        )
    return sender.amqp_user


def identify_as(loaded: Loaded, sender_id: str) -> Verdict:
    """The router's verdict on a message sent by ``sender_id``: published as its broker
    user when it has one, else through the gateway."""
    from bus import app
    from bus.broker.wire import Header

    identities = app.identities(loaded)
    assert identities is not None
    sender = loaded.senders.sender(sender_id) if loaded.senders is not None else None
    if sender is not None and not sender.amqp_user:
        return identities.identify(identities.gateway_user, {Header.SENDER.value: sender_id})
    return identities.identify(amqp_user_of(loaded, sender_id), None)


def send_for_claimants(loaded: Loaded, bodies: list[bytes]) -> list[SendResult]:
    """Publish messages an operator's tool makes for their sender (a reconciled payment for
    the platform): each names, in ``x-dvcbus-sender``, the registered sender that may claim
    its type and source. The router trusts that header from the operators' user only;
    published as any other user, the message is judged by that user's ``user_id``."""
    import asyncio

    import orjson

    from bus.broker.sending import send_bodies
    from bus.broker.wire import Header
    from bus.routing.identity import claimant

    groups: dict[str | None, list[int]] = {}
    for i, body in enumerate(bodies):
        doc = orjson.loads(body)
        groups.setdefault(claimant(loaded.senders, doc["type"], doc["source"]), []).append(i)
    results: list[SendResult | None] = [None] * len(bodies)
    for sender, indexes in groups.items():
        headers = {Header.SENDER.value: sender} if sender else None
        batch = [bodies[i] for i in indexes]
        sent = asyncio.run(
            send_bodies(loaded.settings.amqp_url, loaded.names, batch, headers=headers)
        )
        for i, result in zip(indexes, sent, strict=True):
            results[i] = result
    return [r for r in results if r is not None]
