"""The HTTP gateway: authenticated senders post messages; 202 only once the broker holds them.

``POST /v1/messages`` goes through named steps, each refusing with its own reason
(:mod:`bus.ingress.refusals`): authenticate (401) → rate limit (429) → read the body under
its cap and timeout (413, 408) → Idempotency-Key (422, 409, or the first answer again) →
parse and validate with the router's schemas (422 with the JSON paths) → the sender's
claims: source and type (403) → the message id is this message's (409) → publish to the
ingress, confirmed and mandatory (503 with Retry-After) → remember who sent it → 202 with
the id and a ``Location``. Every answer to a POST leaves one hop (logs, metrics, audit
trail) before it is sent.

``GET /v1/messages/{id}`` tells the sender of a message where it is (404 to anyone else).
``/metrics``, ``/livez`` and ``/readyz`` are the bus's usual endpoint, on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import time
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiohttp import web
from prometheus_client import Counter

from bus.contract.envelope import dossier_no_of, parse, short_str
from bus.contract.rejections import Reason, Rejection
from bus.contract.schemas import SchemaRegistry
from bus.errors import FatalSetupError
from bus.ingress import idempotency
from bus.ingress.batched_store import BatchedStore
from bus.ingress.client_certs import ClientCertificates
from bus.ingress.idempotency import Verdict
from bus.ingress.limits import SenderLimits
from bus.ingress.publishing import BrokerUnavailable, IngressPublisher
from bus.ingress.refusals import PROBLEM_JSON, Refusal, Refused
from bus.ingress.senders import SendersConfig
from bus.ingress.status import message_status
from bus.ingress.tokens import TokenBook
from bus.observability.hops import Event, Hop, Hops, Stage
from bus.observability.masking import LOG_MASKER
from bus.settings import Settings
from bus.store import Store, Submission

log = structlog.get_logger("bus.ingress.gateway")
STAGE = Stage.GATEWAY
PURGE_INTERVAL = 3600.0  # seconds between deletions of records past the retention
_REFUSAL_OF = {
    Reason.MALFORMED: Refusal.MALFORMED,
    Reason.TOO_LARGE: Refusal.TOO_LARGE,
    Reason.INVALID: Refusal.INVALID,
    Reason.UNKNOWN_TYPE: Refusal.UNKNOWN_TYPE,
}


@dataclass(slots=True)
class _Post:
    """What is known of one POST so far: what its hop reports, whatever step ends it."""

    started: float
    sender: str | None = None
    key: str | None = None
    body: bytes = b""
    digest: bytes | None = None
    message_id: str | None = None
    message_type: str | None = None
    dossier_no: str | None = None
    claimed: bool = False  # the Idempotency-Key is ours: release it unless answered 202
    certificate: str | None = None  # the client certificate's fingerprint, when one came

    def detail(self, text: str = "") -> str:
        parts = [f"sender {self.sender or '-'}", f"idempotency key {self.key or '-'}"]
        if self.certificate:
            parts.append(f"certificate {self.certificate}")
        if text:
            parts.append(text)
        return "; ".join(parts)


class Gateway:
    """The gateway's HTTP side; :class:`IngressPublisher` is its broker side."""

    def __init__(
        self,
        settings: Settings,
        schemas: SchemaRegistry,
        senders: SendersConfig,
        tokens: TokenBook,
        store: Store,
        hops: Hops,
        publisher: IngressPublisher,
        endpoint_app: web.Application,
        certificates: ClientCertificates | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.schemas = schemas
        self.senders = senders
        self.tokens = tokens
        self.store = store
        self.records = BatchedStore(store)  # the per-request calls, committed together
        self.hops = hops
        self.publisher = publisher
        self.certificates = certificates  # client certificates (mTLS, a trusted proxy's header)
        self.ssl_context = ssl_context  # None: plain HTTP
        self.limits = SenderLimits(
            settings.gateway_rate_limit,
            {sid: s.rate_limit for sid, s in senders.senders.items()},
        )
        self._app = endpoint_app
        self._app.add_routes(
            [
                web.post("/v1/messages", self.post_message),
                web.get("/v1/messages/{id}", self.get_message),
            ]
        )
        self.reads: Counter | None = None  # status reads by outcome (set by process.build)
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.bound_port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve until :meth:`stop`; a port that cannot be bound stops the process."""
        s = self.settings
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(
            runner, s.gateway_host, s.gateway_port, backlog=1024, ssl_context=self.ssl_context
        )
        try:
            await site.start()
        except OSError as exc:
            raise FatalSetupError(
                f"cannot listen on {s.gateway_host}:{s.gateway_port}: {exc.strerror}"
            ) from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else s.gateway_port
        log.info(
            "gateway.listening",
            url=f"{'https' if self.ssl_context else 'http'}://{s.gateway_host}:{self.bound_port}",
            senders=len(self.senders.senders),
        )
        while not self._stopping.is_set():
            await self._purge()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), PURGE_INTERVAL)

    async def _purge(self) -> None:
        before = time.time() - self.settings.gateway_retention_days * 86400
        try:
            purged = await asyncio.to_thread(self.store.purge_gateway, before)
        except Exception as exc:
            log.error("gateway.purge_failed", error=str(exc))
            return
        if purged:
            log.info("gateway.purged", records=purged, days=self.settings.gateway_retention_days)

    async def stop(self) -> None:
        """Stop taking requests; requests being handled get their answer first."""
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner.cleanup(), self.settings.shutdown_grace)
        await asyncio.to_thread(self.records.close)
        log.info("gateway.store_batches", calls=self.records.calls, batches=self.records.batches)

    # ------------------------------------------------------------------ POST

    async def post_message(self, request: web.Request) -> web.StreamResponse:
        post = _Post(started=time.perf_counter())
        try:
            return await self._accept(request, post)
        except Refused as refused:
            self._hop(
                Event.REFUSED, post, refused.refusal.value, f"{refused.status} {refused.detail}"
            )
            return refused.response()
        finally:
            if post.claimed and post.sender and post.key:
                await self.records.release_idempotency_key(post.sender, post.key)

    async def _accept(self, request: web.Request, post: _Post) -> web.StreamResponse:
        sid = post.sender = self._authenticate(request, post)
        wait = self.limits.admit(sid)
        if wait:
            raise Refused(Refusal.RATE_LIMITED, f"sender {sid} is above its rate", retry_after=wait)
        post.key = self._idempotency_key(request)
        body = post.body = await self._read_body(request)
        post.digest = hashlib.sha256(body).digest()
        if post.key is not None:
            again = await self._claim_key(post)
            if again is not None:
                return again
        doc, type_ = self._validate(body, post)
        self._check_claims(sid, doc, type_)
        message_id = doc["id"]
        await self._check_id_is_ours(post, message_id)
        try:
            await self.publisher.publish(body, message_id, type_, sid)
        except BrokerUnavailable as exc:
            raise Refused(
                Refusal.BROKER_UNAVAILABLE, exc.why, retry_after=self.settings.gateway_retry_after
            ) from None
        await self._remember(post, message_id, type_)
        self._hop(Event.ACCEPTED, post)
        return _accepted(message_id)

    def _authenticate(self, request: web.Request, post: _Post | None = None) -> str:
        authorization = request.headers.get("Authorization")
        sid = self.tokens.sender_of(authorization)
        sid = self.check_certificate(request, sid, authorization is not None, post)
        if sid is None:
            raise Refused(Refusal.UNAUTHENTICATED, "send Authorization: Bearer <your token>")
        return sid

    def check_certificate(
        self,
        request: web.Request,
        sender: str | None,
        sent_credentials: bool,
        post: _Post | None = None,
    ) -> str | None:
        """The sender once its client certificate is checked, for every way in: ``sender``
        as its credentials proved it (None: none did, or none were ``sent``), or the one a
        certificate alone names; raises :class:`Refused` ``certificate_not_registered``."""
        if self.certificates is None:
            return sender
        sender, certificate = self.certificates.identify(request, sender, sent_credentials)
        if post is not None:
            post.certificate = certificate
        return sender

    @staticmethod
    def _idempotency_key(request: web.Request) -> str | None:
        key = request.headers.get(idempotency.HEADER)
        if key is None:
            return None
        if not idempotency.valid_key(key):
            raise Refused(
                Refusal.BAD_REQUEST,
                "Idempotency-Key must be 1 to 128 characters of letters, digits and . _ : -",
            )
        return key

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, read no further than the cap and no longer than the body timeout."""
        cap = self.settings.gateway_max_body_bytes
        length = request.content_length
        if length is not None and length > cap:
            raise Refused(Refusal.TOO_LARGE, f"body is {length} bytes, the cap is {cap}")
        content = request.content
        if length is not None and content.is_eof():
            # The whole body came with the headers (a small message usually does): take it
            # as it is, with no timer to arm and no chunks to join. It is within the cap:
            # the parser stops at the declared length.
            return content.read_nowait()
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.gateway_body_timeout):
                async for chunk in request.content.iter_any():
                    size += len(chunk)
                    if size > cap:
                        raise Refused(Refusal.TOO_LARGE, f"body is over the cap of {cap} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise Refused(
                Refusal.SLOW_BODY,
                f"the body did not arrive within {self.settings.gateway_body_timeout:g}s",
            ) from None
        return b"".join(chunks)

    async def _claim_key(self, post: _Post) -> web.StreamResponse | None:
        """Claim the request's Idempotency-Key; the first answer when it was answered."""
        assert post.sender and post.key and post.digest
        digest, now = post.digest.hex(), time.time()
        existing = await self.records.claim_idempotency_key(post.sender, post.key, digest, now)
        verdict = idempotency.judge(existing, digest, now)
        if verdict is Verdict.TAKE_OVER:
            assert existing is not None
            taken = await self.records.take_over_idempotency_key(
                post.sender,
                post.key,
                digest,
                existing.updated_at,
                now,
            )
            verdict = Verdict.PROCEED if taken else Verdict.IN_FLIGHT
        if verdict is Verdict.PROCEED:
            post.claimed = True
            return None
        if verdict is Verdict.ANSWER_AGAIN:
            assert existing is not None and existing.message_id
            post.message_id = existing.message_id
            self._hop(Event.ANSWERED_AGAIN, post, detail="the first answer, nothing published")
            return _accepted(existing.message_id)
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

    def _validate(self, body: bytes, post: _Post) -> tuple[dict[str, Any], str]:
        doc: Any = None
        try:
            doc = parse(body, self.settings.gateway_max_body_bytes)
            type_, _version = self.schemas.validate(doc)
        except Rejection as rej:
            if isinstance(doc, dict):
                post.message_id = short_str(doc.get("id"))
                post.message_type = short_str(doc.get("type"))
                post.dossier_no = dossier_no_of(doc)
            errors = []
            if rej.reason is Reason.INVALID and isinstance(doc, dict):
                errors = [
                    {"path": p.path or "$", "rule": p.rule, "expected": p.expected}
                    for p in self.schemas.problems(doc)
                ]
            raise Refused(
                _REFUSAL_OF.get(rej.reason, Refusal.INVALID), rej.detail, errors
            ) from None
        post.message_id, post.message_type = doc["id"], type_
        post.dossier_no = dossier_no_of(doc)
        return doc, type_

    def _check_claims(self, sid: str, doc: dict[str, Any], type_: str) -> None:
        sender = self.senders.senders[sid]
        source = doc["source"]
        if not sender.may_claim_source(source):
            raise Refused(
                Refusal.SOURCE_NOT_ALLOWED,
                f"sender {sid} may not claim source {source} "
                f"(it may claim: {', '.join(sender.sources)})",
            )
        if not sender.may_send_type(type_):
            raise Refused(
                Refusal.TYPE_NOT_ALLOWED,
                f"sender {sid} may not send {type_} (it may send: {', '.join(sender.types)})",
            )

    async def _check_id_is_ours(self, post: _Post, message_id: str) -> None:
        """A message id names one message: sent again by its sender with the same body it is
        a resend (published again; the bus delivers it once), otherwise it is refused."""
        assert post.digest is not None
        known = await self.records.submission(message_id)
        if known is not None and (
            known.sender != post.sender or known.body_sha256 != post.digest.hex()
        ):
            raise Refused(
                Refusal.ID_CONFLICT,
                f"message id {message_id} was already accepted for another message: "
                "give each message its own id",
            )

    async def _remember(self, post: _Post, message_id: str, type_: str) -> None:
        """Who sent the message (for GET) and the key's answer; the broker holds the message
        already, so a store failure is logged and the answer is still 202."""
        assert post.sender and post.digest
        now = time.time()
        try:
            await self.records.remember(
                Submission(message_id, post.sender, type_, post.digest.hex(), now), post.key
            )
            post.claimed = False
        except Exception as exc:
            log.error("gateway.record_failed", message_id=message_id, error=str(exc))

    def _hop(self, event: Event, post: _Post, reason: str | None = None, detail: str = "") -> None:
        self.hops.emit(
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
        try:  # the hop in the hop journal before the answer: a kill after it cannot lose it
            self.hops.sync()
        except Exception as exc:  # the hop still waits in memory for the audit's next commit
            log.error("gateway.hop_not_journaled", hop_event=event.value, error=str(exc))

    # ------------------------------------------------------------------ GET

    async def get_message(self, request: web.Request) -> web.StreamResponse:
        try:
            sid = self._authenticate(request)
            wait = self.limits.admit_read(sid)
            if wait:
                raise Refused(
                    Refusal.RATE_LIMITED,
                    f"sender {sid} reads statuses above its rate",
                    retry_after=wait,
                )
        except Refused as refused:
            self._count_read(refused.refusal.value)
            return refused.response()
        message_id = request.match_info["id"]
        known = None
        if len(message_id) <= 64:
            known = await self.records.submission(message_id)
        if known is None or known.sender != sid:
            self._count_read("not_found")
            return _not_found()
        store = self.store

        def read() -> tuple[Any, Any, Any]:
            return (
                store.audit_records(message_ids=[message_id]),
                store.deliveries_of(message_id),
                store.dead_letters_of(message_id),
            )

        records, deliveries, dead = await asyncio.to_thread(read)
        view = message_status(known, records, deliveries, dead, LOG_MASKER.text)
        self._count_read("answered")
        return web.Response(body=orjson.dumps(view), content_type="application/json")

    def _count_read(self, outcome: str) -> None:
        if self.reads is not None:
            self.reads.labels(outcome).inc()


def _accepted(message_id: str) -> web.Response:
    return web.Response(
        status=202,
        body=orjson.dumps({"id": message_id}),
        content_type="application/json",
        headers={"Location": f"/v1/messages/{message_id}"},
    )


def _not_found() -> web.Response:
    body = {
        "type": "urn:dvcbus:problem:not_found",
        "title": "No such message of yours",
        "status": 404,
        "reason": "not_found",
    }
    return web.Response(status=404, body=orjson.dumps(body), content_type=PROBLEM_JSON)
