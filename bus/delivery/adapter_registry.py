"""Finds adapter kinds by name through the ``dvcbus.adapters`` entry-point group.

The core never imports an agency's adapter by name: built-in kinds and third-party
packages register the same way, and routes.yaml names the kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from adapters.base import Adapter, TargetSpec
from adapters.options import AdapterConfigError as AdapterOptionsError
from bus.errors import AdapterConfigError

GROUP = "dvcbus.adapters"


class AdapterNotFound(AdapterConfigError):
    """routes.yaml names an adapter kind that no installed package provides."""


@dataclass(frozen=True, slots=True)
class AdapterKind:
    name: str
    target: str  # "module:Class"
    distribution: str
    version: str


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[AdapterKind]:
    """Every installed adapter kind with the distribution that provides it."""
    kinds = []
    for name, ep in sorted(_entry_points().items()):
        dist = ep.dist
        kinds.append(
            AdapterKind(
                name=name,
                target=ep.value,
                distribution=dist.name if dist else "?",
                version=dist.version if dist else "?",
            )
        )
    return kinds


def kind_names() -> set[str]:
    return set(_entry_points())


def load(kind: str) -> type[Adapter]:
    """The adapter class registered as ``kind``."""
    ep = _entry_points().get(kind)
    if ep is None:
        known = ", ".join(sorted(_entry_points())) or "none"
        raise AdapterNotFound(f"no adapter kind {kind!r} is installed (installed: {known})")
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise AdapterNotFound(f"entry point {kind!r} ({ep.value}) is not an Adapter subclass")
    return cls


def build(spec: TargetSpec) -> Adapter:
    """The adapter of ``spec``'s target, or :class:`AdapterConfigError` naming target and kind.

    The edge between the bus and an adapter's own errors: a kind not installed, options the
    adapter refuses (the SDK's error, or any ValueError) and a file it cannot read (a WSDL,
    a CA file) are configuration problems of that target. Anything else is a bug and
    propagates as it is.
    """
    where = f"target {spec.name!r} (adapter {spec.adapter!r})"
    try:
        return load(spec.adapter)(spec)
    except AdapterNotFound as exc:
        raise AdapterNotFound(f"{where}: {exc}") from exc
    except (AdapterOptionsError, ValueError, OSError) as exc:
        raise AdapterConfigError(f"{where}: {exc}") from exc
