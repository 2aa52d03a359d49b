"""Which sender sends each demo message, and by which way in (:func:`plan`).

Dossiers come from the portal over HTTP (``POST /v1/messages``, its bearer token); payment
confirmations from the payment platform over its native callback (its old v1 form over
HTTP); status updates from the province's own system by the way it uses (SOAP, AMQP as its
own RabbitMQ user, or HTTP). A few requests are ones a real gateway refuses: the portal with
a token rotated out, a province's system writing another province's source (the gateway
refuses it; over AMQP the router dead-letters it ``unauthorised``), a province's system
sending a payment confirmation. The traffic's own refusals (invalid, malformed, too large)
meet the gateway first and are refused there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from bus.demo.senders import AMQP, CALLBACK, HTTP, SOAP, DemoSender, DemoSenders
from bus.demo.traffic import PAYMENT_PLATFORM, Generated

FAMILY_OF_TYPE = {
    "dossier.submitted": "dossiers",
    "dossier.status_changed": "status updates",
    "payment.confirmed": "payments",
}
OLD_TOKEN_KIND = "dossier: the portal's rotated-out token"
FOREIGN_SOURCE_KIND = "status: another province's source"
# One in EVERY of the portal's dossiers and of the provinces' status updates (from the
# FIRST-th on, so that a short run has one of each too).
EVERY, FIRST = 100, 5
FOREIGN_WAYS = (AMQP, HTTP, SOAP)


@dataclass(frozen=True, slots=True)
class Planned:
    """One message, who sends it, how, and with what credentials."""

    kind: str
    family: str
    way: str
    sender: DemoSender
    body: bytes  # the canonical envelope as generated (SOAP and the callback are built from it)
    message_id: str
    token: str  # what it presents to the gateway (a rotated-out token for that case)
    chain: int | None = None  # a journey: sent in order, each after the previous answer


def plan(
    generated: list[Generated],
    senders: DemoSenders,
    journeys: Sequence[list[Generated]] = (),
) -> list[Planned]:
    """The demo's requests: ``generated`` in order, then each journey as one chain."""
    seen: Counter[str] = Counter()
    planned = [_one(g, senders, seen) for g in generated]
    for n, messages in enumerate(journeys):
        planned += [_with_chain(_one(g, senders, None), n) for g in messages]
    return planned


def _now_and_then(seen: Counter[str] | None, family: str) -> bool:
    """Whether this message of ``family`` is one of the few sent wrongly."""
    if seen is None:
        return False
    seen[family] += 1
    return seen[family] % EVERY == FIRST


def _with_chain(p: Planned, chain: int) -> Planned:
    return Planned(p.kind, p.family, p.way, p.sender, p.body, p.message_id, p.token, chain)


def _one(g: Generated, senders: DemoSenders, seen: Counter[str] | None) -> Planned:
    portal = senders.senders["portal"]
    try:
        doc = orjson.loads(g.body)
    except orjson.JSONDecodeError:  # broken JSON: the portal's, over HTTP
        return Planned(g.kind, "dossiers", HTTP, portal, g.body, g.message_id, portal.token)
    type_ = doc.get("type")
    family = FAMILY_OF_TYPE.get(type_, "dossiers")
    source = str(doc.get("source", ""))
    if type_ == "payment.confirmed":
        platform = senders.senders["payment"]
        if source != PAYMENT_PLATFORM:  # a province's system sends a confirmation
            sender = senders.of_agency(source.split("/", 1)[0])
            return Planned(g.kind, family, HTTP, sender, g.body, g.message_id, sender.token)
        way = CALLBACK if doc.get("version") == 2 else HTTP  # v1: its old integration
        return Planned(g.kind, family, way, platform, g.body, g.message_id, platform.token)
    if type_ == "dossier.status_changed":
        owner = senders.of_agency(source.split("/", 1)[0])
        if _now_and_then(seen, family):
            assert seen is not None
            # Over AMQP first (the router refuses it), then HTTP and SOAP (the gateway does).
            way = FOREIGN_WAYS[(seen[family] // EVERY) % len(FOREIGN_WAYS)]
            other = senders.neighbour_of(owner.agency, way)
            return Planned(
                FOREIGN_SOURCE_KIND, family, other.way, other, g.body, g.message_id, other.token
            )
        return Planned(g.kind, family, owner.way, owner, g.body, g.message_id, owner.token)
    if _now_and_then(seen, family):
        return Planned(OLD_TOKEN_KIND, family, HTTP, portal, g.body, g.message_id, "rotated-out")
    return Planned(g.kind, family, HTTP, portal, g.body, g.message_id, portal.token)


def amqp_users(planned: list[Planned]) -> set[str]:
    """The broker users the AMQP senders publish as."""
    return {p.sender.amqp_user for p in planned if p.way == AMQP and p.sender.amqp_user}
