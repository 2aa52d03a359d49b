"""The registry of senders (senders.yaml): who may send, as what, and how they prove it.

A sender is one system that puts messages on the bus: the portal, the payment platform, an
agency's one-stop system. Its entry says which agency identifiers it speaks for, which
``source`` strings it may write in a message, which message types it may send, and how it
authenticates (bearer tokens, and later a client certificate or its own RabbitMQ user).
Deny by default: a claim not listed is refused.

Tokens are never written in the file: ``sha256:<hex>`` (the token's SHA-256, so the file
can be reviewed like code) or an ``env:NAME`` / ``file:/path`` reference to the token,
read when the gateway starts (:mod:`bus.ingress.tokens`). A file is checked
(``dvcbus routes check``) without reading a single secret.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bus.errors import ConfigError
from bus.ingress.senders_yaml import PositionedData, YamlProblem
from bus.routes.durations import parse_rate
from bus.routes.model import (
    AGENCY_ID,
    MessageType,
    RoutesConfig,
    SourcePattern,
    compile_values,
    is_glob,
)
from bus.routes.problems import Problem, suggest

SENDER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
TOKEN_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_REFERENCE = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/\S.*)$")
FINGERPRINT = re.compile(r"^sha256:[0-9A-Fa-f]{2}(:?[0-9A-Fa-f]{2}){31}$")
AMQP_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
FILE_NAME = "senders.yaml"


class SendersError(ConfigError):
    """senders.yaml is refused; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        first = str(errors[0]) if errors else "no details"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"senders refused: {first}{more}")


def _one_or_more(value: Any) -> Any:
    value = [value] if isinstance(value, str) else value
    if isinstance(value, list | tuple) and not value:
        raise ValueError("give at least one value (a sender is denied everything not listed)")
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _agency(value: str) -> str:
    if not AGENCY_ID.match(value):
        raise ValueError(
            f"agency {value!r} is not an agency identifier (NNN.NN.NN.GNN or NNN.NN.NN.HNN)"
        )
    return value


def _token(value: str) -> str:
    # The value may be a token someone pasted in: the message must not repeat it.
    if TOKEN_HASH.match(value) or _REFERENCE.match(value):
        return value
    raise ValueError(
        "a bearer token is written as sha256:<64 lower-case hex digits> (its SHA-256) or as a "
        "reference env:NAME or file:/path, never the token itself (the value is not repeated)"
    )


def _fingerprint(value: str) -> str:
    if not FINGERPRINT.match(value):
        raise ValueError("a certificate fingerprint is sha256: and 32 hex bytes (AB:CD:… or ABCD…)")
    return value


def _subject(value: str) -> str:
    from cryptography import x509

    try:
        x509.Name.from_rfc4514_string(value)
    except ValueError:
        raise ValueError(
            f"subject {value!r} is not a distinguished name as RFC 4514 writes it "
            "(CN=motcua.hanoi.gov.vn,O=…,C=VN)"
        ) from None
    return value


def _amqp_user(value: str) -> str:
    if not AMQP_USER.match(value):
        raise ValueError(f"amqp_user {value!r} is not a RabbitMQ user name")
    return value


def _rate(value: Any) -> float:
    return parse_rate(value)


def _delegation(value: str) -> str:
    """An agency identifier or glob, or a current province code ("04"), a sender reports for."""
    if re.fullmatch(r"\d{2}", value):
        return value
    if value == "*" or (is_glob(value) and re.fullmatch(r"[0-9.GH*?]+", value)):
        return value
    if not AGENCY_ID.match(value):
        raise ValueError(
            f"delegated_for {value!r} is neither an agency identifier or glob (*.H04) nor a "
            'province code in quotes ("04")'
        )
    return value


Agency = Annotated[str, AfterValidator(_agency)]
Delegation = Annotated[str, AfterValidator(_delegation)]
TokenSpec = Annotated[str, AfterValidator(_token)]
Fingerprint = Annotated[str, AfterValidator(_fingerprint)]


