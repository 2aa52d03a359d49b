"""The conformance kit: proof, before go-live, that a target's adapter behaves as the bus needs.

``dvcbus adapters test TARGET`` (and CI, for every reference adapter) runs the target's
adapter — built from its routes.yaml entry, exactly as the dispatcher would build it —
against a stand-in of its endpoint on loopback, and checks one thing per row:

- it is built from its options; every message type routed to it is delivered;
- every call carries the message id as ``Idempotency-Key`` (and as a SOAP header for SOAP
  kinds) and a W3C ``traceparent``;
- a slow endpoint is cut at the read timeout and classified transient, and so is an answer
  dripping a byte at a time (within connect + read, not the adapter deadline); HTTP 503 is
  transient, 400 permanent; SOAP Server faults transient, Client faults permanent;
  a refused connection and a connection closed mid-answer are transient;
- a redirect is a permanent failure and is not followed (following it would resend a POST
  as a GET and call the answer to that GET a delivery);
- garbage, a billion-laughs document, an external entity and a 100 MB answer are refused
  as permanent failures, with agency text quoted masked, memory bounded, and the adapter
  still delivering afterwards;
- its log output (structlog and stdlib logging, every level the process would show, and
  anything printed) contains no personal data from the messages, and neither its logs nor
  its reasons contain a secret;
- it calls nothing but the stand-in.

The kit never uses real secrets: every credential the target names is replaced by a
generated canary value, which is then looked for in logs and reasons. It never calls a
real server either: every URL the target's options name (a token or login URL on another
host too) is moved to the stand-in, and while the adapter runs any connection or name
lookup off loopback is refused (and fails the last row). Those guards, and the capture of
everything logged, are the kit's sandbox (:mod:`bus.kit.sandbox`); this module is the
checklist: the rows, their runner :func:`run_conformance` and the :class:`Report`.
``--against URL`` runs the safe, read-only subset against an agency's staging endpoint
instead (:mod:`bus.kit.staging`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from adapters.base import (
    Adapter,
    Delivered,
    Outcome,
    PermanentFailure,
    TargetSpec,
    TransientFailure,
)
from adapters.testing.standin import REDIRECT_PATH, Behaviour, Endpoint, Profile, StandinThread
from bus.contract.envelope import Message
from bus.contract.schemas import SchemaRegistry
from bus.delivery import adapter_registry
from bus.delivery.deadline import adapter_deadline
from bus.kit.sandbox import LogCapture, LoopbackGuard, UrlMover
from bus.routes import RoutesConfig, Target

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
GARBAGE_PII = ("001190012345", "0987654321", "an.nguyen@example.com")
MEMORY_BOUND_MB = 64
LOOPBACK_ROW = "calls only the stand-in (loopback)"


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the table: what was checked, whether it held, and what was seen."""

    name: str
    passed: bool
    detail: str


@dataclass
class Report:
    """Every check run for one target."""

    target: str
    kind: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


@dataclass
class _Example:
    message: Message
    pii: list[tuple[str, str]]  # (kind, value) of the personal data it carries


