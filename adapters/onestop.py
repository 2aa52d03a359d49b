"""Deprecated path of :mod:`adapters.kinds.onestop`, kept for one release."""

from __future__ import annotations

import warnings
from typing import Any

from adapters.kinds import onestop as _moved
from adapters.kinds.onestop import *  # noqa: F403

warnings.warn(
    "adapters.onestop is deprecated and goes in the next release: import adapters.kinds.onestop",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    """Names a star import leaves out (private helpers) come from the new module too."""
    return getattr(_moved, name)
