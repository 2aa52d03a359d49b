"""The Python client an agency system uses to put its messages on the bus.

Two ways in, each as the agency's own registered sender (senders.yaml):

- :class:`GatewayClient`: HTTP to the gateway (``POST /v1/messages``), with retries that
  honour ``Retry-After`` and one generated ``Idempotency-Key`` reused across the retries of
  a message, so a retry never makes a second message;
- :class:`AmqpPublisher`: AMQP to the ingress exchange as the sender's own RabbitMQ user,
  on kombu (connection pool, ``ensure`` retry policy), confirmed, ``mandatory``,
  persistent, with ``user_id`` set.

This package imports nothing from ``bus``: an agency installs httpx and kombu, not the bus.
"""

from dvcbus_client.amqp import AmqpPublisher, Published
from dvcbus_client.errors import (
    ClientError,
    GatewayUnavailable,
    NotConfirmed,
    PublishRefused,
    Refused,
)
from dvcbus_client.http import Accepted, GatewayClient

__all__ = [
    "Accepted",
    "AmqpPublisher",
    "ClientError",
    "GatewayClient",
    "GatewayUnavailable",
    "NotConfirmed",
    "PublishRefused",
    "Published",
    "Refused",
]
