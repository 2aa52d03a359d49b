"""Deprecated path of :mod:`adapters.kinds.portal_sync`, kept for one release."""

from __future__ import annotations

import warnings
from typing import Any

from adapters.kinds import portal_sync as _moved
from adapters.kinds.portal_sync import *  # noqa: F403

warnings.warn(
    "adapters.portal_sync is deprecated and goes in the next release: "
    "import adapters.kinds.portal_sync",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    """Names a star import leaves out (private helpers) come from the new module too."""
    return getattr(_moved, name)