class ConformanceKit:
    """Runs the checks for one target; use :func:`run_conformance`."""

    def __init__(
        self,
        routes: RoutesConfig,
        target_name: str,
        schemas: SchemaRegistry,
        adapter_cls: type[Adapter] | None = None,
        timeout_check: float = 1.0,
    ) -> None:
        self.target = target_named(routes, target_name)
        self.routes = routes
        self.schemas = schemas
        self.adapter_cls = adapter_cls
        self.timeout_check = timeout_check
        self.report = Report(target_name, self.target.adapter)
        self.canaries: dict[str, str] = {}
        self.reasons: list[str] = []
        self.capture = LogCapture()
        self.mover: UrlMover | None = None
        self.guard = LoopbackGuard()

    # --- set-up ------------------------------------------------------------------------

    def routed_types(self) -> list[str]:
        return routed_types(self.routes, self.target.name, self.schemas)

    def spec_for_standin(self, url: str) -> TargetSpec:
        """The target's spec pointed at ``url``, canary credentials, timeouts for the kit.

        Every URL of its options moves to the stand-in too (see :class:`UrlMover`; what
        could not be moved is in ``self.mover.unmovable``).
        """
        spec = self.target.spec(resolve_credentials=False)
        self.canaries = {key: f"canary-{key}-{secrets.token_hex(6)}" for key in spec.credentials}
        self.mover = UrlMover(spec.endpoint, url)
        return replace(
            spec,
            endpoint=url,
            options=self.mover.rewrite(spec.options),
            credentials=dict(self.canaries),
            connect_timeout=min(spec.connect_timeout, 1.0),
            read_timeout=min(spec.read_timeout, self.timeout_check),
        )

    def examples(self, cls: type[Adapter], spec: TargetSpec, type_: str) -> list[_Example]:
        directory = self.schemas.directory / "examples"
        found = []
        for version in sorted(v for t, v in self.schemas.message_types if t == type_):
            for path in sorted((directory / f"{type_}.v{version}" / "valid").glob("*.json")):
                doc = cls.conformance_example(spec, orjson.loads(path.read_bytes()))
                message = Message.from_doc(doc, orjson.dumps(doc))
                pii = _pii_values(doc, self.schemas.pii_fields(type_, version))
                found.append(_Example(message, pii))
        return found

    # --- running -----------------------------------------------------------------------

    def run(self) -> Report:
        first = first_rows(self.target.adapter, self.adapter_cls, self.routed_types(), self._add)
        if first is None:
            return self.report
        cls, types = first
        path = urlsplit(self.target.endpoint).path or "/"
        url = f"http://127.0.0.1:{_free_port()}{path}"
        spec = self.spec_for_standin(url)
        assert self.mover is not None
        if self.mover.unmovable:
            where, text = self.mover.unmovable[0]
            self._add(
                LOOPBACK_ROW,
                False,
                f"{where} {text[:120]!r}: its host comes from the message, so the kit cannot "
                "keep the call on the stand-in; nothing was run (the kit never calls a real "
                "server)",
            )
            return self.report
        try:
            profile = cls.standin_profile(spec) or Profile()
        except Exception as exc:
            self._add("built from its options", False, _short(exc))
            return self.report
        with (
            self.capture.active(),
            self.guard.active(),
            StandinThread([Endpoint(spec.name, url, profile)]) as standin,
        ):
            asyncio.run(self._checks(cls, spec, profile, types, standin))
        self._log_checks()
        self._loopback_check()
        return self.report

    async def _checks(
        self,
        cls: type[Adapter],
        spec: TargetSpec,
        profile: Profile,
        types: list[str],
        standin: StandinThread,
    ) -> None:
        try:
            adapter = cls(spec)
            await adapter.start()
        except Exception as exc:
            self._add("built from its options", False, _short(exc))
            return
        self._add("built from its options", True, f"options: {', '.join(spec.options) or 'none'}")
        try:
            examples = await self._delivers(adapter, spec, types, standin)
            if not examples:
                return
            self.examples_seen = examples
            self._headers(examples, profile, standin)
            first = examples[0].message
            await self._misbehaviours(adapter, spec, profile, first, standin)
            await self._refused_connection(cls, spec, first)
            outcome, _ = await self._deliver(adapter, first, spec)
            self._add(
                "still delivers afterwards",
                isinstance(outcome, Delivered),
                _describe(outcome),
            )
        finally:
            with contextlib.suppress(Exception):
                await adapter.close()

    async def _deliver(
        self, adapter: Adapter, message: Message, spec: TargetSpec
    ) -> tuple[Outcome | str, float]:
        """The adapter's outcome, or a text saying how it broke the contract."""
        limit = adapter_deadline(spec)
        started = time.monotonic()
        try:
            outcome = await asyncio.wait_for(adapter.deliver(message), limit)
        except TimeoutError:
            return f"no outcome within {limit:.0f}s", time.monotonic() - started
        except Exception as exc:
            return f"raised {type(exc).__name__} instead of returning an outcome", (
                time.monotonic() - started
            )
        if isinstance(outcome, TransientFailure | PermanentFailure):
            self.reasons.append(outcome.reason)
        elif not isinstance(outcome, Delivered):
            return f"returned {type(outcome).__name__}, not an outcome", 0.0
        return outcome, time.monotonic() - started

    async def _delivers(
        self, adapter: Adapter, spec: TargetSpec, types: list[str], standin: StandinThread
    ) -> list[_Example]:
        delivered: list[_Example] = []
        for type_ in types:
            examples = self.examples(type(adapter), spec, type_)
            if not examples:
                self._add(f"delivers {type_}", False, "no valid example in schemas/examples")
                continue
            problems, references = [], []
            for example in examples:
                outcome, _ = await self._deliver(adapter, example.message, spec)
                if isinstance(outcome, Delivered):
                    delivered.append(example)
                    if outcome.reference:
                        references.append(outcome.reference)
                else:
                    problems.append(_describe(outcome))
            detail = (
                f"{len(examples)} example(s) delivered"
                + (f", agency reference e.g. {references[0]}" if references else "")
                if not problems
                else f"{len(problems)}/{len(examples)} not delivered: {problems[0]}"
            )
            self._add(f"delivers {type_}", not problems, detail)
        return delivered

    def _headers(self, examples: list[_Example], profile: Profile, standin: StandinThread) -> None:
        received = standin.received()
        keys = {r.idempotency_key for r in received}
        missing = [e.message.id for e in examples if e.message.id not in keys]
        self._add(
            "sends the message id as Idempotency-Key",
            not missing and bool(received),
            f"{len(examples)} message(s), {len(received)} call(s)"
            + (f"; missing for {missing[0]}" if missing else ""),
        )
        bad = [r for r in received if not TRACEPARENT.match(r.headers.get("traceparent", ""))]
        carried = {r.headers.get("traceparent") for r in received}
        lost = [
            e.message.id
            for e in examples
            if e.message.traceparent and e.message.traceparent not in carried
        ]
        self._add(
            "sends the W3C traceparent",
            not bad and not lost and bool(received),
            "every call carries the message's trace"
            if not bad and not lost
            else f"{len(bad)} call(s) without a valid traceparent; trace lost for {len(lost)}",
        )
        if profile.soap:
            in_headers = {key for r in received if (key := soap_idempotency_key(r.body))}
            missing_soap = [e.message.id for e in examples if e.message.id not in in_headers]
            self._add(
                "sends the message id as a SOAP header",
                not missing_soap,
                "IdempotencyKey in every envelope's Header"
                if not missing_soap
                else f"no Header IdempotencyKey equal to the message id for "
                f"{len(missing_soap)} message(s), e.g. {missing_soap[0]}",
            )

    async def _misbehaviours(
        self,
        adapter: Adapter,
        spec: TargetSpec,
        profile: Profile,
        message: Message,
        standin: StandinThread,
    ) -> None:
        target = spec.name
        read = spec.read_timeout

        async def expect(
            name: str,
            behaviour: Behaviour,
            kind: type,
            extra: Callable[[Outcome, float], str | None] | None = None,
        ) -> None:
            standin.program(target, behaviour)
            outcome, elapsed = await self._deliver(adapter, message, spec)
            ok = isinstance(outcome, kind)
            problem = extra(outcome, elapsed) if ok and extra else None
            detail = _describe(outcome) + (f" — {problem}" if problem else "")
            self._add(name, ok and problem is None, detail)

        def masked(outcome: Outcome, _elapsed: float) -> str | None:
            reason = getattr(outcome, "reason", "")
            leaked = [v for v in GARBAGE_PII if v in reason]
            if leaked:
                return "the reason quotes personal data unmasked"
            if not reason.strip():
                return "the reason is empty"
            return None

        def cut_in_time(_o: Outcome, elapsed: float) -> str | None:
            limit = read + spec.connect_timeout + 1.0
            if elapsed > limit:
                return f"took {elapsed:.1f}s, more than read timeout {read:g}s allows"
            return None

        await expect(
            f"slow endpoint cut at the read timeout ({read:g}s) → transient",
            Behaviour(delay=read + 2.0, times=1),
            TransientFailure,
            cut_in_time,
        )
        # Each byte arrives in time for the read timeout; only a bound on the whole answer
        # (connect + read, adapters.http) stops the agency holding the call for its deadline.
        await expect(
            f"slow-drip answer cut at connect + read ({spec.connect_timeout + read:g}s) "
            "→ transient",
            Behaviour(
                act="drip",
                drip_interval=min(0.3, read / 3),
                drip_seconds=spec.connect_timeout + read + 5.0,
                times=1,
            ),
            TransientFailure,
            cut_in_time,
        )
        await expect("HTTP 503 → transient", Behaviour(status=503, times=1), TransientFailure)
        await expect("HTTP 400 → permanent", Behaviour(status=400, times=1), PermanentFailure)
        seen = len(standin.received(target))

        def not_followed(outcome: Outcome, _elapsed: float) -> str | None:
            if any(REDIRECT_PATH in r.path for r in standin.received(target)[seen:]):
                return "it followed the redirect (the stand-in received the follow-up call)"
            return masked(outcome, _elapsed)

        await expect(
            "redirect (HTTP 302) → permanent, not followed",
            Behaviour(act="redirect", status=302, times=1),
            PermanentFailure,
            not_followed,
        )
        if profile.soap:
            await expect(
                "SOAP Server fault → transient",
                Behaviour(act="fault", fault="Server", times=1),
                TransientFailure,
            )
            await expect(
                "SOAP Client fault → permanent",
                Behaviour(act="fault", fault="Client", times=1),
                PermanentFailure,
            )
        await expect(
            "connection closed mid-answer → transient",
            Behaviour(act="close", times=1),
            TransientFailure,
        )

        await expect(
            "garbage answer → permanent, quoted masked",
            Behaviour(act="garbage", times=1),
            PermanentFailure,
            masked,
        )
        await expect(
            "billion-laughs XML → permanent",
            Behaviour(act="billion_laughs", times=1),
            PermanentFailure,
        )
        await expect(
            "external-entity XML → permanent",
            Behaviour(act="xxe", times=1),
            PermanentFailure,
            _no_file_content,
        )
        before = _peak_rss_mb()

        def bounded(_o: Outcome, _elapsed: float) -> str | None:
            grown = _peak_rss_mb() - before
            if grown > MEMORY_BOUND_MB:
                return f"peak memory grew by {grown:.0f} MB"
            return None

        await expect(
            "100 MB answer → permanent, memory bounded",
            Behaviour(act="huge", size_mb=100, times=1),
            PermanentFailure,
            bounded,
        )

    async def _refused_connection(
        self, cls: type[Adapter], spec: TargetSpec, message: Message
    ) -> None:
        parts = urlsplit(spec.endpoint)
        nobody = f"127.0.0.1:{_free_port()}"  # nothing listens there
        closed_spec = replace(
            spec,
            endpoint=urlunsplit(parts._replace(netloc=nobody)),
            options=_rewrite(spec.options, f"//{parts.netloc}", f"//{nobody}"),
        )
        try:
            adapter = cls(closed_spec)
            await adapter.start()
        except Exception as exc:
            self._add("connection refused → transient", False, _short(exc))
            return
        try:
            outcome, _ = await self._deliver(adapter, message, closed_spec)
        finally:
            with contextlib.suppress(Exception):
                await adapter.close()
        self._add(
            "connection refused → transient",
            isinstance(outcome, TransientFailure),
            _describe(outcome),
        )

    def _log_checks(self) -> None:
        text = self.capture.text()
        examples: list[_Example] = getattr(self, "examples_seen", [])
        leaked_kinds = sorted(
            {kind for e in examples for kind, value in e.pii if value and value in text}
        )
        lines = len(self.capture.lines)
        self._add(
            "no personal data in its log output",
            not leaked_kinds,
            f"{lines} log line(s) captured, none carries a message's personal data"
            if not leaked_kinds
            else f"log output shows personal data: {', '.join(leaked_kinds)} (values not shown)",
        )
        leaked = sorted(
            key
            for key, value in self.canaries.items()
            if value in text or any(value in r for r in self.reasons)
        )
        self._add(
            "no secret in logs or reasons",
            not leaked,
            f"{len(self.canaries)} canary credential(s) never appeared"
            if not leaked
            else f"credential(s) {', '.join(leaked)} appeared in logs or reasons",
        )

    def _loopback_check(self) -> None:
        refused = self.guard.refused
        moved = self.mover.moved if self.mover else []
        if refused:
            detail = (
                f"tried to reach {', '.join(refused[:5])}: refused by the kit (it never calls "
                "a real server)"
            )
        else:
            detail = "every call went to the stand-in on 127.0.0.1" + (
                "; moved there from other hosts: "
                + ", ".join(
                    f"{where.removeprefix('options.')} {text[:80]}" for where, text in moved[:3]
                )
                if moved
                else ""
            )
        self._add(LOOPBACK_ROW, not refused, detail)

    def _add(self, name: str, passed: bool, detail: str) -> None:
        self.report.checks.append(Check(name, passed, detail))


