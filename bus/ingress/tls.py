"""The gateway's TLS server context: its own certificate, and client certificates (mTLS).

Client certificates are asked for, not required (``CERT_OPTIONAL``): senders that use a
bearer token only still connect. A certificate that is presented must chain to
``gateway_tls_client_ca``, or OpenSSL ends the handshake; whose certificate it is, and
whether its sender needs one, is :mod:`bus.ingress.client_certs`'s business.
"""

from __future__ import annotations

import ssl

from bus.errors import FatalSetupError
from bus.settings import Settings


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The context the gateway listens with, or None for plain HTTP (no certificate set)."""
    if settings.gateway_tls_cert is None or settings.gateway_tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.gateway_tls_cert, settings.gateway_tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise FatalSetupError(
            f"gateway_tls_cert {settings.gateway_tls_cert} / gateway_tls_key "
            f"{settings.gateway_tls_key}: cannot load them ({_why(exc)})"
        ) from None
    if settings.gateway_tls_client_ca is not None:
        try:
            context.load_verify_locations(cafile=settings.gateway_tls_client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise FatalSetupError(
                f"gateway_tls_client_ca {settings.gateway_tls_client_ca}: cannot load it "
                f"({_why(exc)})"
            ) from None
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _why(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
