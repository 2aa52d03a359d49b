"""The HTTP endpoint of a bus process: ``/metrics``, ``/livez`` and ``/readyz``.

* ``/livez`` — 200 while the event loop answers (a wedged loop times the probe out).
* ``/readyz`` — 200 when every component of the process is connected to the broker, has
  declared its topology and is consuming, and routes are loaded; 503 otherwise (connecting,
  reconnecting after a broker loss, or stopping). The JSON body says which component is not.
* ``/metrics`` — Prometheus exposition (OpenMetrics when the scraper asks for it).

One small aiohttp server on the process's own event loop. A port that cannot be bound is
logged as an error and the process goes on delivering without it: the ``up`` metric of the
scrape (and the "process down" alert) makes the missing endpoint visible.

Shared port: when ``PROMETHEUS_MULTIPROC_DIR`` is set, several processes on one host bind the
same port (``SO_REUSEPORT``) and each scrape, whichever process answers it, returns the
metrics of all of them, aggregated by prometheus-client's multiprocess mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, exposition, multiprocess

from bus.observability.metrics import Metrics, multiprocess_dir

log = structlog.get_logger("bus.observability.endpoint")

REFRESH_INTERVAL = 2.0  # multiprocess mode: how often each process writes its sampled gauges


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness condition: a name and a function answering (ready, state)."""

    name: str
    probe: Callable[[], tuple[bool, str]]


def supervisor_check(name: str, supervisor: Any) -> Check:
    """Ready when a :class:`~bus.broker.connection.Supervisor` is connected, declared, consuming."""

    def probe() -> tuple[bool, str]:
        if supervisor.stopping:
            return False, "stopping"
        if supervisor.ready.is_set():
            return True, "consuming"
        return False, "connecting"

    return Check(name, probe)


class HttpEndpoint:
    """Serves metrics and health for one process until :meth:`stop`."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        checks: list[Check] | None = None,
        routes_digest: str = "",
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.checks: list[Check] = list(checks or [])
        self.routes_digest = routes_digest
        self.multiprocess = multiprocess_dir() is not None
        self.bound_port: int | None = None
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        if self.multiprocess:
            self._registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._registry)
        else:
            self._registry = metrics.registry

    def add_check(self, check: Check) -> None:
        self.checks.append(check)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, body) as ``/readyz`` answers it."""
        states = {}
        ready = bool(self.checks)
        for check in self.checks:
            ok, state = check.probe()
            states[check.name] = state
            ready = ready and ok
        routes = {"loaded": bool(self.routes_digest), "digest": self.routes_digest}
        ready = ready and routes["loaded"]
        for check in self.checks:
            self.metrics.ready.labels(check.name).set(1 if states[check.name] == "consuming" else 0)
        return ready, {"ready": ready, "components": states, "routes": routes}

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.get("/metrics", self._metrics),
                web.get("/livez", self._livez),
                web.get("/readyz", self._readyz),
            ]
        )
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        try:
            self.readiness()
            self.metrics.refresh()
        except Exception:  # a broken sampler must not hide the counters
            log.exception("metrics.refresh_failed")
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self._registry), headers={"Content-Type": content_type})

    async def _livez(self, _request: web.Request) -> web.Response:
        return web.json_response({"alive": True, "pid": os.getpid()})

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, body = self.readiness()
        body["pid"] = os.getpid()
        return web.Response(
            status=200 if ready else 503, body=orjson.dumps(body), content_type="application/json"
        )

    async def run(self) -> None:
        """Serve until :meth:`stop`; a port that cannot be bound is logged, never raised."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(
                runner, self.host, self.port, reuse_port=self.multiprocess or None, backlog=128
            )
            await site.start()
        except OSError as exc:
            log.error(
                "http.unavailable",
                host=self.host,
                port=self.port,
                error=str(exc),
                hint="set another port with --http-port or DVCBUS_*_HTTP_PORT",
            )
        else:
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or []
            self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
            log.info(
                "http.listening",
                url=f"http://{self.host}:{self.bound_port}",
                paths=["/metrics", "/livez", "/readyz"],
                shared=self.multiprocess,
            )
        while not self._stopping.is_set():
            if self.multiprocess:  # other processes answer scrapes too: keep our gauges fresh
                with contextlib.suppress(Exception):
                    self.readiness()
                    self.metrics.refresh()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), REFRESH_INTERVAL)

    async def stop(self) -> None:
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner.cleanup(), 5)
        if self.multiprocess:
            with contextlib.suppress(Exception):
                multiprocess.mark_process_dead(os.getpid())