def target_named(routes: RoutesConfig, name: str) -> Target:
    """The target ``name`` of ``routes``; KeyError listing the known ones."""
    if name not in routes.targets:
        known = ", ".join(sorted(routes.targets))
        raise KeyError(f"no target {name!r} in {routes.path or 'routes'} ({known})")
    return routes.targets[name]


def routed_types(routes: RoutesConfig, target: str, schemas: SchemaRegistry) -> list[str]:
    """Message types some route sends to ``target`` (every type for a match-all)."""
    known = sorted({t for t, _ in schemas.message_types})
    found: set[str] = set()
    for route in routes.routes:
        if target in route.to:
            found.update(route.match.type or known)
    return sorted(found)


def first_rows(
    kind: str,
    adapter_cls: type[Adapter] | None,
    types: list[str],
    add: Callable[[str, bool, str], None],
) -> tuple[type[Adapter], list[str]] | None:
    """The rows every kit run starts with: the kind is installed, something is routed to it.

    Returns the adapter class and the routed types, or None when a row failed (the run ends).
    """
    cls = adapter_cls
    if cls is None:
        try:
            cls = adapter_registry.load(kind)
        except Exception as exc:  # a plug-in's import may raise anything: the row says what
            add("adapter kind is installed", False, str(exc))
            return None
    add("adapter kind is installed", True, f"{cls.__module__}.{cls.__qualname__}")
    if not types:
        add("message types routed to it", False, "no route sends anything here")
        return None
    return cls, types


