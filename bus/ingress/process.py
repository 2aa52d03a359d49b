"""``dvcbus run gateway``: load, check and wire the gateway process, then run it until a signal.

Everything is read and checked before the first connection (settings, schemas, routes,
senders.yaml, the senders' tokens), like the router and dispatcher: a broken file stops
the process at start with the problem. The gateway does not declare the broker topology
(the router does); it waits for the ingress exchange to exist.
"""

from __future__ import annotations

import structlog

from bus import app
from bus.broker.sending import user_of
from bus.ingress import tls
from bus.ingress.client_certs import ClientCertificates
from bus.ingress.gateway import Gateway
from bus.ingress.payment_callback import PaymentCallback
from bus.ingress.publishing import IngressPublisher
from bus.ingress.senders import load_senders
from bus.ingress.soap_endpoint import SoapEndpoint
from bus.ingress.tokens import TokenBook
from bus.observability.endpoint import Check, HttpEndpoint
from bus.observability.masking import LOG_MASKER
from bus.observability.metrics import Metrics, MetricsSink

log = structlog.get_logger("bus.ingress")


def readiness(publisher: IngressPublisher) -> Check:
    """Ready when connected to the broker and confirms are flowing."""

    def probe() -> tuple[bool, str]:
        if publisher.supervisor.stopping:
            return False, "stopping"
        if not publisher.supervisor.ready.is_set():
            return False, "connecting"
        if not publisher.ready:
            return False, "confirms_overdue"
        return True, "consuming"

    return Check("gateway", probe)


def build(loaded: app.Loaded) -> tuple[list[app.Component], Gateway]:
    """The gateway's components, in the order they start (and stop)."""
    s = loaded.settings
    types = {t for t, _ in loaded.schemas.message_types}
    senders = load_senders(s.senders_path, known_types=types)
    tokens, disabled, secrets = TokenBook.build(senders)
    certificates, cannot_check = ClientCertificates.build(s, senders)
    ssl_context = tls.server_context(s)  # a certificate that cannot be read stops it here
    for sid, why in {**disabled, **cannot_check}.items():
        log.error("gateway.sender_disabled", sender=sid, error=why)
    LOG_MASKER.use_schemas(loaded.schemas)
    LOG_MASKER.add_secrets(secrets)
    hops = app.build_hops(loaded)
    metrics = Metrics(types=types, targets=loaded.routes.targets)
    hops.add(MetricsSink(metrics))
    store = app.open_store(loaded)
    audit = app.build_audit(loaded, store)
    hops.add(audit)
    metrics.watch_audit(audit)
    if s.ingress_identity == "require" and user_of(s.amqp_url) != s.gateway_user:
        # The router trusts x-dvcbus-sender from gateway_broker_user only: every message
        # this gateway publishes would be dead-lettered unauthorised.
        log.error(
            "gateway.user_not_trusted",
            user=user_of(s.amqp_url),
            gateway_broker_user=s.gateway_user,
            detail="connect as gateway_broker_user, or set it to this gateway's user",
        )
    publisher = IngressPublisher(
        s.amqp_url,
        loaded.names,
        confirm_timeout=s.gateway_confirm_timeout,
        reconnect_delay_max=s.reconnect_delay_max,
    )
    metrics.add_sampler(lambda: metrics.gateway_confirms_pending.set(publisher.in_flight))
    endpoint = HttpEndpoint(metrics, host=s.gateway_host, port=s.gateway_port)
    endpoint.routes_digest = loaded.routes.digest
    endpoint.add_check(readiness(publisher))
    http_app = endpoint.app()
    gateway = Gateway(
        s, loaded.schemas, senders, tokens, store, hops, publisher, http_app,
        certificates=certificates, ssl_context=ssl_context,
    )  # fmt: skip
    gateway.reads = metrics.gateway_reads
    SoapEndpoint(gateway).attach(http_app)  # POST /v1/soap, GET /v1/soap?wsdl
    PaymentCallback(gateway).attach(http_app)  # POST /v1/payments/callback
    # Stopped in this order: no new requests, then the last confirms, then the audit trail.
    return [gateway, publisher, audit], gateway
