"""Deprecated path of :mod:`adapters.kinds.soap`, kept for one release."""

from __future__ import annotations

import warnings
from typing import Any

from adapters.kinds import soap as _moved
from adapters.kinds.soap import *  # noqa: F403

warnings.warn(
    "adapters.soap is deprecated and goes in the next release: import adapters.kinds.soap",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    """Names a star import leaves out (private helpers) come from the new module too."""
    return getattr(_moved, name)
