"""Client certificates: whose a presented certificate is, and refusing one that is nobody's.

A certificate reaches the gateway one of two ways: over its own TLS (OpenSSL verified the
chain against ``gateway_tls_client_ca`` in the handshake), or in a header written by a
reverse proxy that terminated TLS (``gateway_client_cert_header``). The header is read only
from the addresses in ``gateway_trusted_proxies``, and its certificate is verified here
against the same CA; from any other address it is ignored, so a client cannot name a
certificate it does not hold.

senders.yaml's ``auth.certificate`` (fingerprints and/or the whole subject) says whose a
certificate is. A sender that has one must present it on every request, with or without
its bearer token; a certificate alone identifies its sender. A certificate registered for
nobody, or for another sender than the token's (whether or not the token's sender has one
of its own), is refused ``certificate_not_registered``.
Parsed and verified certificates are cached, so a connection's requests cost a dict lookup.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import structlog
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

from bus.errors import FatalSetupError
from bus.ingress.refusals import Refusal, Refused
from bus.ingress.senders import SendersConfig
from bus.settings import Settings

log = structlog.get_logger("bus.ingress.client_certs")
MAX_HEADER_CHARS = 16384
CACHE_SIZE = 4096
PROXY_CACHE_SECONDS = 300.0  # a verified header certificate is verified again after this


@dataclass(frozen=True, slots=True)
class Presented:
    """A certificate the client presented, already verified against the client CA."""

    fingerprint: bytes  # SHA-256 of its DER
    subject: x509.Name
    via: str  # "TLS" or "the header of proxy <address>"

    @property
    def fingerprint_text(self) -> str:
        """``sha256:AB:CD:…``, as ``openssl x509 -fingerprint -sha256`` prints it."""
        return "sha256:" + self.fingerprint.hex(":").upper()


@dataclass(frozen=True, slots=True)
class Registered:
    """A sender's ``auth.certificate``, ready to compare."""

    fingerprints: frozenset[bytes]
    subject: x509.Name | None

    def matches(self, cert: Presented) -> bool:
        if self.fingerprints and cert.fingerprint not in self.fingerprints:
            return False
        return self.subject is None or self.subject == cert.subject


def fingerprint_bytes(spec: str) -> bytes:
    """``sha256:AB:CD:…`` or ``sha256:abcd…`` as its 32 bytes."""
    return bytes.fromhex(spec.removeprefix("sha256:").replace(":", ""))


def registered_of(senders: SendersConfig) -> dict[str, Registered]:
    """Each sender's registered certificate (senders without one are absent)."""
    out = {}
    for sid, sender in senders.senders.items():
        cert = sender.auth.certificate
        if cert is None:
            continue
        subject = x509.Name.from_rfc4514_string(cert.subject) if cert.subject else None
        out[sid] = Registered(frozenset(map(fingerprint_bytes, cert.fingerprint)), subject)
    return out


