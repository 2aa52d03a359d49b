"""Several broker nodes behind one ``amqp_url``: the cluster's nodes, tried in shuffled order.

``amqp_url`` (and ``management_url``) may list several nodes, comma-separated (a comma in a
password is written ``%2C``, as any URL would). Every node of a RabbitMQ cluster has the same
users, vhosts and queues, so the first URL names the user and vhost for all of them; the
settings refuse a list whose URLs disagree on either. Each process connects to a node picked
at random, so that a fleet of processes spreads its connections over the cluster, and on
losing it tries the others.
"""

from __future__ import annotations

import random
from urllib.parse import quote, urlsplit, urlunsplit

import pika


def node_urls(url: str) -> list[str]:
    """The URLs of a comma-separated list, in the order given (one URL: a list of one)."""
    return [part.strip() for part in url.split(",") if part.strip()]


def first_url(url: str) -> str:
    """The first node's URL: its user and vhost are every node's."""
    urls = node_urls(url)
    return urls[0] if urls else url


def with_user(url: str, user: str, password: str) -> str:
    """``url`` (one node or a cluster's list) logging in as ``user`` instead.

    For connecting as another broker user (a sender, a role of the bus) to the same nodes:
    user and password are quoted, and every node's host, port, vhost path and query are kept.
    """
    login = f"{quote(user, safe='')}:{quote(password, safe='')}"
    nodes = []
    for node in node_urls(url):
        parts = urlsplit(node)
        host = parts.netloc.rpartition("@")[2]
        nodes.append(urlunsplit(parts._replace(netloc=f"{login}@{host}")))
    return ",".join(nodes)


def shuffled(url: str, avoid: str | None = None) -> list[str]:
    """The nodes in random order; ``avoid`` (the node just lost) last."""
    urls = node_urls(url)
    random.shuffle(urls)
    if avoid in urls and len(urls) > 1:
        urls.remove(avoid)
        urls.append(avoid)
    return urls


def disagreement(url: str) -> str | None:
    """Why a list of AMQP URLs cannot be one cluster's (user or vhost differ), or None."""
    urls = node_urls(url)
    if not urls:
        return "no URL given"
    seen = {(p.credentials.username, p.virtual_host) for p in map(pika.URLParameters, urls)}
    if len(seen) > 1:
        return "the URLs of a node list must share one user and one vhost"
    return None


def where(url: str) -> str:
    """host:port of a node's URL, for logs (never the password)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5672}"


def blocking_connection(url: str, name: str = "dvcbus") -> pika.BlockingConnection:
    """A blocking connection (CLI commands, tools) to the first node of the list that answers."""
    params = []
    for node in shuffled(url):
        p = pika.URLParameters(node)
        p.client_properties = {"connection_name": name, "product": "dvc-bus"}
        params.append(p)
    return pika.BlockingConnection(params)
