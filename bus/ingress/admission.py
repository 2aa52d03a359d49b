"""The gateway's steps once a way in holds a canonical envelope: the same for every way in.

``POST /v1/messages`` receives the envelope as the sender wrote it; the SOAP endpoint and the
payment platform's callback build it from the sender's own form first. From there every way
in takes the same steps, the gateway's own, in the same order, so a message has the same
guarantees whichever way it came: Idempotency-Key → schemas (with the JSON paths) → the
sender's claims → the message id is this message's → publish, confirmed and mandatory →
remember who sent it → one hop (logs, metrics, audit trail) before the answer is sent.
Each step raises :class:`~bus.ingress.refusals.Refused` with its reason; the way in turns
it into its own answer (problem+json, a SOAP fault, the platform's result code).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bus.ingress.publishing import BrokerUnavailable
from bus.ingress.refusals import Refusal, Refused
from bus.observability.hops import Event

if TYPE_CHECKING:
    from bus.ingress.gateway import Gateway, _Post


@dataclass(frozen=True, slots=True)
class Admitted:
    """The broker holds the message ``message_id`` (``again``: it did already, for this key)."""

    message_id: str
    again: bool = False


class Admission:
    """Admits canonical envelopes through a :class:`Gateway`'s steps for another way in."""

    def __init__(self, gateway: Gateway, way: str) -> None:
        self.gateway = gateway
        self.way = way  # "soap", "payment callback": named in each hop's detail

    def authenticated(self, post: _Post, sender: str) -> None:
        """Note the sender and apply its rate limit (429)."""
        post.sender = sender
        wait = self.gateway.limits.admit(sender)
        if wait:
            raise Refused(
                Refusal.RATE_LIMITED, f"sender {sender} is above its rate", retry_after=wait
            )

    async def admit(self, post: _Post, envelope: bytes) -> Admitted:
        """Take ``envelope`` (the bytes that will be published) through the gateway's steps.

        ``post.sender`` is authenticated and ``post.key`` set (or None) already.
        """
        gw = self.gateway
        assert post.sender is not None
        post.body = envelope
        post.digest = hashlib.sha256(envelope).digest()
        if post.key is not None:
            again = await gw._claim_key(post)
            if again is not None:  # the first answer, hop emitted; nothing published
                assert post.message_id is not None
                return Admitted(post.message_id, again=True)
        doc, type_ = gw._validate(envelope, post)
        gw._check_claims(post.sender, doc, type_)
        message_id = doc["id"]
        await gw._check_id_is_ours(post, message_id)
        try:
            await gw.publisher.publish(envelope, message_id, type_, post.sender)
        except BrokerUnavailable as exc:
            raise Refused(
                Refusal.BROKER_UNAVAILABLE, exc.why, retry_after=gw.settings.gateway_retry_after
            ) from None
        await gw._remember(post, message_id, type_)
        gw._hop(Event.ACCEPTED, post, detail=f"via {self.way}")
        return Admitted(message_id)

    def refused(self, post: _Post, refused: Refused) -> None:
        """The refused request's hop (journaled before the answer leaves)."""
        self.gateway._hop(
            Event.REFUSED,
            post,
            refused.refusal.value,
            f"via {self.way}: {refused.status} {refused.detail}",
        )

    async def release(self, post: _Post) -> None:
        """Free the request's Idempotency-Key unless it was answered (only a 202 is kept)."""
        if post.claimed and post.sender and post.key:
            await self.gateway.records.release_idempotency_key(post.sender, post.key)
