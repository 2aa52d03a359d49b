"""The watchdog cuts a call past its bound (at most a tick late) and nothing else."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters.watchdog import Watchdog, tick_for


def run(coro):
    return asyncio.run(coro)


def test_a_call_past_its_bound_ends_in_timeout_error_at_most_a_tick_late() -> None:
    async def main() -> float:
        dog = Watchdog(tick=0.02)
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"0\.1s"), dog.bound(0.1):
            await asyncio.sleep(5)
        assert dog.watching == 0
        return time.monotonic() - started

    took = run(main())
    assert 0.1 <= took < 0.1 + 0.02 + 0.1  # bound + tick + scheduling slack


def test_a_call_within_its_bound_is_untouched_and_forgotten() -> None:
    async def main() -> None:
        dog = Watchdog(tick=0.01)
        for _ in range(3):
            with dog.bound(1.0):
                await asyncio.sleep(0.02)
        assert dog.watching == 0
        await asyncio.sleep(0.05)  # its timer stops once nothing is watched
        assert dog._handle is None

    run(main())


def test_only_the_late_call_is_cut_among_many() -> None:
    async def call(dog: Watchdog, bound: float, takes: float) -> str:
        try:
            with dog.bound(bound):
                await asyncio.sleep(takes)
        except TimeoutError:
            return "cut"
        return "done"

    async def main() -> list[str]:
        dog = Watchdog(tick=0.01)
        return await asyncio.gather(call(dog, 0.5, 0.02), call(dog, 0.05, 2.0), call(dog, 0.5, 0.1))

    assert run(main()) == ["done", "cut", "done"]


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def main() -> None:
        dog = Watchdog(tick=0.01)

        async def call() -> None:
            with dog.bound(10):
                await asyncio.sleep(5)

        task = asyncio.create_task(call())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert dog.watching == 0

    run(main())


def test_a_cut_and_an_outer_cancellation_together_stay_a_cancellation() -> None:
    async def main() -> None:
        dog = Watchdog(tick=0.01)
        cut = asyncio.Event()

        async def call() -> None:
            with dog.bound(0.03):
                try:
                    await asyncio.sleep(5)
                except asyncio.CancelledError:
                    cut.set()
                    await asyncio.sleep(5)  # the shutdown's cancel arrives here
                    raise

        task = asyncio.create_task(call())
        await cut.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


def test_the_tick_is_a_tenth_of_a_short_bound() -> None:
    assert tick_for(15.0) == 0.25
    assert tick_for(0.5) == pytest.approx(0.05)
