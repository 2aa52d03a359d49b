"""Stand-in agency systems: real HTTP and SOAP servers on loopback that record what they receive.

Used by the demo, the integration tests, the conformance kit (``dvcbus adapters test``) and
agency teams before go-live. Each target gets its own listening port (as a real agency has
its own host). How a stand-in answers when all is well comes from the target's adapter kind
(its :class:`Profile`: JSON ``{error_code, message}`` by default, a SOAP envelope for SOAP
kinds, a token or login endpoint when the kind authenticates); how it misbehaves is
programmable per target with a :class:`Behaviour`:

    answer normally · answer after N seconds · a given status · a SOAP fault (Client or
    Server) · a redirect · close the connection mid-answer · garbage · hostile XML (billion
    laughs, external entity) · a 100 MB answer streamed without ever being built in memory ·
    a slow drip (one byte at a time, each in time for a per-read timeout)

Control API, served on every port:

    GET  /_standin/requests?since=N[&target=T][&bodies=1]   what was received, in order
                                    ("answered": the status a fake API's responder gave)
    POST /_standin/behaviour  {"target": T, "status": 503, "delay": 2.5, "times": 3,
                               "act": "fault", "fault": "Server", "body": {...}}
    POST /_standin/auth       {"target": T, "expire": true, "lifetime": 2.0}
    POST /_standin/memory     {"target": T, "key": "records", "entries": {K: V, ...}}
                               what a fake API holds already (the portal's known dossiers)
    POST /_standin/reset                                     forget requests and behaviours

A behaviour programmed for ``T#auth`` applies to ``T``'s token or login endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from adapters.soapns import SOAP11, SOAP12

CONTROL = "/_standin"
# Looks like a broken agency page, and quotes personal data an adapter must mask.
GARBAGE = (
    b"\x00\x1f<<LOI HE THONG>> \xff\xfe Exception in thread: NullReference; "
    b"so dinh danh 001190012345, dien thoai 0987654321, email an.nguyen@example.com "
    b"\x8f\x90 ORA-00942 table or view does not exist"
)
# Where a redirect points by default: back onto the stand-in (so a client that follows it
# gets a normal answer there, and a false success is visible in what was received), on a
# path quoting a phone number (so a reason that names the place must mask it).
REDIRECT_PATH = "chuyen-huong"
REDIRECT_PII = "0987654321"


class Act(StrEnum):
    """What a stand-in does with a request: answer normally, or one way of misbehaving."""

    ANSWER = "answer"
    CLOSE = "close"  # promise an answer, drop the connection midway
    GARBAGE = "garbage"  # bytes that are neither JSON nor XML, quoting personal data
    FAULT = "fault"  # a SOAP fault (Behaviour.fault: Client or Server)
    BILLION_LAUGHS = "billion_laughs"  # an XML entity bomb
    XXE = "xxe"  # XML external entities (a file, an internal URL)
    HUGE = "huge"  # Behaviour.size_mb megabytes, streamed
    EMPTY = "empty"  # an empty body
    REDIRECT = "redirect"  # a 3xx pointing elsewhere
    DRIP = "drip"  # headers, then one byte every Behaviour.drip_interval s for drip_seconds s


ACTS = frozenset(act.value for act in Act)


@dataclass(slots=True)
class Behaviour:
    """How a stand-in answers: status, JSON body, delay; ``times`` limits it to N requests.

    ``act`` picks a misbehaviour (an :class:`Act`, or its value as a string): ``fault``
    answers a SOAP fault with code ``fault`` (Client or Server); ``huge`` streams
    ``size_mb`` megabytes; ``redirect`` answers ``status`` (302 unless a 3xx is given)
    pointing at ``location`` (default: a path below the request's own,
    ``…/chuyen-huong/0987654321``, on the stand-in); ``drip`` sends the headers, then one
    byte every ``drip_interval`` seconds for ``drip_seconds`` seconds, then ends the answer.
    """

    status: int = 200
    delay: float = 0.0
    body: Any = None
    times: int | None = None
    act: Act = Act.ANSWER
    fault: str = "Server"
    size_mb: int = 100
    location: str | None = None
    drip_interval: float = 0.3
    drip_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.act not in ACTS:
            raise ValueError(f"act {self.act!r} is not one of {sorted(ACTS)}")
        self.act = Act(self.act)  # the control API and older callers give the value


@dataclass(slots=True)
class Received:
    seq: int
    target: str
    method: str
    path: str
    received_at: float
    headers: dict[str, str]
    body: bytes
    key: str | None = None  # the idempotency key, per item for a batch

    @property
    def idempotency_key(self) -> str | None:
        return self.key or self.headers.get("Idempotency-Key")

    def as_json(self, with_body: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "seq": self.seq,
            "target": self.target,
            "method": self.method,
            "path": self.path,
            "received_at": self.received_at,
            "idempotency_key": self.idempotency_key,
            "traceparent": self.headers.get("traceparent"),
            "message_type": self.headers.get("X-Message-Type"),
        }
        if with_body:
            doc["headers"] = self.headers
            doc["body"] = self.body.decode("utf-8", "replace")
        return doc


@dataclass(slots=True)
class Request:
    """What a profile's answer function is told about one request."""

    target: str
    seq: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    memory: dict[str, Any]  # the target's own state (e.g. records a fake API holds)


