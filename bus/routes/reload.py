"""Applying an edited routes.yaml to running processes (SIGHUP), or keeping the last good one.

The file is checked exactly as at start; a broken file is refused with every problem (file,
line, reason) in the log and the process carries on with the routes it had. A good file is
handed to the router (new routing table, new queues declared) and the dispatcher (targets
added, changed or retired in place) without stopping either, and to the process's
observability (``ProcessObservability.learn_routes`` before them, ``apply_routes`` after:
metric labels, routes info, /readyz digest, polled queues, masked credentials).
Appliers run in the order given (``bus/cli/run.py``).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import structlog

from bus.app import Loaded, load
from bus.routes import RoutesError

log = structlog.get_logger("bus.routes")
Apply = Callable[[Loaded], Awaitable[None]]


class RoutesReloader:
    """A component: on SIGHUP, reload routes.yaml and apply it if (and only if) it is valid."""

    def __init__(self, loaded: Loaded, appliers: list[Apply]) -> None:
        self.current = loaded
        self.appliers = appliers
        self._wanted = asyncio.Event()
        self.reloads = 0
        self.refusals = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._wanted.set)
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self.reload()

    async def reload(self) -> bool:
        """Re-read the routes file; True when the new routes are in use."""
        try:
            new = await asyncio.to_thread(
                load,
                self.current.settings,
                check_adapter_options=self.current.checked_adapter_options,
            )
        except RoutesError as exc:
            self.refusals += 1
            log.error(
                "routes.refused",
                file=str(self.current.settings.routes_file),
                problems=[str(p) for p in exc.problems if p.severity == "error"],
                keeping=self.current.routes.digest[:12],
            )
            return False
        except Exception as exc:
            self.refusals += 1
            log.error("routes.refused", error=str(exc), keeping=self.current.routes.digest[:12])
            return False
        for apply in self.appliers:
            await apply(new)
        self.current = new
        self.reloads += 1
        log.info(
            "routes.reloaded",
            digest=new.routes.digest[:12],
            targets=len(new.routes.targets),
            routes=len(new.routes.routes),
        )
        return True

    async def stop(self) -> None:
        return None
