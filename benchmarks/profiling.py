"""py-spy attached to a running bus process, and the top entries of what it sampled."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy_binary() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class PySpy:
    """``py-spy record`` on one pid, as collapsed stacks (``--format raw``; flamegraph.pl or
    speedscope read them). One sampler only: on 2 cores a second one would steal CPU."""

    def __init__(self, pid: int, out: Path, rate: int = 250) -> None:
        self.out = out
        self.procs: list[subprocess.Popen[bytes]] = []
        binary = py_spy_binary()
        if binary is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        out.parent.mkdir(parents=True, exist_ok=True)
        for fmt, path in (("raw", out),):
            self.procs.append(
                subprocess.Popen(
                    [
                        binary,
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        str(rate),
                        "--nonblocking",
                        "--function",
                        "--format",
                        fmt,
                        "--output",
                        str(path),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(Exception):
                    proc.wait(5)


# Frames every sample passes through (process start, CLI, the event loop itself): left out
# of the inclusive ranking, where they would only fill the top rows with 100%.
_PLUMBING = (
    "<frozen runpy>",
    "click/",
    "cli/__main__.py",
    "cli/run.py",
    "bus/app.py",
    "asyncio/runners.py",
    "BaseEventLoop.run_forever",
    "BaseEventLoop.run_until_complete",
    "BaseEventLoop._run_once",
    "Handle._run",
    "threading.py",
    "<module>",
)


def _frame_name(frame: str) -> str:
    """``function (path/to/file.py:12)`` -> ``function (file.py:12)`` with a short path."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, line = where.rpartition(":")
    parts = Path(path).parts
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            parts = parts[len(parts) - parts[::-1].index(anchor) :]
            break
    else:
        parts = parts[-2:]
    return f"{name} ({'/'.join(parts)}:{line})" if where else name


def top_entries(raw: Path, n: int = 15) -> dict[str, Any]:
    """Top functions by own samples (self) and by samples under them (inclusive)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    if not raw.exists():
        return {"samples": 0, "self": [], "inclusive": []}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread (")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            if not any(marker in frame for marker in _PLUMBING):
                inclusive[frame] += count

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "samples": c, "percent": round(100 * c / max(total, 1), 1)}
            for name, c in counter.most_common(n)
        ]

    return {"samples": total, "self": rows(own), "inclusive": rows(inclusive)}
