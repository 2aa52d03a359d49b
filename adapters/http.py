"""HTTP for adapter kinds: one connection pool per target, TLS, timeouts, answers read to a cap.

Shared by the REST and SOAP kinds (and any plug-in that speaks HTTP). Every request states
its connect and read timeouts (the target's), and the whole request, answer included, ends
within their sum (:func:`total_timeout`): a read timeout alone restarts with every byte.
TLS always verifies the agency's certificate (against the system store or the target's
``tls.ca_file``) and can present a client certificate for mutual TLS; there is deliberately
no option that turns verification off. Answers are read up to ``max_response_bytes``: a
larger one is refused unread, so a hostile or broken agency cannot exhaust memory.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from multidict import CIMultiDictProxy
from pydantic import field_validator

from adapters.base import TargetSpec
from adapters.classify import AnswerTooLarge
from adapters.mapping import MappingError, render, template_parts
from adapters.options import AdapterConfigError, AdapterOptions
from adapters.watchdog import Watchdog, tick_for

DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024


class TlsOptions(AdapterOptions):
    """TLS towards the agency. Verification is always on."""

    ca_file: str | None = None  # PEM bundle of CAs to trust (an agency's private CA)
    client_cert: str | None = None  # PEM certificate presented for mutual TLS
    client_key: str | None = None  # its PEM private key, when not inside client_cert
    # credentials key holding the key's password, when the key is encrypted
    client_key_password: str | None = None

    @field_validator("ca_file", "client_cert", "client_key")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError("file not found or not a file")
        return value


def ssl_context(tls: TlsOptions | None, credentials: dict[str, str]) -> ssl.SSLContext:
    """A verifying TLS context for a target (system CAs unless ``ca_file`` names others)."""
    ctx = ssl.create_default_context(cafile=tls.ca_file if tls else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls and tls.client_cert:
        password = credentials.get(tls.client_key_password) if tls.client_key_password else None
        try:
            ctx.load_cert_chain(tls.client_cert, tls.client_key, password=password)
        except (ssl.SSLError, OSError) as exc:
            raise AdapterConfigError(
                f"tls.client_cert/client_key cannot be loaded: {type(exc).__name__}"
            ) from None
    return ctx


def total_timeout(target: TargetSpec) -> float:
    """Seconds one request may take from start to the answer's last byte: connect + read."""
    return target.connect_timeout + target.read_timeout


@dataclass(slots=True)
class Answer:
    """An agency's HTTP answer, its body read completely (under the cap)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def location(self) -> str | None:
        """Where a 3xx answer points (never followed: see :meth:`HttpClient.request`)."""
        return self.headers.get("Location")


class HttpClient:
    """One target's connection pool with its timeouts, TLS and answer cap."""

    def __init__(
        self,
        target: TargetSpec,
        *,
        tls: TlsOptions | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.target = target
        self.max_response_bytes = max_response_bytes
        # sock_read restarts with every chunk, so an agency dribbling a byte at a time would
        # hold the call for the whole adapter deadline: ``total`` bounds the whole exchange,
        # by a watchdog rather than aiohttp's ``total`` (a timer per request; see watchdog.py).
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=target.connect_timeout, sock_read=target.read_timeout
        )
        self.total = total_timeout(target)
        self.watchdog = Watchdog(tick_for(self.total))
        self._tls = tls
        self._ssl: ssl.SSLContext | None = None
        if urlsplit(target.endpoint).scheme == "https" or tls is not None:
            self._ssl = ssl_context(tls, target.credentials)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=max(self.target.concurrency, 1) + 2,  # + token/login calls
                ttl_dns_cache=300,
                ssl=self._ssl if self._ssl is not None else True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                raise_for_status=False,
                # No compression asked for, none undone: a compressed bomb cannot get past
                # the size cap by expanding after it was counted.
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request; raises aiohttp errors, TimeoutError or :class:`AnswerTooLarge`.

        Redirects are never followed: aiohttp would resend a POST as a GET (301/302/303) to
        wherever the agency points, and the answer to that GET would pass for a delivery.
        A 3xx comes back as the answer, and the classification rules make it permanent.
        """
        with self.watchdog.bound(self.total):
            async with self.session.request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as response:
                body = await read_capped(response, self.max_response_bytes)
                return Answer(response.status, response.headers, body)


async def read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The whole body, or :class:`AnswerTooLarge` as soon as it exceeds ``cap`` bytes."""
    announced = response.content_length
    if announced is not None:
        if announced > cap:
            raise AnswerTooLarge(cap, announced)
        return await response.read()
    buf = bytearray()
    while True:
        chunk = await response.content.read(min(65536, cap + 1 - len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > cap:
            raise AnswerTooLarge(cap)


class UrlTemplate:
    """Where a request goes: the endpoint, or a template built from it and the message.

    ``{endpoint}`` is the target's endpoint (no trailing slash); a template starting with
    ``/`` is a path on the endpoint's host; other ``{path}`` placeholders take values from
    the message, URL-encoded (``{endpoint}/hoso/{payload.dossier_no}``).
    """

    def __init__(self, template: str | None, endpoint: str, where: str = "url") -> None:
        self.endpoint = endpoint.rstrip("/")
        parts = urlsplit(endpoint)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        template = template or endpoint
        if template.startswith("/"):
            template = self.origin + template
        template = template.replace(
            "{endpoint}", self.endpoint.replace("{", "{{").replace("}", "}}")
        )
        if not template.startswith(("http://", "https://")):
            raise AdapterConfigError(
                f"option {where!r}: must be an http(s) URL, start with / or with {{endpoint}}"
            )
        try:
            self._parts = template_parts(template, where)
        except MappingError as exc:
            raise AdapterConfigError(f"option {where!r}: {exc}") from None
        only = self._parts[0] if len(self._parts) == 1 else None
        self.static: str | None = only if isinstance(only, str) else None

    def render(self, doc: Any) -> str:
        if self.static is not None:
            return self.static
        return render(self._parts, doc, _url_value)


def _url_value(value: Any) -> str:
    return quote(str(value), safe="")
