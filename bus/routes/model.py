"""The routing table as typed data: what routes.yaml says, with defaults merged into every target.

The models validate one file on their own (shapes, code formats, patterns, secrets written
inline); the loader adds what needs positions (line numbers, duplicate keys) and the checks
what needs outside knowledge (message types, adapter kinds, administrative units). Reading
the secrets behind credential references is :mod:`bus.routes.credentials`' job.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adapters.base import TargetSpec
from bus.routes.credentials import resolve_credential
from bus.routes.durations import parse_duration, parse_rate

AGENCY_ID = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[GH]\d{2}$")
SOURCE_ID = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[GH]\d{2}(?:/[a-z][a-z0-9-]{1,30})?$")
PROCEDURE_CODE = re.compile(r"^[1-3]\.\d{6}$")
PROVINCE_CODE = re.compile(r"^\d{2}$")
COMMUNE_CODE = re.compile(r"^\d{5}$")
TARGET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MESSAGE_TYPE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+$")
ADAPTER_KIND = re.compile(r"^[a-z][a-z0-9_-]*$")
PARTNER_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_ENV_REF = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")
_FILE_REF = re.compile(r"^file:/\S.*$")

GLOB_CHARS = frozenset("*?[")

# Settings every target gets when neither it nor `defaults` says otherwise; kept in the form
# an operator writes so the file's defaults and a target's overrides merge key by key.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "timeouts": {"connect": "2s", "read": "10s"},
    "concurrency": 8,
    "rate_limit": None,
    "retry": {"schedule": ["10s", "1m", "10m", "1h"], "max_attempts": 100, "max_age": "72h"},
    "circuit": {"failures": 5, "cooldown": "30s"},
    "delivery_limit": 20,
}
_NESTED_DEFAULTS = ("timeouts", "retry", "circuit")


def is_glob(pattern: str) -> bool:
    """Whether a match value is a glob (``*``, ``?``, ``[...]``) rather than a literal."""
    return not GLOB_CHARS.isdisjoint(pattern)


def check_glob(pattern: str, alphabet: str, what: str) -> None:
    """Refuse a glob with an unclosed ``[`` or with characters no ``what`` ever contains.

    fnmatch quietly treats a lone ``[`` as a literal, so a typo would silently never match.
    """
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "[":
            j = i + 1
            if j < n and pattern[j] == "!":
                j += 1
            start = j
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                raise ValueError(f"{what} pattern {pattern!r} has a '[' that is never closed")
            if j == start:
                raise ValueError(f"{what} pattern {pattern!r} has an empty [] set")
            for inner in pattern[start:j]:
                if inner not in alphabet and inner != "-":
                    raise ValueError(_impossible(pattern, inner, alphabet, what))
            i = j + 1
            continue
        if char not in "*?" and char not in alphabet:
            raise ValueError(_impossible(pattern, char, alphabet, what))
        i += 1


def _impossible(pattern: str, char: str, alphabet: str, what: str) -> str:
    hint = " (identifiers are upper case)" if char.upper() in alphabet and char.isalpha() else ""
    noun = _NOUNS.get(what, what)
    return f"{what} pattern {pattern!r} contains {char!r}, which never appears in {noun}{hint}"


_NOUNS = {
    "agency": "an agency identifier",
    "procedure": "a procedure code",
    "source": "a source (agency identifier/system)",
}


def compile_values(values: tuple[str, ...] | None) -> re.Pattern[str] | None:
    """One case-sensitive regex for a list of globs (any of them), or None for no condition."""
    if values is None:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(value)})" for value in values))


_DIGITS = "0123456789"


def _agency_pattern(value: str) -> str:
    if is_glob(value):
        check_glob(value, _DIGITS + ".GH", "agency")
        return value
    return _agency_id(value)


def _agency_id(value: str) -> str:
    if not AGENCY_ID.match(value):
        raise ValueError(
            f"agency {value!r} is not an agency identifier (NNN.NN.NN.GNN for a ministry, "
            "NNN.NN.NN.HNN for a province, e.g. 000.00.00.H26)"
        )
    return value


def _procedure_pattern(value: str) -> str:
    if is_glob(value):
        check_glob(value, _DIGITS + ".", "procedure")
    elif not PROCEDURE_CODE.match(value):
        raise ValueError(
            f"procedure {value!r} is not a procedure code (1, 2 or 3, a dot, six digits, "
            "e.g. 1.012889)"
        )
    return value


_SOURCE_CHARS = _DIGITS + ".GH/-abcdefghijklmnopqrstuvwxyz"


def _source_pattern(value: str) -> str:
    if is_glob(value):
        check_glob(value, _SOURCE_CHARS, "source")
    elif not SOURCE_ID.match(value):
        raise ValueError(
            f"source {value!r} is not an agency identifier, optionally followed by /system "
            "(e.g. 000.00.00.G22/portal)"
        )
    return value


def _exact(pattern: re.Pattern[str], what: str, example: str) -> Any:
    def check(value: str) -> str:
        if is_glob(value):
            raise ValueError(f"{what} is matched exactly, not as a glob: list the values instead")
        if not pattern.match(value):
            raise ValueError(f"{what} {value!r} is not a {what} code (e.g. {example})")
        return value

    return check


def _message_type(value: str) -> str:
    if is_glob(value):
        raise ValueError("type is matched exactly, not as a glob: list the types instead")
    if not MESSAGE_TYPE.match(value):
        raise ValueError(f"{value!r} is not a message type (e.g. dossier.submitted)")
    return value


def _target_name(value: str) -> str:
    if not TARGET_NAME.match(value):
        raise ValueError(
            f"target name {value!r} must be lower-case letters, digits and '-', starting with "
            "a letter or digit, at most 63 characters (it becomes a queue name)"
        )
    return value


def _route_name(value: str) -> str:
    if not TARGET_NAME.match(value):
        raise ValueError(
            f"route name {value!r} must be lower-case letters, digits and '-', starting with a "
            "letter or digit, at most 63 characters (it appears in logs and metrics)"
        )
    return value


def _adapter_kind(value: str) -> str:
    if not ADAPTER_KIND.match(value):
        raise ValueError(f"adapter {value!r} is not an adapter kind name (e.g. rest, soap)")
    return value


def _endpoint(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc or " " in value:
        raise ValueError("endpoint must be a URL such as https://host:port/path")
    if parts.username or parts.password:
        raise ValueError("endpoint must not carry a user or password: put them in credentials")
    return value


def _credential_ref(value: str) -> str:
    # The value may be a secret someone pasted in: the message must not repeat it.
    if not (_ENV_REF.match(value) or _FILE_REF.match(value)):
        raise ValueError(
            "credentials are references, env:NAME or file:/path, never the secret itself "
            "(the value is not repeated here)"
        )
    return value


def _one_or_many(value: Any) -> Any:
    """Let an operator write `x` for a one-item list `[x]`."""
    return [value] if isinstance(value, str) else value


def _one_or_more(value: Any) -> Any:
    """Like `_one_or_many`, refusing an empty list before its items are looked at.

    (pydantic's min_length runs after the items, and adds a confusing second error whenever
    an item is wrong.)
    """
    value = _one_or_many(value)
    if isinstance(value, list | tuple) and not value:
        raise ValueError("give at least one value")
    return value


def _condition_values(value: Any) -> Any:
    """A match condition's values: an empty list would match nothing, so it is refused."""
    value = _one_or_many(value)
    if isinstance(value, list | tuple) and not value:
        raise ValueError("give at least one value, or leave the key out to match anything")
    return value


def _partner_code(value: str) -> str:
    if not PARTNER_CODE.match(value):
        raise ValueError(
            f"partner {value!r} is not a payment partner code (1-32 letters, digits, '_' or "
            "'-', as the platform's partner_code, e.g. VCB01)"
        )
    return value


NonEmptyText = Annotated[str, Field(min_length=1)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
TargetName = Annotated[str, AfterValidator(_target_name)]
RouteName = Annotated[str, AfterValidator(_route_name)]
MessageType = Annotated[str, AfterValidator(_message_type)]
AgencyPattern = Annotated[str, AfterValidator(_agency_pattern)]
ProcedurePattern = Annotated[str, AfterValidator(_procedure_pattern)]
SourcePattern = Annotated[str, AfterValidator(_source_pattern)]
ProvinceCode = Annotated[str, AfterValidator(_exact(PROVINCE_CODE, "province", '"01"'))]
CommuneCode = Annotated[str, AfterValidator(_exact(COMMUNE_CODE, "commune", '"00004"'))]
CredentialRef = Annotated[str, AfterValidator(_credential_ref)]
PartnerCode = Annotated[str, AfterValidator(_partner_code)]


class _Model(BaseModel):
    # hide_input_in_errors: a pasted secret must not reach a log through a ValidationError.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )


class Timeouts(_Model):
    """How long to wait for a target: to connect, and for its answer."""

    connect: Duration
    read: Duration


class RetryPolicy(_Model):
    """When to try a failed delivery again, and when to give up and dead-letter it."""

    schedule: Annotated[tuple[Duration, ...], BeforeValidator(_one_or_more)]
    max_attempts: PositiveInt
    max_age: Duration


class CircuitPolicy(_Model):
    """When to stop calling a failing target, and how long to wait before probing it again."""

    failures: PositiveInt  # consecutive transient failures that open the circuit
    cooldown: Duration  # how long it stays open before one probe call


# AMQP caps a consumer's prefetch (twice `concurrency`) at 65535.
Concurrency = Annotated[int, Field(gt=0, le=32767)]


class Defaults(_Model):
    """Settings every target inherits unless it says otherwise (built-in values fill gaps)."""

    timeouts: Timeouts
    concurrency: Concurrency
    rate_limit: Rate | None = None
    retry: RetryPolicy
    circuit: CircuitPolicy
    delivery_limit: PositiveInt


class Target(_Model):
    """One system the bus delivers to, with every setting concrete after defaults are merged."""

    name: TargetName
    agency: Annotated[str, AfterValidator(_agency_id)]
    adapter: Annotated[str, AfterValidator(_adapter_kind)]
    endpoint: Annotated[str, AfterValidator(_endpoint)]
    credentials: dict[NonEmptyText, CredentialRef] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    timeouts: Timeouts
    concurrency: Concurrency
    rate_limit: Rate | None = None
    retry: RetryPolicy
    circuit: CircuitPolicy
    delivery_limit: PositiveInt
    # This agency's system reads the unit codes: a message whose codes cannot be brought to
    # the current lists without guessing is refused for it (``ambiguous_unit``), never
    # forwarded with the old code kept as written (see bus/routes/table.py).
    needs_current_units: bool = False
    # What the target keeps of a dossier's statuses (docs/statuses.md). "current": only the
    # latest, so a late status (older by status_at, sequence than one delivered) is
    # superseded, never sent to overwrite it. "history": every status (the portal's progress
    # records), so a late one is delivered flagged as history. "current" by default: a
    # target that did not say cannot be trusted to tell a late status from a step backward.
    statuses: Literal["current", "history"] = "current"
    # A status that cannot follow the one last delivered here (statuses.yaml): dead-letter
    # it `invalid_transition`, or forward it flagged (a system that re-syncs its history).
    on_invalid_transition: Literal["dead-letter", "forward"] = "dead-letter"

    @property
    def connect_timeout(self) -> float:
        """Seconds to wait for a connection to the target."""
        return self.timeouts.connect

    @property
    def read_timeout(self) -> float:
        """Seconds to wait for the target's answer."""
        return self.timeouts.read

    def spec(self, resolve_credentials: bool = True) -> TargetSpec:
        """What the adapter is told; credential references are resolved only when asked.

        ``routes check`` passes False so a file can be checked on a machine without the secrets.
        """
        if resolve_credentials:
            credentials = {
                key: resolve_credential(self.name, key, ref)
                for key, ref in self.credentials.items()
            }
        else:
            credentials = dict(self.credentials)
        return TargetSpec(
            name=self.name,
            agency=self.agency,
            adapter=self.adapter,
            endpoint=self.endpoint,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            concurrency=self.concurrency,
            options=copy.deepcopy(self.options),
            credentials=credentials,
        )


def _conditions(item: Any) -> Any:
    """A match condition: one value or a non-empty list of values (any of them)."""
    return Annotated[tuple[item, ...] | None, BeforeValidator(_condition_values)]


MessageTypes = _conditions(MessageType)
AgencyPatterns = _conditions(AgencyPattern)
ProcedurePatterns = _conditions(ProcedurePattern)
ProvinceCodes = _conditions(ProvinceCode)
CommuneCodes = _conditions(CommuneCode)
SourcePatterns = _conditions(SourcePattern)

# The attributes a route can match on, in the order `routes explain` checks them.
MATCH_KEYS = ("type", "source", "agency", "agency_province", "procedure", "province", "commune")
GLOB_KEYS = frozenset({"agency", "procedure", "source"})


class RouteMatch(_Model):
    """A route's condition: every key given must hold (AND), any listed value will do (OR)."""

    type: MessageTypes = None
    source: SourcePatterns = None
    agency: AgencyPatterns = None
    # the receiving agency's current province, from the agency registry (agencies.yaml)
    agency_province: ProvinceCodes = None
    procedure: ProcedurePatterns = None
    province: ProvinceCodes = None
    commune: CommuneCodes = None

    def given(self) -> dict[str, tuple[str, ...]]:
        """The conditions this route sets, in checking order."""
        found = {key: getattr(self, key) for key in MATCH_KEYS}
        return {key: values for key, values in found.items() if values is not None}


class Route(_Model):
    """One line of the routing decision: when `match` holds, send to the targets in `to`."""

    name: RouteName
    match: RouteMatch
    to: Annotated[tuple[NonEmptyText, ...], BeforeValidator(_one_or_more)]
    continue_: bool = Field(default=False, alias="continue")
    # For the copies this route sends: overrides each target's `on_invalid_transition`.
    on_invalid_transition: Literal["dead-letter", "forward"] | None = None


class Partner(_Model):
    """A partner of the payment platform: the secrets its checksums may be made with.

    Several at once while a secret is rotated: a checksum made with any of them verifies.
    """

    secrets: Annotated[tuple[CredentialRef, ...], BeforeValidator(_one_or_more)]


class Reconciliation(_Model):
    """Where pending payments are re-queried, and after how long.

    A confirmation still ``pending`` everywhere ``after`` it was delivered is asked of the
    platform's status query (``dvcbus payments reconcile``); a final answer is published
    through the ingress, so the router verifies it like any other.
    """

    status_query: Annotated[str, AfterValidator(_endpoint)]
    after: Duration = 900.0


class Payments(_Model):
    """The router's payment rules: partners' checksum secrets, and who is not the owner."""

    partners: dict[PartnerCode, Partner] = Field(default_factory=dict)
    reconciliation: Reconciliation | None = None
    # Targets that take every payment without being the agency owning it (the portal): a
    # payment that reaches only these has its agency copy dead-lettered `unroutable`.
    portal_targets: Annotated[tuple[NonEmptyText, ...], BeforeValidator(_one_or_many)] = ()


def merge_defaults(data: Any) -> tuple[Any, set[tuple[str, ...]]]:
    """Fill every target's unset settings from `defaults` (and `defaults` from built-in values).

    Works on plain data before validation, so a value is validated where it is written; also
    returns the target paths that were filled in, so the loader reports a bad default once, at
    the `defaults` line, rather than once per target.
    """
    if not isinstance(data, dict):
        return data, set()
    merged = dict(data)
    written = data.get("defaults")
    defaults = _overlay(BUILTIN_DEFAULTS, written if isinstance(written, dict) else {})
    if written is None or isinstance(written, dict):
        merged["defaults"] = defaults
    inherited: set[tuple[str, ...]] = set()
    targets = data.get("targets")
    if isinstance(targets, dict):
        merged["targets"] = {}
        for name, target in targets.items():
            if isinstance(target, dict):
                target = _inherit(target, defaults, ("targets", name), inherited)
                target["name"] = name
            merged["targets"][name] = target
    return merged, inherited


def _overlay(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in over.items():
        if key in _NESTED_DEFAULTS and isinstance(value, dict) and isinstance(result[key], dict):
            result[key] = {**result[key], **value}
        else:
            result[key] = value
    return result


def _inherit(
    target: dict[str, Any],
    defaults: dict[str, Any],
    path: tuple[str, ...],
    inherited: set[tuple[str, ...]],
) -> dict[str, Any]:
    result = dict(target)
    for key, builtin in BUILTIN_DEFAULTS.items():
        default = defaults.get(key, builtin)
        if key not in result:
            if key in _NESTED_DEFAULTS and isinstance(default, dict):
                default = {sub: default[sub] for sub in builtin if sub in default}
            result[key] = copy.deepcopy(default)
            inherited.add((*path, key))
        elif key in _NESTED_DEFAULTS and isinstance(result[key], dict):
            own = dict(result[key])
            for sub in builtin:
                if sub not in own and isinstance(default, dict) and sub in default:
                    own[sub] = copy.deepcopy(default[sub])
                    inherited.add((*path, key, sub))
            result[key] = own
    return result


class RoutesConfig(_Model):
    """The whole of routes.yaml, validated, with defaults merged into each target."""

    version: Literal[1]
    defaults: Defaults
    sources: dict[
        MessageType, Annotated[tuple[SourcePattern, ...], BeforeValidator(_one_or_many)]
    ] = Field(default_factory=dict)
    targets: dict[str, Target]
    routes: tuple[Route, ...]
    payments: Payments = Field(default_factory=Payments)
    unmatched: Literal["dead-letter"] = "dead-letter"

    _path: str = PrivateAttr(default="")
    _digest: str = PrivateAttr(default="")
    _lines: dict[tuple[str, str], int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        return merge_defaults(data)[0]

    @field_validator("sources", mode="before")
    @classmethod
    def _sources_may_be_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _routes_name_real_targets(self, info: ValidationInfo) -> RoutesConfig:
        # The loader reports these with line numbers before validating; this guards
        # configs built in code so a table is never handed a route to nowhere.
        if info.context and info.context.get("cross_checked"):
            return self
        problems = []
        seen: set[str] = set()
        for route in self.routes:
            if route.name in seen:
                problems.append(f"route name {route.name!r} is used twice")
            seen.add(route.name)
            problems.extend(
                f"route {route.name!r} sends to unknown target {name!r}"
                for name in route.to
                if name not in self.targets
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def path(self) -> str:
        """The file this configuration was read from ("" when built in code)."""
        return self._path

    @property
    def digest(self) -> str:
        """sha256 of the file's bytes: which routes.yaml is live, for metrics and logs."""
        return self._digest

    def source_line(self, kind: Literal["route", "target", "sources"], name: str) -> int | None:
        """The line where a route (its `- name:` entry), a target or a type's sources is written.

        None for a configuration built in code rather than read from a file.
        """
        return self._lines.get((kind, name))

    def set_origin(self, path: str, digest: str, lines: dict[tuple[str, str], int]) -> None:
        """Record where the configuration came from; called once by the loader."""
        self._path = path
        self._digest = digest
        self._lines = dict(lines)
