"""AMQP to the ingress exchange as the sender's own RabbitMQ user, on kombu.

Each message is published persistent, ``mandatory``, with publisher confirms, routing key =
its type (the ingress exchange is a topic exchange, and the sender's topic permission
allows its own types only), ``message_id`` = its id and ``user_id`` = the connection's user.
RabbitMQ refuses a ``user_id`` that is not the connection's user, so the router can trust
it: that is how the bus knows the sender (senders.yaml ``amqp_user``).

Connections come from a kombu pool; a lost connection is retried by kombu's ``ensure``
with the given retry policy. ``publish`` returns only once the broker confirmed the message;
a nack, a return (nothing bound for the type), a refusal or an exhausted retry policy raises.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp.exceptions
from kombu import Connection, Producer
from kombu.exceptions import OperationalError
from kombu.pools import ProducerPool

from dvcbus_client.errors import NotConfirmed, PublishRefused

DEFAULT_RETRY_POLICY: dict[str, Any] = {
    "max_retries": 5,
    "interval_start": 0.5,
    "interval_step": 1.0,
    "interval_max": 5.0,
}
NO_ROUTE = 312


@dataclass(frozen=True, slots=True)
class Published:
    """The broker confirmed message ``id`` of type ``type``: it holds it."""

    id: str
    type: str


class AmqpPublisher:
    """Publishes a sender's messages to the bus's ingress exchange; thread-safe.

    ``url``: ``amqp://USER:PASSWORD@host:5672/vhost`` with the sender's own user (its
    ``amqp_user``). ``exchange``: the ingress exchange, ``<namespace>.ingress``
    (``bus.ingress`` by default). ``pool_size``: connections kept open at most.
    ``user_id``: only for a connection whose user the URL does not name (a client
    certificate with the broker's EXTERNAL mechanism); the broker refuses any other.
    """

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "bus.ingress",
        pool_size: int = 4,
        retry_policy: Mapping[str, Any] | None = None,
        confirm_timeout: float = 10.0,
        heartbeat: int = 30,
        ssl: Any = None,
        user_id: str | None = None,
    ) -> None:
        self.exchange = exchange
        self.user = user_id or unquote(urlsplit(url).username or "guest")
        self.retry_policy = dict(DEFAULT_RETRY_POLICY if retry_policy is None else retry_policy)
        self.confirm_timeout = confirm_timeout
        self._connection = Connection(
            url,
            heartbeat=heartbeat,
            ssl=ssl,
            transport_options={"confirm_publish": True},
        )
        self._returned: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self._connections = self._connection.Pool(limit=pool_size)
        self._producers = ProducerPool(self._connections, limit=pool_size, Producer=self._producer)

    def _producer(self, connection: Connection) -> Producer:
        # exchange "" on the producer: kombu never declares it (a sender's user may write to
        # the ingress exchange, never configure it); each publish names the exchange.
        return Producer(connection, on_return=self._on_return)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        message_id = (getattr(message, "properties", None) or {}).get("message_id")
        if message_id:
            with self._lock:
                self._returned[message_id] = (
                    getattr(exc, "reply_code", 0) or NO_ROUTE,
                    getattr(exc, "reply_text", "") or str(exc),
                )

    def publish(self, message: Mapping[str, Any] | bytes) -> Published:
        """Publish one message; return once the broker confirmed it holds it.

        Raises :class:`PublishRefused` (a refusal or a return: sending it again will not
        help) or :class:`NotConfirmed` (a nack, no confirm in time, or no connection within
        the retry policy: send it again later with the same id; the bus delivers it once).
        """
        body, message_id, type_ = _encode(message)
        with self._producers.acquire(block=True) as producer:
            try:
                producer.publish(
                    body,
                    exchange=self.exchange,
                    routing_key=type_,
                    mandatory=True,
                    delivery_mode=2,
                    content_type="application/json",
                    content_encoding="utf-8",
                    message_id=message_id,
                    user_id=self.user,
                    retry=True,
                    retry_policy=self.retry_policy,
                    confirm_timeout=self.confirm_timeout,
                )
            except amqp.exceptions.MessageNacked:
                raise NotConfirmed(f"the broker nacked message {message_id}") from None
            except amqp.exceptions.ChannelError as exc:
                _forget_channel(producer)
                raise PublishRefused(exc.reply_code, exc.reply_text) from None
            except (OperationalError, amqp.exceptions.ConnectionError, OSError) as exc:
                _forget_channel(producer)
                raise NotConfirmed(
                    f"message {message_id} not confirmed: {type(exc).__name__}: {exc}"
                ) from None
            finally:
                with self._lock:
                    returned = self._returned.pop(message_id, None)
        if returned is not None:
            raise PublishRefused(*returned)
        return Published(message_id, type_)

    def close(self) -> None:
        self._producers.force_close_all()
        self._connections.force_close_all()
        self._connection.release()

    def __enter__(self) -> AmqpPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encode(message: Mapping[str, Any] | bytes) -> tuple[bytes, str, str]:
    """The body, id and type of a message (a dict, or its JSON bytes)."""
    if isinstance(message, bytes):
        body, doc = message, json.loads(message)
    else:
        doc = message
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    message_id, type_ = doc.get("id"), doc.get("type")
    if not isinstance(message_id, str) or not isinstance(type_, str):
        raise ValueError("a message needs a string id and type (its envelope's)")
    return body, message_id, type_


def _forget_channel(producer: Producer) -> None:
    """A channel the broker closed is of no more use: the next publish opens another."""
    connection = producer.connection
    try:
        if connection is not None and connection.connected:
            connection.default_channel.close()
    except Exception:  # already closed: nothing to tidy
        pass
    try:
        if connection is not None:
            connection._default_channel = None
    except AttributeError:
        pass
    producer.channel = None
