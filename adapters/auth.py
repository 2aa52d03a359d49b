"""Authentication flows the agency and portal APIs use, for HTTP adapter kinds.

``auth:`` in a target's options picks one; secrets come from ``credentials:`` (references
resolved from env or files) and never appear in a log line or a reason:

- ``bearer``   a static token (``credentials.token``) in ``Authorization: Bearer``
- ``basic``    HTTP basic (``credentials.username`` / ``password``)
- ``oauth2``   client credentials (RFC 6749 §4.4): the token is fetched once, shared by
  concurrent deliveries, renewed ``refresh_before`` seconds before it expires, and renewed
  once more when the API answers 401 anyway (revoked, clock skew)
- ``session``  a login call returns a session id that later calls carry; the session is
  renewed when it expires, and once when the API answers 401

A failed token or login call is classified like any call (a 503 from the token endpoint is
transient, a 401 there is permanent) and reported as the outcome of the delivery.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlencode

import orjson
import structlog
from pydantic import Field

from adapters import classify
from adapters.base import Outcome, PermanentFailure, TargetSpec
from adapters.http import HttpClient, UrlTemplate
from adapters.mapping import path_getter
from adapters.options import AdapterOptions, require_credentials

log = structlog.get_logger("adapters.auth")


class BearerAuthOptions(AdapterOptions):
    kind: Literal["bearer"]
    credential: str = "token"  # the credentials key holding the token
    header: str = "Authorization"
    scheme: str = "Bearer"  # "" sends the bare token


class BasicAuthOptions(AdapterOptions):
    kind: Literal["basic"]
    username: str = "username"  # credentials keys
    password: str = "password"


class OAuth2Options(AdapterOptions):
    kind: Literal["oauth2"]
    token_url: str  # absolute, /path on the endpoint's host, or {endpoint}/...
    scope: str | None = None
    client_auth: Literal["basic", "body"] = "basic"  # RFC 6749 §2.3.1: basic is the default
    refresh_before: float = Field(default=30.0, ge=0)  # seconds before expiry to renew
    default_lifetime: float = Field(default=300.0, gt=0)  # when expires_in is absent
    client_id: str = "client_id"  # credentials keys
    client_secret: str = "client_secret"


class SessionOptions(AdapterOptions):
    kind: Literal["session"]
    login_url: str
    username_field: str = "username"  # JSON fields of the login request
    password_field: str = "password"
    session_field: str = "session"  # dotted path of the session id in the login answer
    expires_field: str | None = "expires_in"  # seconds, when the answer says
    lifetime: float = Field(default=1800.0, gt=0)  # seconds, when it does not
    refresh_before: float = Field(default=10.0, ge=0)
    header: str = "Authorization"  # how later calls carry the session
    scheme: str = "Bearer"
    username: str = "username"  # credentials keys
    password: str = "password"


AuthOptions = Annotated[
    BearerAuthOptions | BasicAuthOptions | OAuth2Options | SessionOptions,
    Field(discriminator="kind"),
]


class AuthFailed(Exception):
    """Credentials could not be obtained; ``outcome`` is what the delivery reports."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(getattr(outcome, "reason", "authentication failed"))
        self.outcome = outcome


class Auth:
    """Puts credentials on a request. ``renews``: a 401 is worth one retry with fresh ones."""

    renews: ClassVar[bool] = False

    async def apply(self, http: HttpClient, headers: dict[str, str]) -> str | None:
        """Add the credential headers; returns the credential used (for :meth:`renew`)."""
        return None

    async def renew(self, http: HttpClient, used: str | None) -> None:
        """Forget ``used`` after the API refused it; the next apply gets a fresh one."""


class StaticHeader(Auth):
    """A header computed once: bearer token or HTTP basic."""

    def __init__(self, header: str, value: str) -> None:
        self.header = header
        self.value = value

    async def apply(self, http: HttpClient, headers: dict[str, str]) -> str | None:
        headers[self.header] = self.value
        return None