@dataclass
class Profile:
    """How a stand-in imitates one kind of agency system when all is well.

    ``protocol``: ``json``, ``soap`` (1.1) or ``soap12``. ``respond`` (json) returns
    ``(status, document)`` for a normal request; the default answers
    ``{"error_code": "0", "message": ..., "reference": ...}``. ``soap_answers`` maps the
    local name of a request's body element to the answer envelope (``{reference}`` is
    filled in). ``auth`` (``oauth2`` or ``session``) serves a token or login endpoint at
    ``auth_path`` and refuses calls without a live token. ``batch_keys`` splits a batch
    request into the idempotency keys of its items (each is recorded on its own).
    """

    protocol: str = "json"
    respond: Callable[[Request], tuple[int, Any]] | None = None
    soap_answers: dict[str, bytes] = field(default_factory=dict)
    auth: str | None = None
    auth_path: str | None = None
    session_field: str = "session"
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    token_lifetime: float = 300.0
    batch_keys: Callable[[bytes], list[str] | None] | None = None

    @property
    def soap(self) -> bool:
        return self.protocol in ("soap", "soap12")


DEFAULT_PROFILE = Profile()


@dataclass
class StandinState:
    """Everything the stand-ins have received, and how each target should answer."""

    keep_bodies: bool = True
    received: list[Received] = field(default_factory=list)
    behaviours: dict[str, list[Behaviour]] = field(default_factory=dict)
    seq: int = 0
    tokens: dict[str, dict[str, float]] = field(default_factory=dict)  # target -> token -> expiry
    lifetimes: dict[str, float] = field(default_factory=dict)
    auth_calls: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # calls refused for lack of a token
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    # seq -> the HTTP status a profile's own responder answered (a fake API's 404, say): the
    # programmed behaviour alone does not say how such a call was answered.
    answered: dict[int, int] = field(default_factory=dict)

    def behaviour_for(self, target: str) -> Behaviour:
        queue = self.behaviours.get(target)
        if not queue:
            return Behaviour()
        current = queue[0]
        if current.times is not None:
            current.times -= 1
            if current.times <= 0:
                queue.pop(0)
        return current

    def record(self, target: str, request: web.Request, body: bytes, key: str | None) -> int:
        self.seq += 1
        self.received.append(
            Received(
                seq=self.seq,
                target=target,
                method=request.method,
                path=request.path_qs,
                received_at=time.time(),
                headers=plain_headers(request),
                body=body if self.keep_bodies else b"",
                key=key,
            )
        )
        return self.seq

    def issue_token(self, target: str, lifetime: float) -> str:
        token = secrets.token_urlsafe(18)
        self.tokens.setdefault(target, {})[token] = time.monotonic() + lifetime
        self.auth_calls[target] = self.auth_calls.get(target, 0) + 1
        return token

    def token_valid(self, target: str, token: str | None) -> bool:
        expiry = self.tokens.get(target, {}).get(token or "")
        return expiry is not None and time.monotonic() < expiry


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- answers ---------------------------------------------------------------------------