class _Model(BaseModel):
    # hide_input_in_errors: a pasted token must not reach a log through a ValidationError.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ClientCertificate(_Model):
    """A client certificate the sender presents (mTLS): by fingerprint and/or its whole
    subject; with both, the certificate must have both (bus/ingress/client_certs.py)."""

    fingerprint: Annotated[tuple[Fingerprint, ...], BeforeValidator(_one_or_more)] = ()
    subject: Annotated[str, AfterValidator(_subject)] | None = Field(None, min_length=3)

    @model_validator(mode="after")
    def _names_the_certificate(self) -> ClientCertificate:
        if not self.fingerprint and not self.subject:
            raise ValueError("give a fingerprint or a subject (or both)")
        return self


class SenderAuth(_Model):
    """How a sender proves who it is to the gateway."""

    bearer: Annotated[tuple[TokenSpec, ...], BeforeValidator(_one_or_more)] = ()
    certificate: ClientCertificate | None = None


class Sender(_Model):
    """One system allowed to put messages on the bus, and exactly what it may claim."""

    agencies: Annotated[tuple[Agency, ...], BeforeValidator(_one_or_more)]
    sources: Annotated[tuple[SourcePattern, ...], BeforeValidator(_one_or_more)]
    types: Annotated[tuple[MessageType, ...], BeforeValidator(_one_or_more)]
    auth: SenderAuth = SenderAuth()
    amqp_user: Annotated[str, AfterValidator(_amqp_user)] | None = None
    rate_limit: Annotated[float, BeforeValidator(_rate)] | None = None  # default: settings
    # Whose dossiers it may report statuses on besides its own agencies' (a shared platform
    # sending for its provinces): agency identifiers or globs, or province codes ("04": every
    # agency the agency registry puts in province 04). See docs/statuses.md.
    delegated_for: Annotated[tuple[Delegation, ...], BeforeValidator(_one_or_many)] = ()

    _source_regex: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("sources")
    @classmethod
    def _sources_are_its_agencies(cls, sources: tuple[str, ...], info: ValidationInfo) -> Any:
        agencies = info.data.get("agencies") or ()
        for source in sources:
            agency = source.split("/", 1)[0]
            if agencies and not is_glob(agency) and agency not in agencies:
                raise ValueError(
                    f"source {source} speaks for agency {agency}, which is not one of this "
                    f"sender's agencies ({', '.join(agencies)})"
                )
        return sources

    def model_post_init(self, _context: Any) -> None:
        self._source_regex = compile_values(self.sources)

    def may_claim_source(self, source: str) -> bool:
        return bool(self._source_regex and self._source_regex.match(source))

    def may_send_type(self, type_: str) -> bool:
        return type_ in self.types


def _sender_id(value: str) -> str:
    if not SENDER_ID.match(value):
        raise ValueError(
            f"sender id {value!r} must be lower-case letters, digits and '-', at most 63 "
            "characters (it appears in headers, logs and metrics)"
        )
    return value


SenderId = Annotated[str, AfterValidator(_sender_id)]


class SendersConfig(_Model):
    """The whole of senders.yaml."""

    version: Literal[1]
    senders: dict[SenderId, Sender]

    def sender(self, sender_id: str) -> Sender | None:
        return self.senders.get(sender_id)


_SHAPES: dict[tuple[str, ...], tuple[str, ...]] = {
    (): ("version", "senders"),
    ("senders", "*"): tuple(Sender.model_fields),
    ("senders", "*", "auth"): tuple(SenderAuth.model_fields),
    ("senders", "*", "auth", "certificate"): tuple(ClientCertificate.model_fields),
}


def senders_file_for(routes_file: Path) -> Path:
    """Where the registry lives: senders.yaml beside routes.yaml."""
    return routes_file.with_name(FILE_NAME)


def load_senders(path: Path, *, known_types: set[str] | None = None) -> SendersConfig:
    """The registry in ``path``; raises :class:`SendersError` listing every problem."""
    config, problems = _read(path, known_types, None)
    if config is None or any(p.severity == "error" for p in problems):
        raise SendersError(problems)
    return config


