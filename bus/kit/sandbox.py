"""The conformance kit's sandbox: what keeps an adapter under test off real servers and logs.

- :class:`LogCapture` collects everything logged (structlog, stdlib logging) or printed
  while the checks run, for the rows that look for personal data and secrets in it;
- :class:`UrlMover` moves every URL of a target's options to the stand-in;
- :class:`LoopbackGuard` refuses any connection or name lookup off loopback meanwhile
  (but for the hosts ``--against`` allows: the agency's staging endpoint, its token host).

The checklists that use them are :mod:`bus.kit.conformance` and :mod:`bus.kit.staging`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import ipaddress
import logging
import re
import socket
import sys
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import structlog

# The scheme and authority of an absolute http(s) URL anywhere in an option's text.
URL_ORIGIN = re.compile(r"(?i)\bhttps?://[^/?#\s\"'<>]*")
ELSEWHERE = "_elsewhere"  # where, below the endpoint's path, URLs of other hosts are moved


class LogCapture:
    """Everything logged (structlog, stdlib logging) or printed while the checks run."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def text(self) -> str:
        return "\n".join(self.lines)

    def _structlog_processor(self, _logger: Any, _name: str, event: dict[str, Any]) -> Any:
        self.lines.append(repr(event))
        return event

    @contextlib.contextmanager
    def active(self) -> Iterator[LogCapture]:
        capture = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                try:
                    capture.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")
                    if record.exc_info:
                        capture.lines.append(logging.Formatter().formatException(record.exc_info))
                except Exception:  # a broken log call must not break the kit
                    capture.lines.append(f"{record.name} {record.levelname} {record.msg!r}")

        root = logging.getLogger()
        handler = Handler(level=logging.DEBUG)
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        # Cached structlog loggers keep the processor list object: insert into it in place
        # (before the renderer), so loggers bound before the kit started are captured too.
        processors = structlog.get_config()["processors"]
        processors.insert(max(len(processors) - 1, 0), self._structlog_processor)
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield self
        finally:
            processors.remove(self._structlog_processor)
            root.removeHandler(handler)
            root.setLevel(old_level)
            self.lines.extend(line for line in (out.getvalue() + err.getvalue()).splitlines())


class UrlMover:
    """Moves every URL in a target's options to the stand-in, and says which it moved.

    Not only those on the endpoint's origin: a token or login URL on another host (a
    single sign-on server) would otherwise be called for real. A URL on the endpoint's
    origin keeps its path; one on another host goes below the endpoint's path
    (``…/_elsewhere/<host>/<its path>``), where the stand-in answers for the target. A URL
    whose host comes from the message (``https://{payload.x}/…``) cannot be moved: it is
    listed in ``unmovable`` and the kit runs nothing.
    """

    def __init__(self, endpoint: str, standin_url: str) -> None:
        old, new = urlsplit(endpoint), urlsplit(standin_url)
        self.home = f"{old.scheme}://{old.netloc}".lower()
        self.origin = f"{new.scheme}://{new.netloc}"
        self.elsewhere = f"{self.origin}{new.path.rstrip('/')}/{ELSEWHERE}"
        self.moved: list[tuple[str, str]] = []  # (option, URL text) moved off another host
        self.unmovable: list[tuple[str, str]] = []

    def rewrite(self, value: Any, where: str = "options") -> Any:
        if isinstance(value, str):
            return URL_ORIGIN.sub(lambda m: self._move(m.group(0), where, value), value)
        if isinstance(value, dict):
            return {k: self.rewrite(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.rewrite(v, f"{where}.{i}") for i, v in enumerate(value)]
        return value

    def _move(self, origin: str, where: str, text: str) -> str:
        authority = origin.split("://", 1)[1].rpartition("@")[2]
        if not authority or "{" in authority or "}" in authority:
            self.unmovable.append((where, text))
            return origin
        if origin.lower() == self.home:
            return self.origin
        self.moved.append((where, text))
        return f"{self.elsewhere}/{authority}"


class LoopbackGuard:
    """While active, refuses (and records) every connection or name lookup off loopback.

    Moving the URLs of a target's options is not proof enough: a plug-in may carry an
    address in its code. A process-wide audit hook (PEP 578) sees every socket connect and
    ``getaddrinfo``, from any thread (aiohttp resolves names in a thread pool), before
    anything leaves the machine. Audit hooks cannot be removed, so one hook is installed
    once and does nothing while no guard is active.
    """

    _active: ClassVar[list[LoopbackGuard]] = []
    _hooked: ClassVar[bool] = False

    def __init__(self) -> None:
        self.refused: list[str] = []
        # (host, port) pairs reachable off loopback too: ``--against`` allows exactly the
        # agency's staging endpoint (and its token host), by name and by resolved address.
        self.allowed: set[tuple[str, int]] = set()
        self.watched: set[tuple[str, int]] = set()
        self.watched_connects = 0  # connections opened to a watched address (the endpoint)

    def allow(self, url: str, *, watch: bool = False) -> None:
        """Allow ``url``'s host and port (resolved now, before the guard is active)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        pairs = {(host, port)}
        try:
            for *_, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
                pairs.add((str(address[0]).lower(), port))
        except OSError:
            pass  # the call will fail and say so; nothing else is allowed
        self.allowed |= pairs
        if watch:
            self.watched |= pairs

    def note_connect(self, host: Any, port: Any) -> None:
        if (_host_text(host), _port(port)) in self.watched:
            self.watched_connects += 1

    @contextlib.contextmanager
    def active(self) -> Iterator[LoopbackGuard]:
        if not LoopbackGuard._hooked:
            sys.addaudithook(_audit)
            LoopbackGuard._hooked = True
        LoopbackGuard._active.append(self)
        try:
            yield self
        finally:
            LoopbackGuard._active.remove(self)

    def check(self, host: Any, port: Any) -> str | None:
        """``host:port`` when it is off loopback and not allowed (recorded), else None."""
        if _is_loopback(host) or (_host_text(host), _port(port)) in self.allowed:
            return None
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
        where = f"{name}:{port}" if port not in (None, 0, "") else name
        if where not in self.refused:
            self.refused.append(where)
        return where


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """The audit hook: a no-op unless a guard is active (it runs for every audited event)."""
    if not LoopbackGuard._active or not event.startswith("socket."):
        return
    try:
        guard = LoopbackGuard._active[-1]
    except IndexError:  # the guard ended meanwhile (another thread)
        return
    if event == "socket.getaddrinfo":
        where = guard.check(args[0], args[1])
        if where is not None:
            raise socket.gaierror(socket.EAI_NONAME, f"conformance kit: {where} is not loopback")
    elif event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and len(address) >= 2:
            guard.note_connect(address[0], address[1])
            where = guard.check(address[0], address[1])
            if where is not None:
                raise ConnectionRefusedError(
                    errno.ECONNREFUSED, f"conformance kit: {where} is not loopback"
                )


def _host_text(host: Any) -> str:
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    return name.strip().strip("[]").lower()


def _port(port: Any) -> int:
    try:
        return int(port)
    except (TypeError, ValueError):
        return -1


def _is_loopback(host: Any) -> bool:
    if host is None:
        return True  # a passive lookup: the local wildcard
    name = (host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)).strip()
    name = name.strip("[]").lower()
    if name in ("", "localhost") or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False  # a name: resolving it would already ask the network
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)
