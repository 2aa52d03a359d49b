"""A minimal client of RabbitMQ's management HTTP API: the policy and permission checks and
``dvcbus broker setup`` read and write users, permissions and policies through it.

The URL carries the credentials (``http://user:password@host:15672``; guest by default).
On a cluster it may list several nodes' APIs, comma-separated: every node answers for the
whole cluster (users, permissions and policies are cluster-wide), so a call goes to the node
that last answered and, when it cannot be reached, on to the next. An HTTP error is the
cluster's answer and is not retried elsewhere. Errors say which URL failed, never the password.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from typing import Any

import orjson

from bus.errors import BrokerError


class ManagementUnavailable(BrokerError):
    """The management API could not be asked (down, fenced off, or refused our credentials)."""


class ManagementApi:
    """GET, PUT and DELETE against a broker's (or a cluster's) management API."""

    def __init__(self, management_url: str, timeout: float = 5.0) -> None:
        self._nodes: list[tuple[str, str]] = []  # (base URL, Authorization header)
        for url in (u.strip() for u in management_url.split(",")):
            if not url:
                continue
            parts = urllib.parse.urlsplit(url)
            user = urllib.parse.unquote(parts.username or "guest")
            password = urllib.parse.unquote(parts.password or "guest")
            auth = "Basic " + b64encode(f"{user}:{password}".encode()).decode()
            self._nodes.append((f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}", auth))
        if not self._nodes:
            raise ManagementUnavailable("no management URL given")
        self.timeout = timeout

    @property
    def base(self) -> str:
        """The node calls go to first (the one that last answered)."""
        return self._nodes[0][0]

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def put(self, path: str, body: dict[str, Any]) -> None:
        self._call("PUT", path, body)

    def delete(self, path: str) -> None:
        """Delete; a resource already gone is no error."""
        self._call("DELETE", path, missing_ok=True)

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, missing_ok: bool = False
    ) -> Any:
        unreachable = []
        for n, (base, auth) in enumerate(list(self._nodes)):
            url = f"{base}/api/{path}"
            request = urllib.request.Request(
                url,
                method=method,
                data=orjson.dumps(body) if body is not None else None,
                headers={"Authorization": auth, "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    text = response.read()
            except urllib.error.HTTPError as exc:
                if missing_ok and exc.code == 404:
                    return None
                if exc.code in (502, 503, 504):  # a node between restarts: ask another
                    unreachable.append(f"{base}: HTTP {exc.code}")
                    continue
                raise ManagementUnavailable(
                    f"{method} {url}: HTTP {exc.code} {exc.reason}"
                ) from None
            except (urllib.error.URLError, OSError) as exc:
                unreachable.append(f"{base}: {exc}")
                continue
            if n:  # this node answered: ask it first next time
                self._nodes.insert(0, self._nodes.pop(n))
            return self._parse(method, url, text)
        raise ManagementUnavailable("; ".join(unreachable))

    @staticmethod
    def _parse(method: str, url: str, text: bytes) -> Any:
        try:
            return orjson.loads(text) if text else None
        except orjson.JSONDecodeError as exc:
            raise ManagementUnavailable(f"{method} {url}: not JSON: {exc}") from None


def quoted(name: str) -> str:
    """A vhost or user name as one path segment (``/`` is ``%2F``)."""
    return urllib.parse.quote(name, safe="")
