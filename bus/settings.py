"""Process settings: defaults, then an optional TOML file from config/, then DVCBUS_* env vars.

A relative path in a setting (``routes_file``, ``schemas_dir``), from the file or the
environment, is relative to the project root, so a process finds the same files whichever
directory it is started from. (``store_url`` is a URL, read by the store: a relative SQLite
path in it is from the working directory.) ``config/default.toml`` lists every setting with
its default; a unit test keeps the two in step.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# The checkout (or install) the bus runs from: the one place bus/ works out its root.
# (The adapter SDK finds its own, adapters/kinds/soap.py: it must not import bus.)
from bus.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "DVCBUS_"


class SettingsError(ConfigError):
    """The settings file or environment holds a value the bus cannot use."""


class Settings(BaseModel):
    """Everything a bus process needs to know that is not in routes.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # One broker node, or a cluster's nodes comma-separated (or a list in the TOML file):
    # each process connects to one of them, shuffled, and to another when it loses it.
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    namespace: str = Field("bus", pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    routes_file: Path = PROJECT_ROOT / "routes.yaml"
    schemas_dir: Path | None = None  # None (or ""): $DVCBUS_SCHEMAS, else schemas/ of the root
    store_url: str = "sqlite:///var/dvcbus.db"  # relative paths are from the working directory
    audit_retention_months: int = Field(24, ge=1)
    # "process": the audit trail is written by a child process (off the event loop's GIL);
    # "thread": by a thread of the bus process itself (one process less, ~12% slower router).
    audit_writer: Literal["process", "thread"] = "process"
    # Where each process keeps its hop journal (its audit records on disk until the store has
    # them; bus/observability/journal.py). "" = beside a SQLite store (var/dvcbus-journal for
    # var/dvcbus.db), var/journal/<namespace>-<store digest> for PostgreSQL. Local disk; every
    # bus process on the host that writes the same store must use the same directory.
    audit_journal_dir: str = ""
    # Seconds between two commits of a process's audit records (hops wait in memory and in
    # the hop journal meanwhile). Longer: fewer, larger commits.
    audit_flush_interval: float = Field(0.1, gt=0, le=60)
    # The management API, to check broker policies before starting ("" = do not check);
    # on a cluster, several nodes' APIs comma-separated (or a list): the first that answers.
    management_url: str = "http://guest:guest@127.0.0.1:15672"
    # When the management API cannot be read: "refuse" to start (a policy that drops messages
    # could be in force unseen) or "warn" and start anyway (a broker whose API is fenced off).
    policy_check_unavailable: Literal["refuse", "warn"] = "refuse"
    # The key of the router's stamp on every routed copy (bus/broker/stamp.py): env:NAME or
    # file:/path; "" = var/stamp.key under the project root, created on first use (one host).
    stamp_key: str = Field("", pattern=r"^((env|file):.+)?$")
    # Users other than the bus's own that may write its delivery, retry or dead-letter
    # exchanges (bus/broker/permissions.py): "warn" names them in the log at start, "refuse"
    # does not start. Administrators (guest) are warned about either way.
    permission_check: Literal["warn", "refuse"] = "refuse"
    # Passwords of the users `dvcbus broker setup` creates: {USER} is the user name in
    # capitals with "_" for anything else (bus-router: BUS_ROUTER), {user} the name as is.
    broker_passwords: str = Field("env:DVCBUS_BROKER_PASSWORD_{USER}", pattern=r"^(env|file):.+$")
    max_message_bytes: int = Field(1024 * 1024, ge=1024)
    router_prefetch: int = Field(1000, ge=1, le=65535)
    ingress_delivery_limit: int = Field(20, ge=1)
    reconnect_delay_max: float = Field(10.0, gt=0)
    shutdown_grace: float = Field(20.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    # /metrics, /livez, /readyz of each process (0 = none); `dvcbus run --http-port` overrides
    http_host: str = "127.0.0.1"
    router_http_port: int = Field(9180, ge=0, le=65535)  # also `dvcbus run all`
    dispatcher_http_port: int = Field(9181, ge=0, le=65535)
    queue_poll_interval: float = Field(5.0, ge=0)  # seconds between queue-depth reads; 0 = off
    # The HTTP gateway (`dvcbus run gateway`, bus/ingress/): who may send is in senders.yaml.
    senders_file: Path | None = None  # None (or ""): senders.yaml beside routes_file
    agencies_file: Path | None = None  # None (or ""): agencies.yaml beside routes_file
    statuses_file: Path | None = None  # None (or ""): statuses.yaml beside routes_file
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(9190, ge=0, le=65535)  # POST/GET /v1/messages, /metrics, probes
    # A request body larger than this is refused 413 unread; at most max_message_bytes, so
    # the router never dead-letters as too_large what the gateway accepted.
    gateway_max_body_bytes: int = Field(1024 * 1024, ge=1024)
    gateway_rate_limit: float = Field(100.0, gt=0)  # requests/s per sender unless senders.yaml says
    gateway_body_timeout: float = Field(10.0, gt=0)  # seconds a client may take to send its body
    gateway_confirm_timeout: float = Field(10.0, gt=0)  # seconds to wait for the broker's confirm
    gateway_retry_after: int = Field(5, ge=1)  # seconds a 503 asks the client to wait
    gateway_retention_days: int = Field(30, ge=7)  # idempotency keys and who sent which id
    # Who sent an ingress message (bus/routing/identity.py): "require" = by its user_id (the
    # broker checks it), mapped to senders.yaml, or the gateway's header from the gateway's
    # user only; "off" = by the `source` it declares (routes.yaml's sources only).
    ingress_identity: Literal["require", "off"] = "require"
    # The gateway's RabbitMQ user: the one publisher whose x-dvcbus-sender header the router
    # trusts. "" = {namespace}-gateway (the user `dvcbus broker users sync` creates).
    gateway_broker_user: str = Field("", pattern=r"^([A-Za-z0-9][A-Za-z0-9._@-]{0,63})?$")
    # TLS on the gateway (bus/ingress/tls.py): its certificate chain and key, PEM files, both
    # or neither. None (or ""): plain HTTP, for a gateway behind a proxy that terminates TLS.
    gateway_tls_cert: Path | None = None
    gateway_tls_key: Path | None = None
    # The CA (PEM) that signs the client certificates the gateway accepts, over TLS or in a
    # trusted proxy's header; senders.yaml's auth.certificate says whose each one is.
    gateway_tls_client_ca: Path | None = None
    # Reverse proxies whose client-certificate header is trusted: addresses or networks,
    # comma-separated. From any other address the header is ignored. "" = none.
    gateway_trusted_proxies: str = ""
    # The header a trusted proxy puts the client's certificate in: URL-encoded PEM, like
    # nginx's $ssl_client_escaped_cert (or base64 DER).
    gateway_client_cert_header: str = Field("X-Client-Cert", pattern=r"^[A-Za-z0-9-]{1,64}$")

    @model_validator(mode="after")
    def _gateway_body_fits_the_router(self) -> Settings:
        if self.gateway_max_body_bytes > self.max_message_bytes:
            raise ValueError(
                f"gateway_max_body_bytes ({self.gateway_max_body_bytes}) must not exceed "
                f"max_message_bytes ({self.max_message_bytes}): the router would refuse "
                "as too_large what the gateway accepted"
            )
        return self

    @model_validator(mode="after")
    def _gateway_tls_is_whole(self) -> Settings:
        if (self.gateway_tls_cert is None) != (self.gateway_tls_key is None):
            raise ValueError(
                "gateway_tls_cert and gateway_tls_key go together: give both or neither"
            )
        if self.gateway_trusted_proxies and self.gateway_tls_client_ca is None:
            raise ValueError(
                "gateway_trusted_proxies needs gateway_tls_client_ca: a proxy's client-certificate "
                "header is checked against that CA"
            )
        return self

    @field_validator("gateway_trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not an address or a network") from None
        return value

    @field_validator("amqp_url", "management_url", mode="before")
    @classmethod
    def _node_list(cls, value: Any) -> Any:
        """A list of nodes (TOML) becomes the comma-separated form every caller reads."""
        if isinstance(value, list | tuple):
            return ",".join(str(v).strip() for v in value)
        return value

    @field_validator("amqp_url")
    @classmethod
    def _one_cluster(cls, value: str) -> str:
        from bus.broker.nodes import disagreement

        problem = disagreement(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def gateway_user(self) -> str:
        """The gateway's broker user: the setting, else {namespace}-gateway."""
        return self.gateway_broker_user or f"{self.namespace}-gateway"

    @property
    def senders_path(self) -> Path:
        """senders.yaml: the setting, else beside routes.yaml."""
        return self.senders_file or self.routes_file.with_name("senders.yaml")

    @property
    def agencies_path(self) -> Path:
        """agencies.yaml (the agency registry): the setting, else the one beside routes.yaml,
        else the registry shipped with the bus (a routes.yaml copied elsewhere, by tests or
        the benchmark, still routes by the same agencies)."""
        if self.agencies_file:
            return self.agencies_file
        beside = self.routes_file.with_name("agencies.yaml")
        return beside if beside.exists() else PROJECT_ROOT / "agencies.yaml"

    @property
    def statuses_path(self) -> Path:
        """statuses.yaml (the dossier status lifecycle): the setting, else the one beside
        routes.yaml, else the lifecycle shipped with the bus (DOMAIN.md's table)."""
        if self.statuses_file:
            return self.statuses_file
        beside = self.routes_file.with_name("statuses.yaml")
        return beside if beside.exists() else PROJECT_ROOT / "statuses.yaml"

    @field_validator(
        "routes_file",
        "schemas_dir",
        "senders_file",
        "agencies_file",
        "gateway_tls_cert",
        "gateway_tls_key",
        "gateway_tls_client_ca",
        "statuses_file",
        mode="before",
    )
    @classmethod
    def _from_project_root(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        return PROJECT_ROOT / value if isinstance(value, str | Path) else value

    def journal_dir(self) -> Path:
        """The hop journal directory (``audit_journal_dir``, or its default for the store).

        A relative path is from the working directory, like a relative SQLite store path.
        """
        if self.audit_journal_dir:
            return Path(self.audit_journal_dir)
        if self.store_url.startswith("sqlite:///"):
            store = Path(self.store_url.removeprefix("sqlite:///"))
            return store.with_name(f"{store.stem}-journal")
        digest = hashlib.sha256(self.store_url.encode()).hexdigest()[:8]
        return Path("var") / "journal" / f"{self.namespace}-{digest}"

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from defaults, a TOML file, the environment and explicit overrides."""
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}  # where each value came from, for the error message
        path = config_file or _env_path("DVCBUS_CONFIG")
        if path is not None:
            try:
                values.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"{path}: {exc}") from None
            origin.update(dict.fromkeys(values, str(path)))
        for name in cls.model_fields:
            env = os.environ.get(ENV_PREFIX + name.upper())
            if env is not None:
                values[name] = env
                origin[name] = ENV_PREFIX + name.upper()
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        origin.update(dict.fromkeys(given, "command line"))
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(_problem(err, origin) for err in exc.errors())
            raise SettingsError(problems) from None


def _problem(err: Any, origin: dict[str, str]) -> str:
    """One refused value: where it was set (the file, the env var), its name, what is wrong."""
    loc = err["loc"]
    where = origin.get(str(loc[0]), "settings") if loc else "settings"
    if not loc:  # a rule between settings (a model validator): its own words say which
        return f"{where}: {str(err['msg']).removeprefix('Value error, ')}"
    return f"{where}: {'.'.join(str(p) for p in loc)}: {err['msg']}"


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None
