"""Outcome classification: what an agency's answer, or a failed call, means for the bus.

One place holds the rules every adapter kind applies, so an operator reads them once
(docs/adapters.md has the same table) and a new kind cannot drift from them:

====================================================  ===========  =================================
What happened                                         Outcome      Why
====================================================  ===========  =================================
connection refused, reset, closed before the answer   transient    the agency is down or restarting
connect or read timeout, or no whole answer in both   transient    the agency is slow; try later
TLS handshake or certificate failure                  transient    fixed on a side, then retried
HTTP 2xx that the kind understands                    delivered
HTTP 408, 425, 429, 500, 502, 503, 504, other 5xx     transient    overloaded, or a gateway failed
HTTP 400, 401, 403, 404, 422, other 4xx, 1xx          permanent    the agency refuses this message
HTTP 3xx (redirects are never followed)               permanent    the target's address is wrong
SOAP fault Server / Receiver (any ``Server.*``)       transient    the agency's side failed
SOAP fault Client / Sender, VersionMismatch, other    permanent    the request itself is refused
a non-zero code field and no declared code rule       permanent    an HTTP 200 can carry a refusal
an answer that cannot be understood                   permanent    quoted (first bytes, masked)
an answer over the size cap, DTDs, XML entities       permanent    refused unread / unexpanded
====================================================  ===========  =================================

Reasons are for operators: short, in plain words, never a secret, and any agency text quoted
in them passes through :func:`adapters.masking.mask_text` first.
"""

from __future__ import annotations

import asyncio
import ssl

import aiohttp

from adapters.base import Outcome, PermanentFailure, TransientFailure
from adapters.masking import mask_text

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
QUOTE_BYTES = 120


class AnswerTooLarge(Exception):
    """The agency's answer is larger than the cap; it was not read further."""

    def __init__(self, cap: int, announced: int | None = None) -> None:
        self.cap = cap
        self.announced = announced
        size = f"announced {announced} bytes" if announced is not None else "kept coming"
        super().__init__(f"answer over the {cap}-byte cap ({size}): refused, not read further")


def is_transient_status(status: int) -> bool:
    """Whether an HTTP status means "try again later"."""
    return status in TRANSIENT_STATUSES or status >= 500


def for_status(
    status: int, detail: str = "", *, location: str | None = None
) -> TransientFailure | PermanentFailure:
    """The failure an unsuccessful HTTP status means; ``detail`` is appended (already masked).

    A 3xx is a redirect the HTTP client did not follow (following would resend a POST as a
    GET to wherever the agency points, and call the answer to that GET a delivery): it is
    permanent, and the reason says where it pointed (``location``, the Location header).
    """
    parts = [redirect_detail(location)] if 300 <= status < 400 else []
    if detail:
        parts.append(detail)
    reason = f"HTTP {status}" + (f": {'; '.join(parts)}" if parts else "")
    if is_transient_status(status):
        return TransientFailure(reason)
    return PermanentFailure(reason)


def redirect_detail(location: str | None) -> str:
    """Where a redirect pointed, masked and without its query (which may carry tickets)."""
    if not location or not location.strip():
        return "redirect without a Location, not followed"
    where = location.strip()
    cut = min((i for i in (where.find("?"), where.find("#")) if i >= 0), default=-1)
    if cut >= 0:
        where = where[:cut] + "?…"
    return f"redirect to {quote(where.encode())} not followed (check the target's endpoint)"


def soap_fault(code: str, message: str) -> TransientFailure | PermanentFailure:
    """The outcome of a SOAP fault, from its code's local name (SOAP 1.1 or 1.2).

    ``Server``/``Receiver`` (and dotted refinements such as ``Server.Busy``) are transient;
    ``Client``/``Sender``, ``VersionMismatch``, ``MustUnderstand`` and unknown codes are
    permanent: retrying the same request cannot change the answer.
    """
    local = code.rsplit(":", 1)[-1].strip()
    head = local.split(".", 1)[0]
    text = mask_text(" ".join(message.split()))[:200]
    reason = f"SOAP fault {local or '?'}" + (f": {text}" if text else "")
    if head in ("Server", "Receiver"):
        return TransientFailure(reason)
    return PermanentFailure(reason)


def quote(body: bytes, limit: int = QUOTE_BYTES) -> str:
    """The first bytes of an answer, decoded leniently, whitespace folded, personal data masked."""
    head = body[: limit * 2].decode("utf-8", "replace")
    text = " ".join(head.split())
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    text = mask_text(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)


def unreadable(what: str, body: bytes) -> PermanentFailure:
    """A permanent failure for an answer the adapter cannot understand, quoting its start."""
    return PermanentFailure(f"unreadable answer ({what}, {len(body)} bytes): {quote(body)}")


def for_exception(exc: BaseException, *, connect_timeout: float, read_timeout: float) -> Outcome:
    """Translate a transport exception into an outcome; cancellation is never swallowed."""
    if isinstance(exc, asyncio.CancelledError):
        raise exc
    if isinstance(exc, AnswerTooLarge):
        return PermanentFailure(str(exc))
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TransientFailure(f"connect timeout after {connect_timeout:g}s")
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return TransientFailure(f"read timeout after {read_timeout:g}s")
    if isinstance(exc, TimeoutError):  # the whole request's limit (adapters.http)
        return TransientFailure(
            f"timeout: no complete answer within {connect_timeout + read_timeout:g}s "
            f"(connect {connect_timeout:g}s + read {read_timeout:g}s)"
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return TransientFailure(f"TLS failure: {_tls_detail(exc)}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return TransientFailure(
                f"connection failed: connection refused by {exc.host}:{exc.port}"
            )
        return TransientFailure(
            f"connection failed: cannot connect to {exc.host}:{exc.port} "
            f"({exc.os_error.strerror or type(exc.os_error).__name__})"
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransientFailure("connection failed: closed by the agency before its answer")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransientFailure("connection failed: closed in the middle of the answer")
    if isinstance(exc, aiohttp.ClientOSError):
        return TransientFailure(f"connection failed: {exc.strerror or type(exc).__name__}")
    if isinstance(exc, aiohttp.InvalidURL):
        return PermanentFailure("invalid URL built for this message")
    if isinstance(exc, aiohttp.ClientResponseError):
        return PermanentFailure(f"not an HTTP answer: {mask_text(str(exc.message))[:120]}")
    if isinstance(exc, aiohttp.ClientError):
        return TransientFailure(f"HTTP client error: {type(exc).__name__}")
    if isinstance(exc, ssl.SSLError):
        return TransientFailure(f"TLS failure: {exc.reason or type(exc).__name__}")
    if isinstance(exc, OSError):
        return TransientFailure(f"connection failed: {exc.strerror or type(exc).__name__}")
    return TransientFailure(f"unexpected error: {type(exc).__name__}")


def _tls_detail(exc: BaseException) -> str:
    cert_error = getattr(exc, "certificate_error", None)
    if cert_error is not None:
        return getattr(cert_error, "verify_message", None) or str(cert_error)
    inner = getattr(exc, "os_error", None)
    if isinstance(inner, ssl.SSLError):
        return inner.reason or type(inner).__name__
    return type(exc).__name__


def for_bug(exc: BaseException, where: str) -> TransientFailure:
    """The outcome of an unexpected error inside an adapter (a bug, not the agency's answer).

    Transient, so the message waits in the retry tiers while the bug is fixed, and reported
    by type and place only: an exception's text may quote message data.
    """
    if isinstance(exc, asyncio.CancelledError):
        raise exc
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    at = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
    return TransientFailure(f"adapter error in {where}: {type(exc).__name__}{at}")
