"""HTTP to the gateway: ``send`` a message, retried until the gateway holds it or refuses it.

A 202 means the broker holds the message. A 503 (the broker did not confirm), a 429 (above
the sender's rate), a 409 ``in_flight`` (the first attempt is still being handled), a 408
(the body came too slowly), another 5xx (a proxy in front of the gateway) or no answer at
all is retried after the gateway's ``Retry-After`` (or a capped backoff when it
gives none), always with the same body bytes and the same ``Idempotency-Key``: the gateway
answers a repeated key with the first 202, so a retry never makes a second message. Any
other 4xx is a :class:`~dvcbus_client.errors.Refused` with the gateway's reason code.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from dvcbus_client.errors import GatewayUnavailable, Refused

RETRIED_STATUSES = frozenset({408, 429})  # and every 5xx, and 409 in_flight
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The gateway's 202: the broker holds message ``id``; ``location`` is where to ask."""

    id: str
    location: str
    idempotency_key: str
    attempts: int


def body_of(message: Mapping[str, Any] | bytes) -> bytes:
    """The bytes sent, the same for every attempt (a key is bound to its body's bytes)."""
    if isinstance(message, bytes):
        return message
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def retry_after(response: httpx.Response) -> float | None:
    """The seconds a ``Retry-After`` asks for (delta-seconds only; the gateway sends no dates)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class GatewayClient:
    """A sender's HTTP client to the gateway. One per sender; safe to share across threads.

    ``token``: the sender's bearer token (None for a sender known by its client certificate,
    ``cert=(certfile, keyfile)``). ``verify``: the CA file of the gateway's certificate (or
    True for the system's). ``attempts``: how many times one message is tried; ``max_wait``:
    the most seconds waited between two attempts, whatever ``Retry-After`` asks.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        attempts: int = 5,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        verify: str | bool = True,
        cert: tuple[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            verify=_ssl_context(verify, cert),
            transport=transport,
        )
        self.attempts = attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self._sleep = sleep

    def send(
        self, message: Mapping[str, Any] | bytes, idempotency_key: str | None = None
    ) -> Accepted:
        """Post one message until it is accepted (returns its id) or refused (raises).

        Raises :class:`Refused` for a 4xx the gateway will give again, and
        :class:`GatewayUnavailable` when every attempt was answered 5xx/429/408/409
        ``in_flight`` or not at all.
        """
        body = body_of(message)
        key = idempotency_key or str(uuid.uuid4())
        last = ""
        for attempt in range(1, self.attempts + 1):
            wait: float | None = None
            try:
                response = self._http.post(
                    "/v1/messages", content=body, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError as exc:  # no answer: the message may or may not be held
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 202:
                    doc = response.json()
                    return Accepted(doc["id"], response.headers.get("Location", ""), key, attempt)
                problem = _problem(response)
                reason = str(problem.get("reason", ""))
                if _retried(response.status_code, reason):
                    wait = retry_after(response)
                    last = f"{response.status_code} {reason}: {problem.get('detail', '')}"
                else:
                    raise Refused(
                        response.status_code,
                        reason or f"http_{response.status_code}",
                        str(problem.get("detail", response.text[:500])),
                        problem.get("errors"),
                        key,
                    )
            if attempt < self.attempts:
                self._sleep(self._wait(attempt, wait))
        raise GatewayUnavailable(self.attempts, last, key)

    def status(self, message_id: str) -> dict[str, Any]:
        """Where a message this sender sent is (``GET /v1/messages/{id}``)."""
        response = self._http.get(f"/v1/messages/{message_id}")
        if response.status_code != 200:
            problem = _problem(response)
            raise Refused(
                response.status_code,
                str(problem.get("reason", f"http_{response.status_code}")),
                str(problem.get("detail", "")),
            )
        doc: dict[str, Any] = response.json()
        return doc

    def _wait(self, attempt: int, asked: float | None) -> float:
        if asked is None:
            asked = self.backoff * 2 ** (attempt - 1)
        return min(asked, self.max_wait)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _retried(status: int, reason: str) -> bool:
    """Whether the same request, sent again later, may be accepted."""
    return status in RETRIED_STATUSES or status >= 500 or reason == "in_flight"


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _ssl_context(verify: str | bool, cert: tuple[str, str] | None) -> Any:
    """httpx's ``verify``: a context that also presents the client certificate, if any."""
    if cert is None and not isinstance(verify, str):
        return verify
    import ssl

    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        context = ssl.create_default_context(cafile=verify)
    else:
        context = ssl.create_default_context()
    if cert is not None:
        context.load_cert_chain(*cert)
    return context
