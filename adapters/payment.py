"""Deprecated path of :mod:`adapters.kinds.payment`, kept for one release."""

from __future__ import annotations

import warnings
from typing import Any

from adapters.kinds import payment as _moved
from adapters.kinds.payment import *  # noqa: F403

warnings.warn(
    "adapters.payment is deprecated and goes in the next release: import adapters.kinds.payment",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    """Names a star import leaves out (private helpers) come from the new module too."""
    return getattr(_moved, name)
