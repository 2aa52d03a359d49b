"""The conformance kit against an agency's staging endpoint: the safe, read-only rows only.

``dvcbus adapters test TARGET --against URL`` proves a team's real system before go-live,
which the stand-in cannot: its certificate, that it accepts our credentials, that it answers
within the target's timeouts, and that it refuses what it must. It is read-only by design:

- the target's endpoint (and only it) is replaced by URL; other URLs of its options on the
  endpoint's origin follow it there; a token or login URL on another host is kept and
  allowed, and every other connection off loopback is refused (:class:`LoopbackGuard`);
- it never sends a valid message: one per type routed to the target, a valid example whose
  dossier number is replaced by :data:`BROKEN_DOSSIER_NO` (which the schemas refuse), and
  the agency must refuse it (a permanent failure);
- the rows that need an agency misbehaving on purpose (slow, 503, garbage, hostile XML…)
  or a delivery (idempotency headers, references) are skipped, each with its reason.

Credentials are the target's real ones (resolved from env or files, as the dispatcher
does); they are looked for in every log line and reason, as in the full kit.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import orjson

from adapters.base import Adapter, Delivered, Outcome, PermanentFailure, TargetSpec
from bus.contract.envelope import Message
from bus.contract.rejections import Rejection
from bus.contract.schemas import SchemaRegistry
from bus.delivery.deadline import adapter_deadline
from bus.kit.conformance import (
    Check,
    Report,
    _describe,
    _pii_values,
    _rewrite,
    _short,
    first_rows,
    routed_types,
    target_named,
)
from bus.kit.sandbox import URL_ORIGIN, LogCapture, LoopbackGuard
from bus.routes import RoutesConfig

# A 401/403, or a failure of the token or login call (adapters.auth names its flow).
AUTH_FAILED = re.compile(r"\bHTTP 40[13]\b|\b(?:token|login)\b", re.IGNORECASE)
REFUSES_ROW = "refuses an invalid example (permanent)"
# Matches no dossier number pattern (the schemas refuse it), and says what it is if logged.
BROKEN_DOSSIER_NO = "DVCBUS-KIEM-TRA-KHONG-HOP-LE"
ONLY_ROW = "calls only the staging endpoint"
AUTH_ROW = "authentication accepted (not answered 401/403)"
# The full kit's rows this mode does not run, and why (shown to the operator).
SKIPPED = (
    ("delivers each routed type", "would deliver a valid message: read-only"),
    ("sends the message id as Idempotency-Key, the W3C traceparent",
     "what the agency received cannot be seen from here"),
    ("slow endpoint, slow drip, HTTP 503/400, redirect, SOAP faults",
     "the agency cannot be told to misbehave: run the kit without --against"),
    ("connection closed mid-answer, garbage, hostile XML, 100 MB answer",
     "the agency cannot be told to misbehave: run the kit without --against"),
    ("connection refused, still delivers afterwards", "would need a delivery or a stand-in"),
)  # fmt: skip


@dataclass
class StagingReport(Report):
    """The rows run against the staging endpoint, and the rows skipped with their reason."""

    against: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Try:
    message: Message
    example: str
    outcome: Outcome | str
    elapsed: float
    reached: bool  # a connection to the endpoint was opened for it
    pii: list[tuple[str, str]]


class StagingKit:
    """Runs the safe rows for one target against ``url``; use :func:`run_against`."""

    def __init__(
        self,
        routes: RoutesConfig,
        target_name: str,
        url: str,
        schemas: SchemaRegistry,
        adapter_cls: type[Adapter] | None = None,
    ) -> None:
        self.target = target_named(routes, target_name)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--against {url!r}: not an http(s) URL")
        self.routes = routes
        self.url = url
        self.schemas = schemas
        self.adapter_cls = adapter_cls
        self.report = StagingReport(target_name, self.target.adapter, against=url)
        self.capture = LogCapture()
        self.guard = LoopbackGuard()
        self.reasons: list[str] = []

    def routed_types(self) -> list[str]:
        return routed_types(self.routes, self.target.name, self.schemas)

    def spec(self) -> TargetSpec | None:
        """The target's spec with its real credentials, pointed at the staging URL."""
        try:
            spec = self.target.spec(resolve_credentials=True)
        except Exception as exc:
            self._add("credentials resolved", False, _short(exc))
            return None
        old = urlsplit(spec.endpoint)
        new = urlsplit(self.url)
        options = _rewrite(
            spec.options, f"{old.scheme}://{old.netloc}", f"{new.scheme}://{new.netloc}"
        )
        return replace(spec, endpoint=self.url, options=options)

    def run(self) -> StagingReport:
        self.report.skipped.extend(SKIPPED)
        first = first_rows(self.target.adapter, self.adapter_cls, self.routed_types(), self._add)
        if first is None:
            return self.report
        cls, types = first
        spec = self.spec()
        if spec is None:
            return self.report
        others = self._other_hosts(spec.options)
        if others is None:
            return self.report
        self.guard.allow(spec.endpoint, watch=True)
        for url in others:
            self.guard.allow(url)
        with self.capture.active(), self.guard.active():
            asyncio.run(self._checks(cls, spec, types))
        self._secrets_and_pii(spec)
        self._only_check(others)
        return self.report

    def _other_hosts(self, options: dict[str, Any]) -> list[str] | None:
        """URLs of the options on other hosts (allowed too), or None if one cannot be known."""
        home = urlsplit(self.url)
        found: list[str] = []

        def walk(value: Any, where: str) -> bool:
            if isinstance(value, str):
                for origin in URL_ORIGIN.findall(value):
                    authority = origin.split("://", 1)[1].rpartition("@")[2]
                    if not authority or "{" in authority or "}" in authority:
                        self._add(
                            ONLY_ROW,
                            False,
                            f"{where} {value[:120]!r}: its host comes from the message, so the "
                            "kit cannot know what it would call; nothing was run",
                        )
                        return False
                    if authority.lower() != home.netloc.lower() and origin not in found:
                        found.append(origin)
                return True
            if isinstance(value, dict):
                return all(walk(v, f"{where}.{k}") for k, v in value.items())
            if isinstance(value, list):
                return all(walk(v, f"{where}.{i}") for i, v in enumerate(value))
            return True

        return found if walk(options, "options") else None

    async def _checks(self, cls: type[Adapter], spec: TargetSpec, types: list[str]) -> None:
        try:
            cls(spec)
        except Exception as exc:
            self._add("built from its options", False, _short(exc))
            return
        self._add("built from its options", True, f"options: {', '.join(spec.options) or 'none'}")
        await self._tls(spec)
        tries = [t for type_ in types for t in await self._invalid(cls, spec, type_)]
        self.tries = tries
        reached = [t for t in tries if t.reached]
        self._auth(spec, reached)
        self._timeouts(spec, tries)
        self._refuses(types, tries, reached)

    async def _tls(self, spec: TargetSpec) -> None:
        parts = urlsplit(spec.endpoint)
        if parts.scheme != "https":
            self.report.skipped.append(
                ("TLS handshake with the agency", "the endpoint is http: there is no TLS")
            )
            return
        from adapters.http import TlsOptions, ssl_context

        name = "TLS handshake with the agency (certificate verified)"
        try:
            raw = spec.options.get("tls")
            tls = TlsOptions.model_validate(raw) if isinstance(raw, dict) else None
            ctx = ssl_context(tls, spec.credentials)
            host, port = parts.hostname or "", parts.port or 443
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx, server_hostname=host),
                spec.connect_timeout,
            )
        except (TimeoutError, OSError, ssl.SSLError, ValueError) as exc:
            self._add(name, False, _short(exc))
            return
        tls_object = writer.get_extra_info("ssl_object")
        version = tls_object.version() if tls_object is not None else "?"
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        self._add(name, True, f"{version} with {host}:{port}, certificate verified")

    async def _invalid(self, cls: type[Adapter], spec: TargetSpec, type_: str) -> list[_Try]:
        """One invalid message of ``type_``, sent by a fresh adapter (none if none can be made).

        A valid example with its dossier number replaced by :data:`BROKEN_DOSSIER_NO`, not
        one of the schemas' invalid examples: a field mapping may drop the field that makes
        those invalid and send the rest, a real record; the dossier number is the key every
        request carries, and this one matches no dossier and is refused by the schema.
        """
        doc = self._broken_example(type_)
        if doc is None:
            return []
        doc = cls.conformance_example(spec, doc)
        message = Message.from_doc(doc, orjson.dumps(doc))
        outcome, elapsed, reached = await self._deliver(cls, spec, message)
        pii = _pii_values(doc, self.schemas.pii_fields(type_, int(doc["version"])))
        return [_Try(message, f"{type_} with dossier_no {BROKEN_DOSSIER_NO}", outcome, elapsed,
                     reached, pii)]  # fmt: skip

    def _broken_example(self, type_: str) -> dict[str, Any] | None:
        directory = self.schemas.directory / "examples"
        for version in sorted(
            (v for t, v in self.schemas.message_types if t == type_), reverse=True
        ):
            for path in sorted((directory / f"{type_}.v{version}" / "valid").glob("*.json")):
                doc = orjson.loads(path.read_bytes())
                payload = doc.get("payload")
                if not isinstance(payload, dict) or "dossier_no" not in payload:
                    continue
                payload["dossier_no"] = BROKEN_DOSSIER_NO
                try:
                    self.schemas.validate(doc)
                except Rejection:
                    return doc  # invalid, as it must be
                return None  # the schema does not refuse it: never send it
        return None

    async def _deliver(
        self, cls: type[Adapter], spec: TargetSpec, message: Message
    ) -> tuple[Outcome | str, float, bool]:
        limit = adapter_deadline(spec)
        before = self.guard.watched_connects
        started = time.monotonic()
        adapter = cls(spec)
        try:
            await adapter.start()
            outcome: Outcome | str = await asyncio.wait_for(adapter.deliver(message), limit)
        except TimeoutError:
            outcome = f"no outcome within {limit:.0f}s"
        except Exception as exc:
            outcome = f"raised {type(exc).__name__} instead of returning an outcome"
        finally:
            with contextlib.suppress(Exception):
                await adapter.close()
        elapsed = time.monotonic() - started
        if not isinstance(outcome, str) and not isinstance(outcome, Delivered):
            self.reasons.append(outcome.reason)
        return outcome, elapsed, self.guard.watched_connects > before

    def _auth(self, spec: TargetSpec, reached: list[_Try]) -> None:
        name = AUTH_ROW
        if not spec.credentials:
            self.report.skipped.append((name, "the target names no credentials"))
            return
        if not reached:
            self._add(name, False, "no call reached the agency")
            return
        refused = [t for t in reached if AUTH_FAILED.search(_describe(t.outcome))]
        self._add(
            name,
            not refused,
            f"credentials {', '.join(sorted(spec.credentials))} accepted on {len(reached)} call(s)"
            if not refused
            else f"{refused[0].example}: {_describe(refused[0].outcome)}",
        )

    def _timeouts(self, spec: TargetSpec, tries: list[_Try]) -> None:
        limit = adapter_deadline(spec)
        late = [t for t in tries if isinstance(t.outcome, str) or t.elapsed > limit]
        slowest = max((t.elapsed for t in tries), default=0.0)
        self._add(
            "timeouts configured and honoured",
            not late,
            f"connect {spec.connect_timeout:g}s, read {spec.read_timeout:g}s; slowest call "
            f"{slowest:.1f}s (limit {limit:g}s)"
            if not late
            else f"{late[0].example}: {_describe(late[0].outcome)} after {late[0].elapsed:.1f}s",
        )

    def _refuses(self, types: list[str], tries: list[_Try], reached: list[_Try]) -> None:
        problems: list[str] = []
        for type_ in types:
            mine = [t for t in reached if t.message.type == type_]
            if not mine:
                tried = [t for t in tries if t.message.type == type_]
                why = (
                    f"the adapter refused it itself: {_describe(tried[0].outcome)}"
                    if tried
                    else "no valid example with a dossier_no the schema then refuses"
                )
                problems.append(f"{type_}: no invalid message reached the agency ({why})")
                continue
            t = mine[0]
            text = _describe(t.outcome)
            if isinstance(t.outcome, Delivered):
                problems.append(f"{type_}: the agency accepted {t.example}: {text}")
            elif not isinstance(t.outcome, PermanentFailure):
                problems.append(f"{type_}: {t.example} was not refused for good: {text}")
            elif AUTH_FAILED.search(text):
                problems.append(f"{type_}: authentication failed, not the message: {text}")
        refused = ", ".join(f"{t.example} → {_describe(t.outcome)}" for t in reached[:2])
        self._add(REFUSES_ROW, not problems, "; ".join(problems) or refused)

    def _secrets_and_pii(self, spec: TargetSpec) -> None:
        text = self.capture.text()
        tries: list[_Try] = getattr(self, "tries", [])
        leaked_kinds = sorted({k for t in tries for k, v in t.pii if v and v in text})
        self._add(
            "no personal data in its log output",
            not leaked_kinds,
            f"{len(self.capture.lines)} log line(s) captured, none carries personal data"
            if not leaked_kinds
            else f"log output shows personal data: {', '.join(leaked_kinds)} (values not shown)",
        )
        secrets = {k: v for k, v in spec.credentials.items() if len(v) >= 4}
        leaked = sorted(
            k for k, v in secrets.items() if v in text or any(v in r for r in self.reasons)
        )
        self._add(
            "no secret in logs or reasons",
            not leaked,
            f"{len(secrets)} credential(s) never appeared"
            if not leaked
            else f"credential(s) {', '.join(leaked)} appeared in logs or reasons",
        )

    def _only_check(self, others: list[str]) -> None:
        refused = self.guard.refused
        self._add(
            ONLY_ROW,
            not refused,
            f"tried to reach {', '.join(refused[:5])}: refused by the kit"
            if refused
            else f"every call went to {urlsplit(self.url).netloc}"
            + (f" (and {', '.join(others)}, named by its options)" if others else ""),
        )

    def _add(self, name: str, passed: bool, detail: str) -> None:
        self.report.checks.append(Check(name, passed, detail))


def run_against(
    routes: RoutesConfig,
    target: str,
    url: str,
    *,
    schemas: SchemaRegistry | None = None,
    adapter_cls: type[Adapter] | None = None,
) -> StagingReport:
    """Run the safe, read-only rows for ``target`` against ``url`` (its staging endpoint)."""
    return StagingKit(routes, target, url, schemas or SchemaRegistry.load(), adapter_cls).run()