def run_conformance(
    routes: RoutesConfig,
    target: str,
    *,
    schemas: SchemaRegistry | None = None,
    adapter_cls: type[Adapter] | None = None,
    timeout_check: float = 1.0,
) -> Report:
    """Run every check for ``target`` of ``routes``; never raises for an adapter's faults.

    ``adapter_cls`` tests a class that is not (yet) installed under the target's kind.
    """
    kit = ConformanceKit(
        routes, target, schemas or SchemaRegistry.load(), adapter_cls, timeout_check
    )
    return kit.run()


# --- helpers -----------------------------------------------------------------------------


def _rewrite(value: Any, old: str, new: str) -> Any:
    """Options with one origin swapped for another (the stand-in's for a closed port)."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _rewrite(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, old, new) for v in value]
    return value


def soap_idempotency_key(body: bytes) -> str | None:
    """The text of the bus's ``IdempotencyKey`` element in a SOAP envelope's Header, if any.

    Parsed, not searched for: the key must be the Header's element, not text that happens
    to appear somewhere in the body.
    """
    from adapters import safexml
    from adapters.kinds.soap import BUS_HEADERS, SOAP11, SOAP12

    try:
        root = safexml.parse(body)
    except safexml.UnsafeXml:
        return None
    for ns in (SOAP11, SOAP12):
        if root.tag == f"{{{ns}}}Envelope":
            key = root.find(f"{{{ns}}}Header/{{{BUS_HEADERS}}}IdempotencyKey")
            if key is None:
                return None
            return (key.text or "").strip() or None
    return None


def _pii_values(doc: dict[str, Any], fields: dict[tuple[str, ...], str]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def walk(node: Any, path: tuple[str, ...], kind: str) -> None:
        if not path:
            if isinstance(node, str) and len(node) >= 4:
                found.append((kind, node))
            elif isinstance(node, dict):  # e.g. an address: every text in it
                for value in node.values():
                    walk(value, (), kind)
            return
        head, rest = path[0], path[1:]
        if head == "*" and isinstance(node, list):
            for item in node:
                walk(item, rest, kind)
        elif isinstance(node, dict) and head in node:
            walk(node[head], rest, kind)

    for path, kind in fields.items():
        walk(doc, path, kind)
    return found


def _describe(outcome: Outcome | str) -> str:
    if isinstance(outcome, str):
        return outcome
    if isinstance(outcome, Delivered):
        return "delivered" + (f" (reference {outcome.reference})" if outcome.reference else "")
    kind = "transient" if isinstance(outcome, TransientFailure) else "permanent"
    return f"{kind}: {outcome.reason}"


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _no_file_content(outcome: Outcome, _elapsed: float) -> str | None:
    reason = getattr(outcome, "reason", "")
    if "root:" in reason or "/bin/" in reason:
        return "the reason shows the content of a local file"
    return None


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _free_port() -> int:
    """A loopback port nobody listens on (for the stand-in, or to be refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
