"""Bounds on calls, checked by one timer per pool instead of one timer per call.

``asyncio.timeout`` and aiohttp's ``total`` each schedule a timer handle for every call and
cancel it when the call ends: a few microseconds per delivery, twice per delivery when an
adapter and the dispatcher both bound it. A :class:`Watchdog` keeps the calls under way in a
dict and looks at them every ``tick`` seconds, so under load it costs one timer per tick,
whatever the number of calls. The price is precision: a call is cut at most ``tick`` after
its bound, so the tick is a small fraction of the bounds it watches (:func:`tick_for`).

Cutting works like ``asyncio.timeout``: the call's task is cancelled, and leaving the
``with`` turns that cancellation into :class:`TimeoutError`. A cancellation that came
from elsewhere as well (a shutdown) stays a cancellation.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

DEFAULT_TICK = 0.25  # seconds: how late a call may be cut at most


def tick_for(bound: float, tick: float = DEFAULT_TICK) -> float:
    """A tick small beside ``bound`` (a tenth of it at most), so short bounds stay exact."""
    return max(min(tick, bound / 10), 0.001)


class Watchdog:
    """Cuts calls that outlive their bound; one per pool of calls (a target, a lane)."""

    __slots__ = ("_due", "_fired", "_handle", "_loop", "tick")

    def __init__(self, tick: float = DEFAULT_TICK) -> None:
        self.tick = tick
        self._due: dict[asyncio.Task[Any], float] = {}
        self._fired: set[asyncio.Task[Any]] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bound(self, seconds: float) -> Bound:
        """``with watchdog.bound(seconds):`` — TimeoutError if the block outlives it.

        A plain ``with``, not ``async with``: entering and leaving need no await (and cost
        no coroutine), inside a task all the same.
        """
        return Bound(self, seconds)

    @property
    def watching(self) -> int:
        """Calls under way (for tests and gauges)."""
        return len(self._due)

    def _start(self, task: asyncio.Task[Any], seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): nothing of the old one holds
            self._loop, self._handle = loop, None
            self._due.clear()
            self._fired.clear()
        self._due[task] = loop.time() + seconds
        if self._handle is None:
            self._handle = loop.call_later(self.tick, self._check)

    def _check(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        due = self._due
        for task, at in list(due.items()):
            if at <= now:
                del due[task]
                self._fired.add(task)
                task.cancel()
        self._handle = loop.call_at(now + self.tick, self._check) if due else None

    def _end(self, task: asyncio.Task[Any]) -> bool:
        """Forget ``task``'s call; True when the watchdog cancelled it."""
        self._due.pop(task, None)
        if task in self._fired:
            self._fired.discard(task)
            return True
        return False


class Bound:
    """One bounded block (see :meth:`Watchdog.bound`)."""

    __slots__ = ("_cancelling", "_dog", "_seconds", "_task")

    def __init__(self, dog: Watchdog, seconds: float) -> None:
        self._dog = dog
        self._seconds = seconds
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0

    def __enter__(self) -> Bound:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Watchdog.bound() must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._dog._start(task, self._seconds)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        assert task is not None
        # As asyncio.timeout does: only a cancellation of ours, and no other, becomes a timeout.
        if (
            self._dog._end(task)
            and task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError(f"no end within {self._seconds:g}s") from exc
