"""The gateway's steps once a way in holds a canonical envelope: written once, for every way in.

``POST /v1/messages`` receives the envelope as the sender wrote it; the SOAP endpoint and the
payment platform's callback build it from the sender's own form first. From there every way
in calls :meth:`Admission.admit`, so a message has the same guarantees whichever way it came:
schemas (with the JSON paths) → the sender's claims → Idempotency-Key → the message id is
this message's (the key and the id asked of the store in one trip) → publish, confirmed and
mandatory → remember who sent it → one hop (logs, metrics, audit trail) before the answer
is sent.

Each step is a public method of :class:`Admission` and raises
:class:`~bus.ingress.refusals.Refused` with its reason; the way in turns it into its own
answer (problem+json, a SOAP fault, the platform's result code). A way in drives one request
like this (:class:`Post` is what its hop reports, whatever step ends it)::

    post = Post(started=time.perf_counter())
    try:
        admission.authenticated(post, gateway.authenticate(request, post))
        post.key = ...                       # the way's Idempotency-Key (or None)
        post.body = await gateway.read_body(request)
        admitted = await admission.admit(post, envelope_built_from(post.body))
        return its_answer(admitted)
    except Refused as refused:
        admission.refused(post, refused)
        return its_refusal(refused)
    finally:
        await admission.release(post)
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from bus.contract.envelope import dossier_no_of, parse, short_str
from bus.contract.rejections import Reason, Rejection
from bus.ingress import idempotency
from bus.ingress.idempotency import Verdict
from bus.ingress.publishing import BrokerUnavailable
from bus.ingress.refusals import Refusal, Refused
from bus.observability.hops import Event, Hop, Stage
from bus.store import Submission

if TYPE_CHECKING:
    from bus.ingress.gateway import Gateway

log = structlog.get_logger("bus.ingress.admission")
STAGE = Stage.GATEWAY
_REFUSAL_OF = {
    Reason.MALFORMED: Refusal.MALFORMED,
    Reason.TOO_LARGE: Refusal.TOO_LARGE,
    Reason.INVALID: Refusal.INVALID,
    Reason.UNKNOWN_TYPE: Refusal.UNKNOWN_TYPE,
}


@dataclass(slots=True)
class Post:
    """What is known of one request so far: what its hop reports, whatever step ends it."""

    started: float
    sender: str | None = None
    key: str | None = None
    body: bytes = b""
    digest: bytes | None = None
    message_id: str | None = None
    message_type: str | None = None
    dossier_no: str | None = None
    claimed: bool = False  # the Idempotency-Key is ours: release it unless answered
    certificate: str | None = None  # the client certificate's fingerprint, when one came

    def detail(self, text: str = "") -> str:
        parts = [f"sender {self.sender or '-'}", f"idempotency key {self.key or '-'}"]
        if self.certificate:
            parts.append(f"certificate {self.certificate}")
        if text:
            parts.append(text)
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Admitted:
    """The broker holds the message ``message_id`` (``again``: it did already, for this key)."""

    message_id: str
    again: bool = False


class Admission:
    """The gateway's steps for one way in (``way`` names it in each hop's detail; None for
    ``POST /v1/messages``, the gateway's own)."""

    def __init__(self, gateway: Gateway, way: str | None = None) -> None:
        self.gateway = gateway
        self.way = way
        # Precomputed: the hop details add nothing per request for the gateway's own way.
        self._accepted_detail = f"via {way}" if way else ""
        self._refused_prefix = f"via {way}: " if way else ""

    # ------------------------------------------------------------------ the request

    def authenticated(self, post: Post, sender: str) -> None:
        """Note the sender and apply its rate limit (429)."""
        post.sender = sender
        wait = self.gateway.limits.admit(sender)
        if wait:
            raise Refused(
                Refusal.RATE_LIMITED, f"sender {sender} is above its rate", retry_after=wait
            )

    async def admit(self, post: Post, envelope: bytes) -> Admitted:
        """Take ``envelope`` (the bytes that will be published) through the steps, in order.

        ``post.sender`` is authenticated and ``post.key`` set (or None) already.
        """
        sender = post.sender
        assert sender is not None
        post.body = envelope
        post.digest = hashlib.sha256(envelope).digest()
        doc, type_ = self.validate(envelope, post)
        self.check_claims(sender, doc, type_)
        message_id = doc["id"]
        # Queued before the key's claim, so both go to the store in one batch: one trip.
        known = self.gateway.records.submission(message_id)
        if post.key is not None and await self.claim_key(post):
            assert post.message_id is not None  # the first answer, hop emitted; nothing published
            return Admitted(post.message_id, again=True)
        await self.check_id_is_ours(post, message_id, known)
        await self.publish(envelope, message_id, type_, sender)
        await self.remember(post, message_id, type_)
        self.hop(Event.ACCEPTED, post, detail=self._accepted_detail)
        return Admitted(message_id)

    def refused(self, post: Post, refused: Refused) -> None:
        """The refused request's hop (journaled before the answer leaves)."""
        self.hop(
            Event.REFUSED,
            post,
            refused.refusal.value,
            f"{self._refused_prefix}{refused.status} {refused.detail}",
        )

    async def release(self, post: Post) -> None:
        """Free the request's Idempotency-Key unless it was answered (only an acceptance is
        kept)."""
        if post.claimed and post.sender and post.key:
            await self.gateway.records.release_idempotency_key(post.sender, post.key)

    # ------------------------------------------------------------------ the steps

    async def claim_key(self, post: Post) -> bool:
        """Claim the request's Idempotency-Key: True when it was answered already (the
        first answer's id in ``post.message_id``, its hop emitted), False to go on."""
        assert post.sender and post.key and post.digest
        records = self.gateway.records
        digest, now = post.digest.hex(), time.time()
        existing = await records.claim_idempotency_key(post.sender, post.key, digest, now)
        verdict = idempotency.judge(existing, digest, now)
        if verdict is Verdict.TAKE_OVER:
            assert existing is not None
            taken = await records.take_over_idempotency_key(
                post.sender, post.key, digest, existing.updated_at, now
            )
            verdict = Verdict.PROCEED if taken else Verdict.IN_FLIGHT
        if verdict is Verdict.PROCEED:
            post.claimed = True
            return False
        if verdict is Verdict.ANSWER_AGAIN:
            assert existing is not None and existing.message_id
            post.message_id = existing.message_id
            self.hop(Event.ANSWERED_AGAIN, post, detail="the first answer, nothing published")
            return True
        if verdict is Verdict.CONFLICT:
            raise Refused(
                Refusal.IDEMPOTENCY_CONFLICT,
                "this Idempotency-Key was used for a request with another body",
            )
        raise Refused(
            Refusal.IN_FLIGHT,
            "the first request with this Idempotency-Key is still being handled; retry later",
            retry_after=1,
        )

    def validate(self, body: bytes, post: Post) -> tuple[dict[str, Any], str]:
        """The parsed envelope and its type, by the router's schemas (422 with the paths)."""
        gw = self.gateway
        doc: Any = None
        try:
            doc = parse(body, gw.settings.gateway_max_body_bytes)
            type_, _version = gw.schemas.validate(doc)
        except Rejection as rej:
            if isinstance(doc, dict):
                post.message_id = short_str(doc.get("id"))
                post.message_type = short_str(doc.get("type"))
                post.dossier_no = dossier_no_of(doc)
            errors = []
            if rej.reason is Reason.INVALID and isinstance(doc, dict):
                errors = [
                    {"path": p.path or "$", "rule": p.rule, "expected": p.expected}
                    for p in gw.schemas.problems(doc)
                ]
            raise Refused(
                _REFUSAL_OF.get(rej.reason, Refusal.INVALID), rej.detail, errors
            ) from None
        post.message_id, post.message_type = doc["id"], type_
        post.dossier_no = dossier_no_of(doc)
        return doc, type_

    def check_claims(self, sid: str, doc: dict[str, Any], type_: str) -> None:
        """The sender may claim the envelope's ``source`` and send its type (403)."""
        sender = self.gateway.senders.senders[sid]
        source = doc["source"]
        if not sender.may_claim_source(source):
            raise Refused(
                Refusal.SOURCE_NOT_ALLOWED,
                f"sender {sid} may not claim source {source} "
                f"(it may claim: {', '.join(sender.sources)})",
            )
        self.check_type(sid, type_)

    def check_type(self, sid: str, type_: str) -> None:
        """The sender may send messages of type ``type_`` (403)."""
        sender = self.gateway.senders.senders[sid]
        if not sender.may_send_type(type_):
            raise Refused(
                Refusal.TYPE_NOT_ALLOWED,
                f"sender {sid} may not send {type_} (it may send: {', '.join(sender.types)})",
            )

    async def check_id_is_ours(
        self,
        post: Post,
        message_id: str,
        lookup: Awaitable[Submission | None] | None = None,
    ) -> None:
        """A message id names one message: sent again by its sender with the same body it is
        a resend (published again; the bus delivers it once), otherwise it is refused.

        ``lookup``: the store's answer for ``message_id``, asked already (:meth:`admit`
        asks it beside the key's claim); without it the store is asked here.
        """
        assert post.digest is not None
        if lookup is None:
            lookup = self.gateway.records.submission(message_id)
        known = await lookup
        if known is not None and (
            known.sender != post.sender or known.body_sha256 != post.digest.hex()
        ):
            raise Refused(
                Refusal.ID_CONFLICT,
                f"message id {message_id} was already accepted for another message: "
                "give each message its own id",
            )

    async def publish(self, envelope: bytes, message_id: str, type_: str, sender: str) -> None:
        """Publish to the ingress, confirmed and mandatory (503 with Retry-After)."""
        gw = self.gateway
        try:
            await gw.publisher.publish(envelope, message_id, type_, sender)
        except BrokerUnavailable as exc:
            raise Refused(
                Refusal.BROKER_UNAVAILABLE, exc.why, retry_after=gw.settings.gateway_retry_after
            ) from None

    async def remember(self, post: Post, message_id: str, type_: str) -> None:
        """Who sent the message (for GET) and the key's answer; the broker holds the message
        already, so a store failure is logged and the answer is still an acceptance."""
        assert post.sender and post.digest
        now = time.time()
        try:
            await self.gateway.records.remember(
                Submission(message_id, post.sender, type_, post.digest.hex(), now), post.key
            )
            post.claimed = False
        except Exception as exc:
            log.error("gateway.record_failed", message_id=message_id, error=str(exc))

    def hop(self, event: Event, post: Post, reason: str | None = None, detail: str = "") -> None:
        """The request's hop, journaled before the answer: a kill after it cannot lose it."""
        hops = self.gateway.hops
        hops.emit(
            Hop(
                event,
                STAGE,
                post.message_id,
                post.message_type,
                post.dossier_no,
                reason=reason,
                detail=post.detail(detail),
                duration=time.perf_counter() - post.started,
                body=post.body,
                body_sha256=post.digest,
            )
        )
        try:
            hops.sync()
        except Exception as exc:  # the hop still waits in memory for the audit's next commit
            log.error("gateway.hop_not_journaled", hop_event=event.value, error=str(exc))
