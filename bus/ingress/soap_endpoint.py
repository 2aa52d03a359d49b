"""``POST /v1/soap`` and ``GET /v1/soap?wsdl``: the gateway's way in for SOAP-only systems.

Steps, each refusing with a SOAP fault whose reason is the REST endpoint's
(:mod:`bus.ingress.soap_answers`): an Authorization header, when sent, is checked before
the body is read → read the body under the gateway's cap and timeout (too_large,
slow_body) → parse it with the hardened parser of :mod:`adapters.safexml` (no DTD, no
entity, no network; a DTD or entity declaration is ``hostile_xml``, broken XML
``malformed``) → the SOAP envelope and its one operation → authenticate (WS-Security
UsernameToken PasswordText, or HTTP Bearer or Basic) and rate limit → IdempotencyKey (HTTP
or SOAP header) → the WSDL's XSD (``invalid`` with the element) → convert to the canonical
envelope (:mod:`bus.ingress.soap_status`) → the gateway's shared steps
(:mod:`bus.ingress.admission`): schemas with paths, claims, id, publish with confirms →
the operation's answer, only once the broker confirmed.
"""

from __future__ import annotations

import base64
import hmac
import time
from pathlib import Path

from aiohttp import web
from lxml import etree

from adapters import safexml
from adapters.soapns import BUS_HEADERS, ENVELOPES, WSSE
from adapters.wsse import PASSWORD_DIGEST
from bus.ingress import idempotency
from bus.ingress.admission import Admission, Post
from bus.ingress.gateway import Gateway
from bus.ingress.refusals import Refusal, Refused
from bus.ingress.soap_answers import NotUnderstood, accepted, fault, soap_version_of
from bus.ingress.soap_status import (
    NS,
    OPERATION,
    bus_header,
    check_against_xsd,
    envelope_of,
    load_xsd,
    with_elements,
)
from bus.settings import PROJECT_ROOT

PATH = "/v1/soap"
WSDL_FILE = PROJECT_ROOT / "config" / "wsdl" / "dvcbus-ingress-v1.wsdl"
_SHIPPED_ADDRESS = b"https://dvcbus.example.gov.vn/v1/soap"
UNDERSTOOD = frozenset(
    {f"{{{WSSE}}}Security", f"{{{BUS_HEADERS}}}IdempotencyKey", f"{{{BUS_HEADERS}}}traceparent"}
)


