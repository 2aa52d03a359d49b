"""The adapter SDK: everything a plug-in for one agency system may rely on.

A plug-in imports from ``adapters`` (this module's ``__all__``) and tests with
``adapters.testing``; nothing else is promised (docs/adapters.md, "The SDK surface").
The package never imports the bus: dependencies go one way, bus → adapters.

- :class:`Adapter`, :class:`TargetSpec`, :class:`Message` and the three outcomes
- options: :class:`AdapterOptions`, :func:`parse_options` and their helpers
- :func:`contract_headers`, :func:`new_traceparent`: the headers every call carries
- submodules, loaded when first used: ``http`` (HTTP with TLS and caps), ``classify``
  (the outcome rules), ``mapping`` (declared field mappings), ``testing`` (stand-ins)

Built-in kinds live in ``adapters.kinds`` (``rest``, ``soap``, ``portal_sync``,
``onestop``, ``payment``). Importing ``adapters`` stays cheap: no XML or HTTP library is
loaded until a submodule that needs one is.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from adapters.base import (
    Adapter,
    Delivered,
    Outcome,
    PermanentFailure,
    TargetSpec,
    TransientFailure,
)
from adapters.headers import contract_headers, new_traceparent
from adapters.message import Message
from adapters.options import (
    AdapterConfigError,
    AdapterOptions,
    merge_options,
    parse_options,
    placeholder_credentials,
    require_credentials,
)

if TYPE_CHECKING:
    from adapters import classify, http, mapping, testing

# The SDK's version: a minor adds to __all__, a major removes or changes (docs/adapters.md).
SDK_VERSION = "1.2"  # 1.2: Message.flags (X-Bus-Flags); 1.1: Act.DRIP, Behaviour.drip_*

__all__ = [
    "SDK_VERSION",
    "Adapter",
    "AdapterConfigError",
    "AdapterOptions",
    "Delivered",
    "Message",
    "Outcome",
    "PermanentFailure",
    "TargetSpec",
    "TransientFailure",
    "classify",
    "contract_headers",
    "http",
    "mapping",
    "merge_options",
    "new_traceparent",
    "parse_options",
    "placeholder_credentials",
    "require_credentials",
    "testing",
]

_LAZY = frozenset({"classify", "http", "mapping", "testing"})


def __getattr__(name: str) -> Any:
    """The submodules of the SDK, imported on first use (aiohttp, lxml only when needed)."""
    if name in _LAZY:
        return importlib.import_module(f"adapters.{name}")
    raise AttributeError(f"module 'adapters' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
