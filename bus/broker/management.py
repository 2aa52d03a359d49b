"""A minimal client of RabbitMQ's management HTTP API: the policy and permission checks and
``dvcbus broker setup`` read and write users, permissions and policies through it.

The URL carries the credentials (``http://user:password@host:15672``; guest by default).
Errors say which URL failed, never the password.
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
    """GET, PUT and DELETE against one broker's management API."""

    def __init__(self, management_url: str, timeout: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(management_url)
        self.base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}"
        user = urllib.parse.unquote(parts.username or "guest")
        password = urllib.parse.unquote(parts.password or "guest")
        self._auth = "Basic " + b64encode(f"{user}:{password}".encode()).decode()
        self.timeout = timeout

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
        url = f"{self.base}/api/{path}"
        request = urllib.request.Request(
            url,
            method=method,
            data=orjson.dumps(body) if body is not None else None,
            headers={"Authorization": self._auth, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            if missing_ok and exc.code == 404:
                return None
            raise ManagementUnavailable(f"{method} {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ManagementUnavailable(f"{self.base}: {exc}") from None
        try:
            return orjson.loads(text) if text else None
        except orjson.JSONDecodeError as exc:
            raise ManagementUnavailable(f"{method} {url}: not JSON: {exc}") from None


def quoted(name: str) -> str:
    """A vhost or user name as one path segment (``/`` is ``%2F``)."""
    return urllib.parse.quote(name, safe="")