def _json(status: int, doc: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json")


def _default_json(status: int, target: str, seq: int) -> dict[str, Any]:
    ok = 200 <= status < 300
    return {
        "error_code": "0" if ok else "1",
        "message": "Thành công" if ok else "Yêu cầu của bạn thực hiện thất bại",
        "reference": f"{target}-{seq}",
    }


def soap_fault(code: str, text: str, *, soap12: bool = False) -> tuple[int, bytes]:
    """A SOAP fault envelope and the HTTP status it travels with."""
    if soap12:
        value = {"Client": "Sender", "Server": "Receiver"}.get(code, code)
        status = 400 if value == "Sender" else 500
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="{SOAP12}">'
            f"<env:Body><env:Fault><env:Code><env:Value>env:{value}</env:Value></env:Code>"
            f'<env:Reason><env:Text xml:lang="vi">{text}</env:Text></env:Reason>'
            "</env:Fault></env:Body></env:Envelope>"
        )
        return status, body.encode()
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP11}">'
        f"<soap:Body><soap:Fault><faultcode>soap:{code}</faultcode>"
        f"<faultstring>{text}</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    )
    return 500, body.encode()


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]>\n"
    + f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body><lolz>&lol9;</lolz>'.encode()
    + b"</soap:Body></soap:Envelope>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE r [\n <!ENTITY xxe SYSTEM "file:///etc/passwd">\n'
    b' <!ENTITY net SYSTEM "http://169.254.169.254/latest/meta-data/">\n]>\n'
    + f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body><r>&xxe;&net;</r>'.encode()
    + b"</soap:Body></soap:Envelope>"
)


async def _stream_huge(
    request: web.Request, profile: Profile, megabytes: int
) -> web.StreamResponse:
    """Stream ``megabytes`` MB in 64 KB chunks (chunked, no length): never held in memory."""
    xml = profile.soap
    resp = web.StreamResponse(
        status=200, headers={"Content-Type": "text/xml" if xml else "application/json"}
    )
    await resp.prepare(request)
    chunk = (b"<x>" + b"A" * 65529 + b"</x>") if xml else b"A" * 65536
    head = f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body><r>'.encode() if xml else b'{"d":"'
    with contextlib.suppress(ConnectionError, RuntimeError):
        await resp.write(head)
        for _ in range(megabytes * 16):
            await resp.write(chunk)
        await resp.write(b"</r></soap:Body></soap:Envelope>" if xml else b'"}')
        await resp.write_eof()
    return resp


async def _close_midway(request: web.Request, profile: Profile) -> web.StreamResponse:
    """Promise 4 KB, send a few bytes, then drop the connection."""
    resp = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/xml" if profile.soap else "application/json",
            "Content-Length": "4096",
        },
    )
    await resp.prepare(request)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await resp.write(b'<?xml version="1.0"?><soap:Env' if profile.soap else b'{"error_co')
        await asyncio.sleep(0.01)
    if request.transport is not None:
        request.transport.abort()
    return resp


async def _drip(request: web.Request, profile: Profile, behaviour: Behaviour) -> web.StreamResponse:
    """Headers at once, then a byte at a time: every read succeeds, the answer never ends soon.

    Each byte comes well within a per-read timeout, so only a limit on the whole answer cuts
    it; the bytes spell a valid (if padded) answer, should a client wait for all of them.
    """
    resp = web.StreamResponse(
        status=200, headers={"Content-Type": "text/xml" if profile.soap else "application/json"}
    )
    await resp.prepare(request)
    deadline = time.monotonic() + behaviour.drip_seconds
    with contextlib.suppress(ConnectionError, RuntimeError):
        while time.monotonic() < deadline:
            await resp.write(b" ")
            await asyncio.sleep(behaviour.drip_interval)
        await resp.write(b"" if profile.soap else b'{"error_code": "0"}')
        await resp.write_eof()
    return resp