def check_senders(
    path: Path, *, known_types: set[str] | None = None, routes: RoutesConfig | None = None
) -> list[Problem]:
    """Every problem of ``path`` (errors and warnings), for ``dvcbus routes check``.

    With ``routes``, also warns of a sender whose every source routes.yaml's ``sources``
    refuse for a type it may send: the router would dead-letter all of them.
    """
    return _read(path, known_types, routes)[1]


def _read(
    path: Path, known_types: set[str] | None, routes: RoutesConfig | None
) -> tuple[SendersConfig | None, list[Problem]]:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(name, 0, 0, f"cannot read the file: {exc.strerror}")]
    positions = PositionedData()
    try:
        data = positions.parse(raw)
    except YamlProblem as exc:
        return None, [Problem(name, exc.line, 1, exc.message)]
    problems = [
        Problem(name, line, 1, f"{_owner(at)}duplicate key {key!r}: YAML would keep only one")
        for line, at, key in positions.duplicates
    ]
    if not isinstance(data, dict):
        return None, [*problems, Problem(name, 1, 1, "the top level must be a mapping")]
    problems += list(_unknown_keys(name, data, (), positions))
    config = None
    try:
        config = SendersConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            if error["type"] == "extra_forbidden":
                continue  # reported with a suggestion by _unknown_keys
            loc = tuple(error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "missing":
                message = f"missing required key {loc[-1]!r}"
                loc = loc[:-1]
            problems.append(Problem(name, positions.line_of(loc), 1, _owner(loc) + message))
    if config is not None:
        problems += list(_across(name, config, positions, known_types, routes))
    return config, sorted(set(problems), key=lambda p: (p.line, p.message))


def _unknown_keys(
    name: str, node: Any, path: tuple[str | int, ...], positions: PositionedData
) -> Iterator[Problem]:
    if not isinstance(node, dict):
        return
    shape_key = tuple("*" if i == 1 and path[0] == "senders" else p for i, p in enumerate(path))
    shape = _SHAPES.get(tuple(str(p) for p in shape_key))
    for key, value in node.items():
        if shape is not None and key not in shape:
            hint = suggest(key, shape) or f"; expected one of: {', '.join(shape)}"
            line = positions.line_of((*path, key))
            yield Problem(name, line, 1, f"{_owner(path)}unknown key {key!r}{hint}")
        else:
            yield from _unknown_keys(name, value, (*path, key), positions)


def _owner(loc: tuple[Any, ...]) -> str:
    """'sender 'portal': auth.bearer: ' — who a problem belongs to, in the operator's words."""
    if len(loc) >= 2 and loc[0] == "senders":
        rest = ".".join(str(p) for p in loc[2:] if not isinstance(p, int))
        return f"sender {loc[1]!r}: {rest}: " if rest else f"sender {loc[1]!r}: "
    named = ".".join(str(p) for p in loc if not isinstance(p, int))
    return f"{named}: " if named else ""


def _across(
    name: str,
    config: SendersConfig,
    positions: PositionedData,
    known_types: set[str] | None,
    routes: RoutesConfig | None,
) -> Iterator[Problem]:
    """Problems between senders, and against the schemas and routes.yaml."""
    tokens: dict[str, str] = {}
    users: dict[str, str] = {}
    certificates: dict[str, str] = {}
    for sid, sender in config.senders.items():
        at = ("senders", sid)
        yield from _shared_certificate(name, sid, sender, certificates, positions)
        for i, token in enumerate(sender.auth.bearer):
            if token in tokens and tokens[token] != sid:
                line = positions.line_of((*at, "auth", "bearer", i))
                yield Problem(
                    name, line, 1, f"sender {sid!r}: shares a bearer token with {tokens[token]!r}"
                )
            tokens.setdefault(token, sid)
        if sender.amqp_user:
            if sender.amqp_user in users:
                yield Problem(
                    name,
                    positions.line_of((*at, "amqp_user")),
                    1,
                    f"sender {sid!r}: amqp_user {sender.amqp_user!r} is also "
                    f"{users[sender.amqp_user]!r}'s",
                )
            users.setdefault(sender.amqp_user, sid)
        if not sender.auth.bearer and sender.auth.certificate is None and not sender.amqp_user:
            yield Problem(
                name,
                positions.line_of(at),
                1,
                f"sender {sid!r} has no way to authenticate (auth.bearer, auth.certificate or "
                "amqp_user): it can send nothing",
                "warning",
            )
        for i, type_ in enumerate(sender.types):
            line = positions.line_of((*at, "types", i))
            if known_types is not None and type_ not in known_types:
                known = ", ".join(sorted(known_types))
                yield Problem(
                    name, line, 1, f"sender {sid!r}: no schema defines type {type_} ({known})"
                )
            elif routes is not None and not _routes_allow_any(routes, type_, sender.sources):
                allowed = ", ".join(routes.sources.get(type_, ())) or "none"
                yield Problem(
                    name,
                    line,
                    1,
                    f"sender {sid!r} may send {type_}, but routes.yaml's sources of {type_} "
                    f"({allowed}) allow none of its sources: the router would dead-letter "
                    "them unauthorised",
                    "warning",
                )


def _shared_certificate(
    name: str,
    sid: str,
    sender: Sender,
    seen: dict[str, str],
    positions: PositionedData,
) -> Iterator[Problem]:
    """A certificate (fingerprint, or a subject alone) must name one sender only."""
    cert = sender.auth.certificate
    if cert is None:
        return
    keys = [f.removeprefix("sha256:").replace(":", "").lower() for f in cert.fingerprint]
    if not keys and cert.subject:
        keys = [f"subject {cert.subject}"]
    for key in keys:
        if key in seen and seen[key] != sid:
            yield Problem(
                name,
                positions.line_of(("senders", sid, "auth", "certificate")),
                1,
                f"sender {sid!r}: shares its client certificate with {seen[key]!r}",
            )
        seen.setdefault(key, sid)


def _routes_allow_any(routes: RoutesConfig, type_: str, sources: tuple[str, ...]) -> bool:
    """Whether routes.yaml lets at least one of a sender's sources send ``type_``.

    A glob source is compared by its pattern overlapping one of routes.yaml's (checked on
    the pattern's literal text), a literal one by matching.
    """
    allowed = routes.sources.get(type_, ())
    if not allowed:
        return False
    regex = compile_values(allowed)
    assert regex is not None
    for source in sources:
        if regex.match(source):
            return True
        if is_glob(source) and any(
            fnmatch.fnmatchcase(source, pattern) or pattern == source for pattern in allowed
        ):
            return True
    return False


def check_beside_routes(routes_path: Path, known_types: set[str] | None) -> list[Problem]:
    """What ``dvcbus routes check`` adds: the problems of senders.yaml beside ``routes_path``
    (none when there is no such file: a bus without a gateway needs none)."""
    from bus.routes import RoutesError, load_routes

    path = senders_file_for(routes_path)
    if not path.exists():
        return []
    try:
        routes = load_routes(routes_path)
    except RoutesError:
        routes = None  # its own problems are listed already
    return check_senders(path, known_types=known_types, routes=routes)


def catch_all_registry(sender_id: str, amqp_user: str, types: Iterable[str]) -> str:
    """senders.yaml text with one sender, ``amqp_user``, that may send ``types`` as any source.

    For the demo, the benchmark and the tests, which publish every kind of traffic (forged
    sources too) from one broker user: routes.yaml's ``sources`` then decide, as before
    identities. Never for a real bus: a real sender claims only its own sources.
    """
    listed = ", ".join(sorted(types))
    return (
        "version: 1\nsenders:\n"
        f"  {sender_id}:\n"
        "    agencies: [000.00.00.G22]\n"
        '    sources: ["*"]\n'
        f"    types: [{listed}]\n"
        f"    amqp_user: {amqp_user}\n"
        '    delegated_for: ["*"]\n'  # and may report statuses on any agency's dossiers
    )