class SoapEndpoint:
    """The SOAP way in, on a :class:`Gateway`'s steps, checks and guarantees."""

    def __init__(self, gateway: Gateway, wsdl: Path = WSDL_FILE) -> None:
        self.gateway = gateway
        self.admission = Admission(gateway, "soap")
        self.wsdl = wsdl.read_bytes()
        self.xsd = load_xsd(wsdl)

    def attach(self, app: web.Application) -> None:
        app.add_routes([web.post(PATH, self.post), web.get(PATH, self.get_wsdl)])

    async def get_wsdl(self, request: web.Request) -> web.StreamResponse:
        """The WSDL, its address pointing where it was fetched from (``?wsdl``)."""
        if "wsdl" not in {k.lower() for k in request.query}:
            raise web.HTTPMethodNotAllowed("GET", ["POST"], text="GET /v1/soap?wsdl")
        address = f"{request.scheme}://{request.host}{PATH}".encode()
        return web.Response(
            body=self.wsdl.replace(_SHIPPED_ADDRESS, address),
            content_type="text/xml",
            charset="utf-8",
        )

    async def post(self, request: web.Request) -> web.StreamResponse:
        post = Post(started=time.perf_counter())
        # The answer's SOAP version: the Content-Type's until the Envelope names its own.
        version = [soap_version_of(request.content_type)]
        try:
            return await self._accept(request, post, version)
        except Refused as refused:
            self.admission.refused(post, refused)
            return fault(version[0], refused)
        finally:
            await self.admission.release(post)

    async def _accept(
        self, request: web.Request, post: Post, answer_in: list[str]
    ) -> web.StreamResponse:
        gw = self.gateway
        authorization = request.headers.get("Authorization")
        sender = self._http_sender(authorization) if authorization else None
        if sender is not None:
            sender = gw.check_certificate(request, sender, True, post)
            self.admission.authenticated(post, sender)
        raw = post.body = await gw.read_body(request)
        root = self._parse(raw)
        version = answer_in[0] = root.tag[1:].split("}", 1)[0]
        header = root.find(f"{{{version}}}Header")
        operation = self._operation(root, version)
        self._understand(header, version)
        if sender is None:
            sender = gw.check_certificate(request, self._username_token(header), True, post)
            self.admission.authenticated(post, sender)
        post.key = self._key(request, header)
        check_against_xsd(self.xsd, operation)
        envelope = envelope_of(operation, bus_header(header, "traceparent"))
        try:
            admitted = await self.admission.admit(post, envelope)
        except Refused as refused:
            raise with_elements(refused) from None
        return accepted(version, admitted.message_id, admitted.again)

    def _parse(self, raw: bytes) -> etree._Element:
        try:
            root = safexml.parse(raw, max_bytes=self.gateway.settings.gateway_max_body_bytes)
        except safexml.UnsafeXml as exc:
            if exc.hostile:
                raise Refused(
                    Refusal.HOSTILE_XML,
                    "the XML declares a DTD or entities: refused, never expanded "
                    "(a SOAP message may not carry a DTD)",
                ) from None
            raise Refused(Refusal.MALFORMED, f"not XML: {exc}") from None
        if not isinstance(root.tag, str) or not root.tag.startswith("{"):
            raise Refused(Refusal.MALFORMED, "not a SOAP message: no soap:Envelope")
        namespace, _, name = root.tag[1:].partition("}")
        if name != "Envelope" or namespace not in ENVELOPES:
            raise Refused(
                Refusal.MALFORMED, "not a SOAP message: the root is not a SOAP 1.1 or 1.2 Envelope"
            )
        return root

    @staticmethod
    def _operation(root: etree._Element, version: str) -> etree._Element:
        body = root.find(f"{{{version}}}Body")
        parts = [] if body is None else [e for e in body if isinstance(e.tag, str)]
        if len(parts) != 1:
            raise Refused(
                Refusal.MALFORMED, "the SOAP Body must hold exactly one operation element"
            )
        if parts[0].tag != f"{{{NS}}}{OPERATION}":
            raise Refused(
                Refusal.UNKNOWN_TYPE,
                f"no operation {safexml.local_name(parts[0])[:64]} in namespace "
                f"{NS}: this endpoint has {OPERATION} (see GET /v1/soap?wsdl)",
            )
        return parts[0]

    @staticmethod
    def _understand(header: etree._Element | None, version: str) -> None:
        """Refuse a header the sender says must be understood and this endpoint does not know."""
        if header is None:
            return
        attribute = f"{{{version}}}mustUnderstand"
        for entry in header:
            if not isinstance(entry.tag, str) or entry.tag in UNDERSTOOD:
                continue
            if (entry.get(attribute) or "").strip() in ("1", "true"):
                raise NotUnderstood(
                    Refusal.BAD_REQUEST,
                    f"the header {safexml.local_name(entry)[:64]} is marked mustUnderstand and "
                    "this endpoint does not know it (it knows wsse:Security, "
                    "IdempotencyKey and traceparent)",
                )

    def _username_token(self, header: etree._Element | None) -> str:
        """The sender a WS-Security UsernameToken (PasswordText) proves."""
        security = None if header is None else header.find(f"{{{WSSE}}}Security")
        token = None if security is None else security.find(f"{{{WSSE}}}UsernameToken")
        if token is None:
            raise Refused(
                Refusal.UNAUTHENTICATED,
                "send a WS-Security UsernameToken (Username: your sender id, Password: your "
                "token, PasswordText) or Authorization: Bearer <your token>",
            )
        password = token.find(f"{{{WSSE}}}Password")
        if password is not None and password.get("Type") == PASSWORD_DIGEST:
            raise Refused(
                Refusal.UNAUTHENTICATED,
                "PasswordDigest cannot be checked: the bus keeps only your token's SHA-256; "
                "send PasswordText (over TLS) or a bearer header",
            )
        username = (token.findtext(f"{{{WSSE}}}Username") or "").strip()
        secret = "" if password is None else (password.text or "").strip()
        return self._user(username, secret, "the UsernameToken")

    def _http_sender(self, authorization: str) -> str:
        """The sender an HTTP ``Authorization`` proves: ``Bearer <token>``, or ``Basic`` with
        the sender id and its token (what many SOAP toolkits can send without WS-Security)."""
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise Refused(Refusal.UNAUTHENTICATED, "Basic credentials are not base64") from None
            username, _, secret = pair.partition(":")
            return self._user(username, secret, "the Basic credentials")
        sender = self.gateway.tokens.sender_of(authorization)
        if sender is None:
            raise Refused(Refusal.UNAUTHENTICATED, "the bearer token is no sender's")
        return sender

    def _user(self, username: str, secret: str, what: str) -> str:
        """The sender whose id is ``username`` and whose token is ``secret``."""
        sender = self.gateway.tokens.sender_of(f"Bearer {secret}") if secret else None
        if sender is None or not hmac.compare_digest(username.encode(), sender.encode()):
            raise Refused(Refusal.UNAUTHENTICATED, f"{what} are no sender's (username, password)")
        return sender

    @staticmethod
    def _key(request: web.Request, header: etree._Element | None) -> str | None:
        key = request.headers.get(idempotency.HEADER) or bus_header(header, "IdempotencyKey")
        return idempotency.checked_key(key, "IdempotencyKey")