def _redirect(request: web.Request, behaviour: Behaviour) -> web.Response:
    """A 3xx pointing elsewhere, with the small HTML page servers usually send along."""
    status = behaviour.status if 300 <= behaviour.status < 400 else 302
    where = behaviour.location or str(
        request.url.with_path(
            f"{request.path.rstrip('/')}/{REDIRECT_PATH}/{REDIRECT_PII}"
        ).with_query(None)
    )
    return web.Response(
        status=status,
        headers={"Location": where},
        text=f"<html><body>Moved: <a href='{where}'>{where}</a></body></html>",
        content_type="text/html",
    )


def _soap_answer(profile: Profile, target: str, seq: int, body: bytes) -> web.Response:
    from adapters import safexml  # the stand-in reads requests as carefully as adapters do

    soap12 = profile.protocol == "soap12"
    content_type = "application/soap+xml" if soap12 else "text/xml"
    try:
        root = safexml.parse(body)
        operation = next(
            (
                safexml.local_name(child)
                for element in root
                if safexml.local_name(element) == "Body"
                for child in element
                if isinstance(child.tag, str)
            ),
            "",
        )
    except safexml.UnsafeXml as exc:
        status, fault = soap_fault("Client", f"Yêu cầu không hợp lệ: {exc}", soap12=soap12)
        return web.Response(status=status, body=fault, content_type=content_type)
    template = profile.soap_answers.get(operation)
    if template is None:
        status, fault = soap_fault("Client", f"Không hỗ trợ thao tác {operation}", soap12=soap12)
        return web.Response(status=status, body=fault, content_type=content_type)
    answer = template.replace(b"{reference}", f"BN-{target}-{seq}".encode())
    return web.Response(body=answer, content_type=content_type, charset="utf-8")


def _agency_handler(state: StandinState, target: str, profile: Profile) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if profile.auth:
            value = request.headers.get(profile.auth_header, "")
            token = value[len(profile.auth_scheme) :].strip() if profile.auth_scheme else value
            if not state.token_valid(target, token):
                state.refused[target] = state.refused.get(target, 0) + 1
                return _json(401, {"error_code": "401", "message": "Phiên làm việc đã hết hạn"})
        keys = profile.batch_keys(body) if profile.batch_keys else None
        seq = 0
        recorded: list[str | None] = [*keys] if keys else [None]
        seqs = [state.record(target, request, body, key) for key in recorded]
        seq = seqs[-1]
        behaviour = state.behaviour_for(target)
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        act = behaviour.act
        if act == Act.CLOSE:
            return await _close_midway(request, profile)
        if act == Act.HUGE:
            return await _stream_huge(request, profile, behaviour.size_mb)
        if act == Act.GARBAGE:
            ctype = "text/xml" if profile.soap else "application/json"
            return web.Response(status=behaviour.status, body=GARBAGE, content_type=ctype)
        if act == Act.EMPTY:
            return web.Response(status=behaviour.status, body=b"")
        if act == Act.REDIRECT:
            return _redirect(request, behaviour)
        if act == Act.DRIP:
            return await _drip(request, profile, behaviour)
        if act in (Act.BILLION_LAUGHS, Act.XXE):
            hostile = BILLION_LAUGHS if act == Act.BILLION_LAUGHS else EXTERNAL_ENTITY
            return web.Response(status=behaviour.status, body=hostile, content_type="text/xml")
        if act == Act.FAULT:
            status, fault = soap_fault(
                behaviour.fault,
                "Lỗi hệ thống, vui lòng thử lại sau"
                if behaviour.fault in ("Server", "Receiver")
                else "Dữ liệu hồ sơ không hợp lệ",
                soap12=profile.protocol == "soap12",
            )
            return web.Response(status=status, body=fault, content_type="text/xml")
        if behaviour.body is not None:
            return _json(behaviour.status, behaviour.body)
        if profile.soap:
            if 200 <= behaviour.status < 300:
                return _soap_answer(profile, target, seq, body)
            return web.Response(
                status=behaviour.status,
                text=f"<html><body><h1>{behaviour.status}</h1></body></html>",
                content_type="text/html",
            )
        if profile.respond is not None and behaviour.status == 200:
            ctx = Request(
                target, seq, request.method, request.path, plain_headers(request), body,
                state.memory.setdefault(target, {}),
            )  # fmt: skip
            status, doc = profile.respond(ctx)
            for one in seqs:
                state.answered[one] = status
            return _json(status, doc)
        return _json(behaviour.status, _default_json(behaviour.status, target, seq))

    return handle