class ClientCertificates:
    """Who a request's client certificate says it is (see the module's docstring)."""

    def __init__(
        self,
        registered: dict[str, Registered],
        *,
        ca_file: Path | None = None,
        proxies: str = "",
        header: str = "X-Client-Cert",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registered = registered
        self.header = header
        self._proxies = [
            ipaddress.ip_network(p.strip(), strict=False) for p in proxies.split(",") if p.strip()
        ]
        self._store: verification.Store | None = None
        if ca_file is not None and self._proxies:
            try:
                self._store = verification.Store(
                    x509.load_pem_x509_certificates(ca_file.read_bytes())
                )
            except (OSError, ValueError) as exc:
                raise FatalSetupError(
                    f"gateway_tls_client_ca {ca_file}: cannot read its certificates ({exc})"
                ) from None
        self._by_fingerprint = {
            fp: sid for sid, reg in registered.items() for fp in reg.fingerprints
        }
        self._tls_cache: dict[bytes, Presented] = {}
        self._proxy_cache: dict[str, tuple[float, Presented]] = {}
        self._clock = clock

    @classmethod
    def build(
        cls, settings: Settings, senders: SendersConfig
    ) -> tuple[ClientCertificates, dict[str, str]]:
        """The checker, and the senders that cannot be served (a certificate to present and
        no client CA to check it against), each with why."""
        registered = registered_of(senders)
        disabled = {}
        if settings.gateway_tls_client_ca is None or (
            settings.gateway_tls_cert is None and not settings.gateway_trusted_proxies
        ):
            why = (
                "its auth.certificate cannot be checked: set gateway_tls_client_ca, with "
                "gateway_tls_cert/key or gateway_trusted_proxies"
            )
            disabled = dict.fromkeys(registered, why)
        checker = cls(
            registered,
            ca_file=settings.gateway_tls_client_ca,
            proxies=settings.gateway_trusted_proxies,
            header=settings.gateway_client_cert_header,
        )
        return checker, disabled

    # ------------------------------------------------------------------ who it is

    def identify(
        self, request: web.Request, token_sender: str | None, sent_authorization: bool
    ) -> tuple[str | None, str | None]:
        """The sender (None: not authenticated, 401) and the presented certificate's
        fingerprint; raises :class:`Refused` ``certificate_not_registered``."""
        cert, ignored = self.presented(request)
        fingerprint = cert.fingerprint_text if cert is not None else None
        if token_sender is None and sent_authorization:
            return None, fingerprint  # a wrong token is a wrong token, whatever the cert
        if token_sender is not None:
            wanted = self.registered.get(token_sender)
            if wanted is None:
                owner = self._owner(cert) if cert is not None else None
                if owner is not None:  # another sender's certificate: someone mixed them up
                    raise _not_registered(
                        f"certificate {fingerprint} (by {cert.via}) is registered for another "
                        f"sender than {token_sender}"
                    )
                return token_sender, fingerprint  # a sender that needs no certificate
            if cert is None:
                raise _not_registered(
                    f"sender {token_sender} must present its client certificate; none was "
                    f"presented{ignored}"
                )
            if not wanted.matches(cert):
                raise _not_registered(
                    f"certificate {fingerprint} (by {cert.via}) is not registered for sender "
                    f"{token_sender}"
                )
            return token_sender, fingerprint
        if cert is None:
            return None, None
        sid = self._owner(cert)
        if sid is None:
            raise _not_registered(
                f"certificate {fingerprint} (by {cert.via}) is not registered for any sender"
            )
        return sid, fingerprint

    def _owner(self, cert: Presented) -> str | None:
        """The sender ``cert`` is registered for (routes check refuses a shared one)."""
        sid = self._by_fingerprint.get(cert.fingerprint)
        if sid is not None and self.registered[sid].matches(cert):
            return sid
        return next((s for s, r in self.registered.items() if r.matches(cert)), None)

    # ------------------------------------------------------------------ what was presented

    def presented(self, request: web.Request) -> tuple[Presented | None, str]:
        """The client's certificate, and a note when a proxy header was ignored."""
        transport = request.transport
        if transport is None:
            return None, ""
        value = request.headers.get(self.header) if self.header else None
        if value:
            peer = _peer_address(transport.get_extra_info("peername"))
            if peer is not None and any(peer in net for net in self._proxies):
                return self._from_header(value, peer), ""
            ignored = f" ({self.header} from {peer}, not a trusted proxy, is ignored)"
            log.warning("gateway.cert_header_ignored", peer=str(peer), header=self.header)
        else:
            ignored = ""
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return None, ignored
        cert = self._tls_cache.get(der)
        if cert is None:
            parsed = x509.load_der_x509_certificate(der)
            cert = Presented(hashlib.sha256(der).digest(), parsed.subject, "TLS")
            if len(self._tls_cache) >= CACHE_SIZE:
                self._tls_cache.clear()
            self._tls_cache[der] = cert
        return cert, ignored

    def _from_header(self, value: str, peer: Any) -> Presented:
        now = self._clock()
        cached = self._proxy_cache.get(value)
        if cached is not None and cached[0] > now:
            return cached[1]
        assert self._store is not None  # proxies are configured only with the client CA
        via = f"the header of proxy {peer}"
        leaf = _certificate_in(value)
        if leaf is None:
            raise _not_registered(f"the {self.header} header of proxy {peer} holds no certificate")
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        verifier = verification.PolicyBuilder().store(self._store).time(at).build_client_verifier()
        der = leaf.public_bytes(Encoding.DER)
        fingerprint = hashlib.sha256(der).digest()
        try:
            verifier.verify(leaf, [])
        except verification.VerificationError:
            raise _not_registered(
                f"certificate sha256:{fingerprint.hex(':').upper()} (by {via}) does not chain "
                "to gateway_tls_client_ca, or is not valid now for client authentication"
            ) from None
        cert = Presented(fingerprint, leaf.subject, via)
        expires = min(now + PROXY_CACHE_SECONDS, leaf.not_valid_after_utc.timestamp())
        if len(self._proxy_cache) >= CACHE_SIZE:
            self._proxy_cache.clear()
        self._proxy_cache[value] = (expires, cert)
        return cert


def _not_registered(detail: str) -> Refused:
    """403 ``certificate_not_registered``: every certificate refusal, with what was wrong."""
    return Refused(Refusal.CERTIFICATE_NOT_REGISTERED, detail)


def _peer_address(peername: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(peername[0])
    except (TypeError, ValueError, IndexError):
        return None


def _certificate_in(value: str) -> x509.Certificate | None:
    """The certificate in a proxy's header: URL-encoded (or plain) PEM, or base64 DER."""
    if len(value) > MAX_HEADER_CHARS:
        return None
    text = unquote(value).strip()
    try:
        if "-----BEGIN CERTIFICATE-----" in text:
            return x509.load_pem_x509_certificate(text.encode("ascii"))
        return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
    except (ValueError, UnicodeEncodeError, binascii.Error):
        return None
