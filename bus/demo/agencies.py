"""Stand-in agencies for the loopback HTTP targets of a routes.yaml.

Each stand-in answers the way its target's adapter kind expects (JSON for REST kinds, the
WSDL's envelopes for SOAP kinds, a token or login endpoint when the kind authenticates):
the kind describes that itself through its ``standin_profile`` class method.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from adapters.testing.standin import Endpoint, Profile, StandinServer
from bus.delivery import adapter_registry
from bus.routes import RoutesConfig, load_routes
from bus.routes.model import Target

log = structlog.get_logger("bus.standin")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def endpoints(config: RoutesConfig) -> list[Endpoint]:
    """One stand-in endpoint per target whose endpoint is an http URL on loopback."""
    found = []
    for name, target in sorted(config.targets.items()):
        parts = urlsplit(target.endpoint)
        if parts.scheme == "http" and parts.hostname in LOOPBACK:
            found.append(Endpoint(name, target.endpoint, profile_for(target)))
    return found


def profile_for(target: Target) -> Profile | None:
    """How the stand-in for ``target`` answers, as its adapter kind describes it."""
    try:
        cls = adapter_registry.load(target.adapter)
        describe = getattr(cls, "standin_profile", None)
        if describe is None:
            return None
        return describe(target.spec(resolve_credentials=False))
    except Exception as exc:  # a broken kind must not stop the other stand-ins
        log.warning("standin.default_profile", target=target.name, error=str(exc))
        return None


async def serve_forever(routes_file: Path, *, keep_bodies: bool = False) -> None:
    """Serve stand-ins for every loopback target until cancelled (Ctrl-C / SIGTERM)."""
    eps = endpoints(load_routes(routes_file))
    server = StandinServer(eps, keep_bodies=keep_bodies)
    await server.start()
    for ep in eps:
        log.info("standin.listening", target=ep.target, url=ep.url)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
