"""The generic REST kind: the canonical message as JSON over HTTP, outcome from the answer.

Options (``options:`` of the target in routes.yaml):
    method: POST            HTTP method
    headers: {...}          static extra headers
Credentials: ``token`` sends ``Authorization: Bearer <token>``.

Every request carries ``Idempotency-Key`` (the message id) and a W3C ``traceparent``, and
states its connect and read timeouts; the answer is read up to a cap so a hostile agency
cannot exhaust memory.
"""

from __future__ import annotations

import asyncio
import os
from typing import ClassVar

import aiohttp
import orjson

from adapters.base import (
    Adapter,
    Delivered,
    Outcome,
    PermanentFailure,
    TargetSpec,
    TransientFailure,
)
from bus.envelope import Message

MAX_RESPONSE_BYTES = 256 * 1024
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class RestAdapter(Adapter):
    """POSTs the canonical message to the target's endpoint."""

    kind: ClassVar[str] = "rest"

    def __init__(self, target: TargetSpec) -> None:
        super().__init__(target)
        options = target.options
        self.method = str(options.get("method", "POST")).upper()
        self.static_headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=target.connect_timeout, sock_read=target.read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=max(self.target.concurrency, 1), ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, raise_for_status=False
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def headers_for(self, message: Message) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": message.id,
            "traceparent": message.traceparent or _new_traceparent(),
            "X-Message-Type": message.type,
        }
        headers.update(self.static_headers)
        token = self.target.credentials.get("token")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def deliver(self, message: Message) -> Outcome:
        if self._session is None:
            await self.start()
        assert self._session is not None
        url = self.target.endpoint
        try:
            async with self._session.request(
                self.method, url, data=message.body, headers=self.headers_for(message)
            ) as response:
                body = await response.content.read(MAX_RESPONSE_BYTES)
                return classify(response.status, body)
        except TimeoutError:
            t = self.target
            return TransientFailure(
                f"timeout after connect {t.connect_timeout}s / read {t.read_timeout}s"
            )
        except aiohttp.ClientConnectionError as exc:
            return TransientFailure(f"connection failed: {type(exc).__name__}: {exc}")
        except aiohttp.ClientError as exc:
            return TransientFailure(f"HTTP client error: {type(exc).__name__}")
        except asyncio.CancelledError:
            raise


def classify(status: int, body: bytes) -> Outcome:
    """The outcome an HTTP answer means for the bus."""
    if 200 <= status < 300:
        return Delivered(reference=_reference(body))
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientFailure(f"HTTP {status}")
    return PermanentFailure(f"HTTP {status}")


def _reference(body: bytes) -> str | None:
    """The agency's own id for the delivery, when it sends one back."""
    if not body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict):
        for key in ("reference", "id", "ma_ho_so", "MaHoSo"):
            value = doc.get(key)
            if isinstance(value, str | int):
                return str(value)
    return None


def _new_traceparent() -> str:
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
