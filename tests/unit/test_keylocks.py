"""Per-key locks serialise work on one key and let other keys run alongside."""

import asyncio

from bus.delivery.keylocks import KeyLocks


def test_same_key_waits_other_keys_do_not() -> None:
    async def go() -> list[str]:
        locks, order = KeyLocks(), []

        async def work(key: str, name: str, delay: float) -> None:
            async with locks.hold(key):
                order.append(f"{name} in")
                await asyncio.sleep(delay)
                order.append(f"{name} out")

        await asyncio.gather(work("a", "a1", 0.05), work("a", "a2", 0.0), work("b", "b1", 0.0))
        assert len(locks) == 0  # nothing left behind
        return order

    order = asyncio.run(go())
    assert order.index("a1 out") < order.index("a2 in")
    assert order.index("b1 in") < order.index("a1 out")
