"""The HTTP gateway: authenticated senders post messages; 202 only once the broker holds them.

``POST /v1/messages`` goes through named steps, each refusing with its own reason
(:mod:`bus.ingress.refusals`): authenticate (401) → rate limit (429) → the Idempotency-Key's
shape (400) → read the body under its cap and timeout (413, 408) → then the steps every way
in shares (:mod:`bus.ingress.admission`): Idempotency-Key (422, 409, or the first answer
again) → parse and validate with the router's schemas (422 with the JSON paths) → the
sender's claims: source and type (403) → the message id is this message's (409) → publish
to the ingress, confirmed and mandatory (503 with Retry-After) → remember who sent it → 202
with the id and a ``Location``. Every answer to a POST leaves one hop (logs, metrics, audit
trail) before it is sent. :meth:`Gateway.authenticate`, :meth:`Gateway.check_certificate`
and :meth:`Gateway.read_body` are the HTTP steps the other ways in call too.

``GET /v1/messages/{id}`` tells the sender of a message where it is (404 to anyone else).
``/metrics``, ``/livez`` and ``/readyz`` are the bus's usual endpoint, on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any

import orjson
import structlog
from aiohttp import web
from prometheus_client import Counter

from bus.contract.schemas import SchemaRegistry
from bus.errors import FatalSetupError
from bus.ingress import idempotency
from bus.ingress.admission import Admission, Post
from bus.ingress.batched_store import BatchedStore
from bus.ingress.client_certs import ClientCertificates
from bus.ingress.limits import SenderLimits
from bus.ingress.publishing import IngressPublisher
from bus.ingress.refusals import PROBLEM_JSON, Refusal, Refused
from bus.ingress.senders import SendersConfig
from bus.ingress.status import message_status
from bus.ingress.tokens import TokenBook
from bus.observability.hops import Hops
from bus.observability.masking import LOG_MASKER
from bus.settings import Settings
from bus.store import Store

log = structlog.get_logger("bus.ingress.gateway")
PURGE_INTERVAL = 3600.0  # seconds between deletions of records past the retention


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
        self.admission = Admission(self)  # the steps every way in takes (this one's: no "via")
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
        """``POST /v1/messages``: the envelope as the sender wrote it, through the steps."""
        post = Post(started=time.perf_counter())
        admission = self.admission
        try:
            admission.authenticated(post, self.authenticate(request, post))
            post.key = idempotency.checked_key(request.headers.get(idempotency.HEADER))
            body = post.body = await self.read_body(request)
            admitted = await admission.admit(post, body)
            return _accepted(admitted.message_id)
        except Refused as refused:
            admission.refused(post, refused)
            return refused.response()
        finally:
            await admission.release(post)

    def authenticate(self, request: web.Request, post: Post | None = None) -> str:
        """The sender a bearer token (and its client certificate, when checked) proves (401)."""
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
        post: Post | None = None,
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

    async def read_body(self, request: web.Request) -> bytes:
        """The body, read no further than the cap (413) and no longer than the body timeout
        (408): the same for every way in."""
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

    # ------------------------------------------------------------------ GET

    async def get_message(self, request: web.Request) -> web.StreamResponse:
        try:
            sid = self.authenticate(request)
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