def _auth_handler(state: StandinState, target: str, profile: Profile) -> Handler:
    """A token endpoint (OAuth2 client credentials) or a login endpoint (session)."""

    async def handle(request: web.Request) -> web.Response:
        behaviour = state.behaviour_for(f"{target}#auth")
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.body is not None or behaviour.status != 200:
            return _json(behaviour.status, behaviour.body or {"error": "temporarily_unavailable"})
        lifetime = state.lifetimes.get(target, profile.token_lifetime)
        if profile.auth == "oauth2":
            form = await request.post()
            if form.get("grant_type") != "client_credentials":
                return _json(400, {"error": "unsupported_grant_type"})
            if not (_basic_user(request) or form.get("client_id")):
                return _json(401, {"error": "invalid_client"})
            token = state.issue_token(target, lifetime)
            return _json(
                200, {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}
            )
        try:
            doc = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            doc = None
        values = (
            [v for v in doc.values() if isinstance(v, str) and v] if isinstance(doc, dict) else []
        )
        if len(values) < 2:
            return _json(200, {"error_code": "-1", "message": "Sai tên đăng nhập hoặc mật khẩu"})
        token = state.issue_token(target, lifetime)
        answer: dict[str, Any] = {"error_code": "0", "message": "Đăng nhập thành công"}
        _put(answer, profile.session_field, token)
        answer["expires_in"] = lifetime
        return _json(200, answer)

    return handle