class _ExpiringToken(Auth):
    """A credential fetched from the agency, shared by concurrent calls, renewed before expiry."""

    renews = True
    what: ClassVar[str] = "token"

    def __init__(self, header: str, scheme: str, refresh_before: float) -> None:
        self.header = header
        self.scheme = scheme
        self.refresh_before = refresh_before
        self.token: str | None = None
        self.renew_at = 0.0
        self.fetched = 0  # how many times a credential was obtained (tests, conformance)
        self._lock = asyncio.Lock()

    def _valid(self) -> bool:
        return self.token is not None and time.monotonic() < self.renew_at

    async def apply(self, http: HttpClient, headers: dict[str, str]) -> str | None:
        if not self._valid():
            async with self._lock:
                if not self._valid():  # someone else may have fetched while we waited
                    self.token, lifetime = await self._fetch(http)
                    # Never the token itself: only that one was obtained, and for how long.
                    log.info(
                        "adapter.credential_obtained",
                        target=http.target.name,
                        flow=self.what,
                        lifetime_s=round(lifetime, 1),
                    )
                    # Renew ahead of expiry, but never sooner than half-way through a short life.
                    ahead = min(self.refresh_before, lifetime / 2)
                    self.renew_at = time.monotonic() + lifetime - ahead
                    self.fetched += 1
        token = self.token
        assert token is not None
        headers[self.header] = f"{self.scheme} {token}" if self.scheme else token
        return token

    async def renew(self, http: HttpClient, used: str | None) -> None:
        async with self._lock:
            if self.token == used:
                self.token = None

    async def _fetch(self, http: HttpClient) -> tuple[str, float]:
        raise NotImplementedError

    async def _call(
        self, http: HttpClient, url: str, body: bytes, headers: dict[str, str]
    ) -> dict[str, Any]:
        t = http.target
        try:
            answer = await http.request("POST", url, data=body, headers=headers)
        except Exception as exc:  # translated at the edge, never leaked
            outcome = classify.for_exception(
                exc, connect_timeout=t.connect_timeout, read_timeout=t.read_timeout
            )
            raise AuthFailed(_prefixed(outcome, f"{self.what}: ")) from None
        if not answer.ok:
            raise AuthFailed(
                classify.for_status(answer.status, f"{self.what} refused", location=answer.location)
            )
        try:
            doc = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            raise AuthFailed(classify.unreadable(f"{self.what} answer", answer.body))
        return doc


class OAuth2ClientCredentials(_ExpiringToken):
    what = "OAuth2 token"

    def __init__(self, options: OAuth2Options, target: TargetSpec) -> None:
        super().__init__("Authorization", "Bearer", options.refresh_before)
        self.options = options
        self.url = UrlTemplate(options.token_url, target.endpoint, "auth.token_url").render({})
        self.client_id = target.credentials[options.client_id]
        self.client_secret = target.credentials[options.client_secret]

    async def _fetch(self, http: HttpClient) -> tuple[str, float]:
        o = self.options
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if o.scope:
            form["scope"] = o.scope
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        if o.client_auth == "basic":
            headers["Authorization"] = _basic(self.client_id, self.client_secret)
        else:
            form.update(client_id=self.client_id, client_secret=self.client_secret)
        doc = await self._call(http, self.url, urlencode(form).encode(), headers)
        token = doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthFailed(PermanentFailure("OAuth2 token answer has no access_token"))
        return token, _lifetime(doc.get("expires_in"), o.default_lifetime)


class SessionLogin(_ExpiringToken):
    what = "session login"

    def __init__(self, options: SessionOptions, target: TargetSpec) -> None:
        super().__init__(options.header, options.scheme, options.refresh_before)
        self.options = options
        self.url = UrlTemplate(options.login_url, target.endpoint, "auth.login_url").render({})
        self.session_of = path_getter(options.session_field, "auth.session_field")
        self.expires_of = (
            path_getter(options.expires_field, "auth.expires_field")
            if options.expires_field
            else None
        )
        self.body = orjson.dumps(
            {
                options.username_field: target.credentials[options.username],
                options.password_field: target.credentials[options.password],
            }
        )

    async def _fetch(self, http: HttpClient) -> tuple[str, float]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        doc = await self._call(http, self.url, self.body, headers)
        session = self.session_of(doc)
        if not isinstance(session, str | int) or session == "":
            message = doc.get("message")
            why = f": {classify.quote(str(message).encode())}" if message else ""
            raise AuthFailed(PermanentFailure(f"session login answer has no session{why}"))
        lifetime = self.expires_of(doc) if self.expires_of else None
        return str(session), _lifetime(lifetime, self.options.lifetime)


def build_auth(options: AuthOptions | None, target: TargetSpec) -> Auth:
    """The authentication a target's options ask for (bearer when only a token is given)."""
    if options is None:
        token = target.credentials.get("token")
        return StaticHeader("Authorization", f"Bearer {token}") if token else Auth()
    if isinstance(options, BearerAuthOptions):
        require_credentials(target, options.credential, why="auth bearer")
        token = target.credentials[options.credential]
        return StaticHeader(
            options.header, f"{options.scheme} {token}" if options.scheme else token
        )
    if isinstance(options, BasicAuthOptions):
        require_credentials(target, options.username, options.password, why="auth basic")
        return StaticHeader(
            "Authorization",
            _basic(target.credentials[options.username], target.credentials[options.password]),
        )
    if isinstance(options, OAuth2Options):
        require_credentials(target, options.client_id, options.client_secret, why="auth oauth2")
        return OAuth2ClientCredentials(options, target)
    require_credentials(target, options.username, options.password, why="auth session")
    return SessionLogin(options, target)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _lifetime(value: Any, default: float) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default


def _prefixed(outcome: Outcome, prefix: str) -> Outcome:
    reason = getattr(outcome, "reason", None)
    if reason is None:
        return outcome
    return type(outcome)(prefix + reason)
