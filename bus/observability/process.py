"""The observability of one bus process: metrics and their hop sink, HTTP endpoint, queue poller.

``dvcbus run`` builds one :class:`ProcessObservability`, adds its sink to the process's hops,
tells it about the router and/or dispatcher it runs (readiness, in-flight, circuit states)
and runs its components beside them. It also gives the log masker the schemas' x-pii marks
and the credential values this process resolved, so neither reaches a log line.

A routes reload (SIGHUP, :class:`bus.routes.reload.RoutesReloader`) goes through it twice:
:meth:`ProcessObservability.learn_routes` before the router and dispatcher take the new
routes (new targets and types become label values before their first hop) and
:meth:`ProcessObservability.apply_routes` after them (routes info and load time, the
/readyz digest, the queues polled, and the new credentials protected in the logs).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog

from bus.observability.endpoint import HttpEndpoint, supervisor_check
from bus.observability.masking import LOG_MASKER
from bus.observability.metrics import Metrics, MetricsSink
from bus.observability.queues import QueueDepthPoller
from bus.routes.credentials import CredentialError

if TYPE_CHECKING:
    from bus.app import Loaded

log = structlog.get_logger("bus.observability")


class ProcessObservability:
    """Metrics, sink, endpoint and poller of one process, wired to what it runs."""

    def __init__(
        self, loaded: Loaded, *, http_port: int, http_host: str, poll_interval: float
    ) -> None:
        routes = loaded.routes
        self.metrics = Metrics(
            types={t for t, _ in loaded.schemas.message_types}, targets=routes.targets
        )
        self.sink = MetricsSink(self.metrics)
        self.endpoint: HttpEndpoint | None = None
        if http_port > 0:
            # Not ready until routes with a digest (read from a file) are in use.
            self.endpoint = HttpEndpoint(self.metrics, host=http_host, port=http_port)
        if routes.digest:
            self._routes_in_use(routes.digest)
        self.poller: QueueDepthPoller | None = None
        if poll_interval > 0:
            self.poller = QueueDepthPoller(
                loaded.settings.amqp_url,
                loaded.names,
                loaded.topology,
                self.metrics,
                interval=poll_interval,
            )

    def _routes_in_use(self, digest: str) -> None:
        self.metrics.set_routes(digest, time.time())
        if self.endpoint is not None:
            self.endpoint.routes_digest = digest

    # ------------------------------------------------------------- routes reload

    async def learn_routes(self, new: Loaded) -> None:
        """Before the new routes are used: their targets and types become label values."""
        types = {t for t, _ in new.schemas.message_types}
        if self.metrics.add_known(types, new.routes.targets):
            self.sink.reset()

    async def apply_routes(self, new: Loaded) -> None:
        """The new routes are in use: say so, poll their queues, protect their credentials."""
        await self.learn_routes(new)
        protect_logs(new)
        if self.poller is not None:
            self.poller.use_topology(new.topology)
        self.metrics.sync_lanes()
        if new.routes.digest:
            self._routes_in_use(new.routes.digest)

    def watch_audit(self, sink: Any) -> None:
        """Pending records, write failures and drops of the process's audit sink."""
        self.metrics.watch_audit(sink)

    def watch_router(self, router: Any) -> None:
        """Readiness of a :class:`bus.routing.router.Router`."""
        if self.endpoint is not None:
            self.endpoint.add_check(supervisor_check("router", router.supervisor))

    def watch_dispatcher(self, dispatcher: Any) -> None:
        """Readiness, in-flight deliveries and circuit states of a dispatcher."""
        if self.endpoint is not None:
            self.endpoint.add_check(supervisor_check("dispatcher", dispatcher.supervisor))
        self.metrics.watch_lanes(dispatcher.lanes)
        listeners = getattr(dispatcher, "circuit_listeners", None)
        if listeners is not None:
            listeners.append(self.metrics.set_circuit_state)
        for name, lane in dispatcher.lanes.items():
            breaker = getattr(lane, "breaker", None)
            state = getattr(breaker, "state", None)
            if isinstance(state, str):
                self.metrics.set_circuit_state(name, state)

    def watch_component(self, name: str, component: Any) -> None:
        """Readiness of any other component that has a ``supervisor``."""
        if self.endpoint is not None and hasattr(component, "supervisor"):
            self.endpoint.add_check(supervisor_check(name, component.supervisor))

    @property
    def components(self) -> list[Any]:
        """What runs beside the router/dispatcher (``run()``/``stop()``, never ending early)."""
        return [c for c in (self.endpoint, self.poller) if c is not None]


def protect_logs(loaded: Loaded) -> None:
    """Give the log masker the x-pii marks and this bus's resolved credential values."""
    LOG_MASKER.use_schemas(loaded.schemas)
    secrets: list[str] = []
    for target in loaded.routes.targets.values():
        try:
            spec = target.spec()
        except CredentialError:  # the dispatcher reports it when it builds the target
            continue
        secrets.extend(v for v in spec.credentials.values() if isinstance(v, str))
    LOG_MASKER.add_secrets(secrets)


def build(loaded: Loaded, component: str, http_port: int | None = None) -> ProcessObservability:
    """The observability of a ``dvcbus run <component>`` process.

    The HTTP port is ``http_port`` when given, else the settings' port for the component
    (``router_http_port`` for ``router`` and ``all``, ``dispatcher_http_port`` for
    ``dispatcher``); 0 serves nothing.
    """
    s = loaded.settings
    protect_logs(loaded)
    if http_port is None:
        http_port = s.dispatcher_http_port if component == "dispatcher" else s.router_http_port
    return ProcessObservability(
        loaded,
        http_port=http_port,
        http_host=s.http_host,
        poll_interval=s.queue_poll_interval,
    )
