"""Finds adapter kinds by name through the ``dvcbus.adapters`` entry-point group.

The core never imports an agency's adapter by name: built-in kinds and third-party
packages register the same way, and routes.yaml names the kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from adapters.base import Adapter

GROUP = "dvcbus.adapters"


class AdapterNotFound(Exception):
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