def _basic_user(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    if not value.startswith("Basic "):
        return None
    try:
        return base64.b64decode(value[6:]).decode().split(":", 1)[0] or None
    except (ValueError, UnicodeDecodeError):
        return None


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[last] = value


def plain_headers(request: web.Request) -> dict[str, str]:
    """A request's headers as plain ``str`` keys: aiohttp's are ``istr``, which JSON refuses."""
    return {str(name): value for name, value in request.headers.items()}


def _control_routes(state: StandinState) -> list[web.RouteDef]:
    async def requests(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        target = request.query.get("target")
        with_body = request.query.get("bodies") == "1"
        items = [
            {**r.as_json(with_body), "answered": state.answered.get(r.seq)}
            for r in state.received[since:]
            if target is None or r.target == target
        ]
        return web.Response(
            body=orjson.dumps({"requests": items, "next": len(state.received)}),
            content_type="application/json",
        )

    async def behaviour(request: web.Request) -> web.Response:
        doc = await request.json()
        target = doc.pop("target")
        try:
            programmed = Behaviour(**doc)
        except (TypeError, ValueError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        state.behaviours.setdefault(target, []).append(programmed)
        return web.json_response({"ok": True})

    async def auth(request: web.Request) -> web.Response:
        doc = await request.json()
        target = doc["target"]
        if doc.get("expire"):
            state.tokens.pop(target, None)
        if "lifetime" in doc:
            state.lifetimes[target] = float(doc["lifetime"])
        return web.json_response({"ok": True, "issued": state.auth_calls.get(target, 0)})

    async def memory(request: web.Request) -> web.Response:
        doc = await request.json()
        held = state.memory.setdefault(doc["target"], {}).setdefault(doc["key"], {})
        held.update(doc["entries"])
        return web.json_response({"ok": True, "held": len(held)})

    async def reset(_request: web.Request) -> web.Response:
        state.received.clear()
        state.behaviours.clear()
        state.tokens.clear()
        state.memory.clear()
        return web.json_response({"ok": True})

    return [
        web.get(f"{CONTROL}/requests", requests),
        web.post(f"{CONTROL}/behaviour", behaviour),
        web.post(f"{CONTROL}/auth", auth),
        web.post(f"{CONTROL}/memory", memory),
        web.post(f"{CONTROL}/reset", reset),
    ]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A target's stand-in: its name, the loopback URL routes.yaml gives it, how it answers."""

    target: str
    url: str
    profile: Profile | None = field(default=None, compare=False, hash=False)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


class StandinServer:
    """One aiohttp app per port; every agency path of that port answers for its target."""

    def __init__(
        self,
        endpoints: list[Endpoint],
        *,
        keep_bodies: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.state = StandinState(keep_bodies=keep_bodies)
        self.ssl_context = ssl_context  # serve https (e.g. to test an agency's CA, mutual TLS)
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        by_port: dict[tuple[str, int], list[Endpoint]] = {}
        for ep in self.endpoints:
            by_port.setdefault((ep.host, ep.port), []).append(ep)
        for (host, port), eps in by_port.items():
            app = web.Application(client_max_size=8 * 1024 * 1024)
            app.add_routes(_control_routes(self.state))
            for ep in eps:
                profile = ep.profile or DEFAULT_PROFILE
                if profile.auth and profile.auth_path:
                    auth_path = urlsplit(profile.auth_path).path or profile.auth_path
                    app.router.add_route(
                        "POST", auth_path, _auth_handler(self.state, ep.target, profile)
                    )
            for ep in eps:
                profile = ep.profile or DEFAULT_PROFILE
                path = urlsplit(ep.url).path or "/"
                handler = _agency_handler(self.state, ep.target, profile)
                app.router.add_route("*", path, handler)
                app.router.add_route("*", path.rstrip("/") + "/{tail:.*}", handler)
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
            await runner.setup()
            site = web.TCPSite(runner, host, port, backlog=1024, ssl_context=self.ssl_context)
            await site.start()
            self._runners.append(runner)

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()


class StandinThread:
    """Runs a :class:`StandinServer` on its own event loop in a thread (for tests)."""

    def __init__(
        self,
        endpoints: list[Endpoint],
        *,
        keep_bodies: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server = StandinServer(endpoints, keep_bodies=keep_bodies, ssl_context=ssl_context)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def state(self) -> StandinState:
        return self.server.state

    def __enter__(self) -> StandinThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def program(self, target: str, behaviour: Behaviour) -> None:
        """Change how ``target`` answers from now on (thread-safe)."""
        self._call(lambda: self.state.behaviours.setdefault(target, []).append(behaviour))

    def heal(self, target: str) -> None:
        """Forget every programmed behaviour of ``target``: it answers normally again."""
        self._call(lambda: self.state.behaviours.pop(target, None))

    def received(self, target: str | None = None) -> list[Received]:
        items = list(self.state.received)
        return [r for r in items if target is None or r.target == target]

    def expire_tokens(self, target: str) -> None:
        """Forget every token or session issued for ``target`` (as if they had expired)."""
        self._call(lambda: self.state.tokens.pop(target, None))

    def set_token_lifetime(self, target: str, seconds: float) -> None:
        self._call(lambda: self.state.lifetimes.__setitem__(target, seconds))

    def auth_calls(self, target: str) -> int:
        """How many tokens or sessions were issued for ``target``."""
        return self.state.auth_calls.get(target, 0)

    def refused(self, target: str) -> int:
        """How many calls to ``target`` were refused for lack of a live token."""
        return self.state.refused.get(target, 0)

    def reset(self) -> None:
        def forget() -> None:
            self.state.received.clear()
            self.state.behaviours.clear()
            self.state.tokens.clear()
            self.state.memory.clear()

        self._call(forget)
