"""Stand-in agencies for the loopback HTTP targets of a routes.yaml."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from bus.routes import RoutesConfig, load_routes
from bus.standin import Endpoint, StandinServer

log = structlog.get_logger("bus.standin")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def endpoints(config: RoutesConfig) -> list[Endpoint]:
    """One stand-in endpoint per target whose endpoint is an http URL on loopback."""
    found = []
    for name, target in sorted(config.targets.items()):
        parts = urlsplit(target.endpoint)
        if parts.scheme == "http" and parts.hostname in LOOPBACK:
            found.append(Endpoint(name, target.endpoint))
    return found


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
