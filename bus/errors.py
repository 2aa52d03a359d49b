"""The bus's exceptions, as one tree (a class with data of its own lives beside its code):

    DvcBusError
    ├── ConfigError             a file or setting an operator must fix (CLI exit code 2)
    │   ├── SettingsError       settings TOML / DVCBUS_* env        bus.settings
    │   ├── SchemaLoadError     schemas/ broken                     bus.contract.schemas
    │   ├── RoutesError         routes.yaml refused, with problems  bus.routes.loader
    │   ├── CredentialError     env:/file: reference unresolved     bus.routes.credentials
    │   ├── StampKeyError       stamp_key unreadable or too short   bus.broker.stamp_key
    │   ├── BrokerPasswordError a broker user's password reference  bus.broker.access
    │   └── AdapterConfigError  a target's adapter cannot be built
    │       └── AdapterNotFound no installed kind of that name      bus.delivery.adapter_registry
    ├── BrokerError             the broker refused an operation or went away
    │   ├── FatalSetupError     a set-up problem reconnecting cannot fix
    │   ├── PolicyCheckUnavailable  management API not reachable  bus.broker.topology_check
    │   └── ManagementUnavailable   the same, for any other call   bus.broker.management
    ├── StoreError              the store URL cannot be opened      bus.store
    └── AuditWriterError        the audit writer process failed     bus.observability.audit_writer

A refused message is not an error: :class:`bus.contract.rejections.Rejection` is a decision
the router takes, and adapters report outcomes (their SDK has its own exceptions). Code that
disables one target, or a command that must stop, catches a class from this tree, never
``Exception``.
"""

from __future__ import annotations


class DvcBusError(Exception):
    """Base of every error the bus raises on purpose."""


class ConfigError(DvcBusError):
    """Something an operator must fix in a file or setting; the message names where."""


class AdapterConfigError(ConfigError):
    """A target's adapter cannot be built: unknown kind, bad options, a missing WSDL."""


class BrokerError(DvcBusError):
    """The broker refused an operation or went away while it was pending."""


class FatalSetupError(BrokerError):
    """A set-up problem that reconnecting cannot fix (e.g. the live topology is unsafe)."""
