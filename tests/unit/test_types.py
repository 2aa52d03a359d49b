"""The typed packages pass ``mypy --strict``: plug-ins read real types, not ``Any``.

Config in pyproject.toml ([tool.mypy]); the list below grows package by package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("adapters", "bus/contract")


def test_the_typed_packages_pass_mypy_strict() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", *CHECKED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"mypy --strict {' '.join(CHECKED)}:\n{run.stdout}{run.stderr}"
