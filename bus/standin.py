"""Stand-in agency systems: real HTTP servers on loopback that record what they receive.

Used by the demo, the integration tests and agency teams before go-live. Each target gets
its own listening port (as a real agency has its own host); behaviour is programmable per
target over a small control API served on every port:

    GET  /_standin/requests?since=N[&target=T][&bodies=1]   what was received, in order
    POST /_standin/behaviour  {"target": T, "status": 503, "delay": 2.5, "body": {...}, "times": 3}
    POST /_standin/reset                                     forget requests and behaviours
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

CONTROL = "/_standin"


@dataclass(slots=True)
class Behaviour:
    """How a stand-in answers: status, JSON body, delay; ``times`` limits it to N requests."""

    status: int = 200
    delay: float = 0.0
    body: Any = None
    times: int | None = None


@dataclass(slots=True)
class Received:
    seq: int
    target: str
    method: str
    path: str
    received_at: float
    headers: dict[str, str]
    body: bytes

    def as_json(self, with_body: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "seq": self.seq,
            "target": self.target,
            "method": self.method,
            "path": self.path,
            "received_at": self.received_at,
            "idempotency_key": self.headers.get("Idempotency-Key"),
            "traceparent": self.headers.get("traceparent"),
            "message_type": self.headers.get("X-Message-Type"),
        }
        if with_body:
            doc["headers"] = self.headers
            doc["body"] = self.body.decode("utf-8", "replace")
        return doc


@dataclass
class StandinState:
    """Everything the stand-ins have received, and how each target should answer."""

    keep_bodies: bool = True
    received: list[Received] = field(default_factory=list)
    behaviours: dict[str, list[Behaviour]] = field(default_factory=dict)
    seq: int = 0

    def behaviour_for(self, target: str) -> Behaviour:
        queue = self.behaviours.get(target)
        if not queue:
            return Behaviour()
        current = queue[0]
        if current.times is not None:
            current.times -= 1
            if current.times <= 0:
                queue.pop(0)
        return current


def _agency_handler(state: StandinState, target: str) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        state.seq += 1
        state.received.append(
            Received(
                seq=state.seq,
                target=target,
                method=request.method,
                path=request.path_qs,
                received_at=time.time(),
                headers=dict(request.headers),
                body=body if state.keep_bodies else b"",
            )
        )
        behaviour = state.behaviour_for(target)
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        answer = behaviour.body
        if answer is None:
            ok = 200 <= behaviour.status < 300
            answer = {
                "error_code": "0" if ok else "1",
                "message": "Thành công" if ok else "Yêu cầu của bạn thực hiện thất bại",
                "reference": f"{target}-{state.seq}",
            }
        return web.Response(
            status=behaviour.status, body=orjson.dumps(answer), content_type="application/json"
        )

    return handle


def _control_routes(state: StandinState) -> list[web.RouteDef]:
    async def requests(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        target = request.query.get("target")
        with_body = request.query.get("bodies") == "1"
        items = [
            r.as_json(with_body)
            for r in state.received[since:]
            if target is None or r.target == target
        ]
        return web.Response(
            body=orjson.dumps({"requests": items, "next": len(state.received)}),
            content_type="application/json",
        )

    async def behaviour(request: web.Request) -> web.Response:
        doc = await request.json()
        target = doc.pop("target")
        state.behaviours.setdefault(target, []).append(Behaviour(**doc))
        return web.json_response({"ok": True})

    async def reset(_request: web.Request) -> web.Response:
        state.received.clear()
        state.behaviours.clear()
        return web.json_response({"ok": True})

    return [
        web.get(f"{CONTROL}/requests", requests),
        web.post(f"{CONTROL}/behaviour", behaviour),
        web.post(f"{CONTROL}/reset", reset),
    ]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A target's stand-in: its name and the loopback URL routes.yaml gives it."""

    target: str
    url: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


class StandinServer:
    """One aiohttp app per port; every agency path of that port answers for its target."""

    def __init__(self, endpoints: list[Endpoint], *, keep_bodies: bool = True) -> None:
        self.endpoints = endpoints
        self.state = StandinState(keep_bodies=keep_bodies)
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        by_port: dict[tuple[str, int], list[Endpoint]] = {}
        for ep in self.endpoints:
            by_port.setdefault((ep.host, ep.port), []).append(ep)
        for (host, port), eps in by_port.items():
            app = web.Application(client_max_size=8 * 1024 * 1024)
            app.add_routes(_control_routes(self.state))
            for ep in eps:
                path = urlsplit(ep.url).path or "/"
                app.router.add_route("*", path, _agency_handler(self.state, ep.target))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host, port, backlog=1024).start()
            self._runners.append(runner)

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()


class StandinThread:
    """Runs a :class:`StandinServer` on its own event loop in a thread (for tests)."""

    def __init__(self, endpoints: list[Endpoint], *, keep_bodies: bool = True) -> None:
        self.server = StandinServer(endpoints, keep_bodies=keep_bodies)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def state(self) -> StandinState:
        return self.server.state

    def __enter__(self) -> StandinThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def program(self, target: str, behaviour: Behaviour) -> None:
        """Change how ``target`` answers from now on (thread-safe)."""
        self._loop.call_soon_threadsafe(
            lambda: self.state.behaviours.setdefault(target, []).append(behaviour)
        )

    def received(self, target: str | None = None) -> list[Received]:
        items = list(self.state.received)
        return [r for r in items if target is None or r.target == target]
