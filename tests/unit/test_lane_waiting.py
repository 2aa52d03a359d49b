"""Messages waiting in a delay tier count toward their target's oldest-waiting age."""

from adapters.base import Adapter, TargetSpec
from bus.delivery.circuit import CircuitBreaker
from bus.delivery.dispatcher import RetryPlan, TargetLane


def lane() -> TargetLane:
    spec = TargetSpec("hanoi", "000.00.00.H26", "rest", "http://x", 1.0, 1.0, 1)
    return TargetLane(
        "hanoi", Adapter(spec), 1, 5.0, RetryPlan((10.0,), 3, 60.0), CircuitBreaker(3, 1)
    )


def test_the_oldest_message_in_a_delay_tier_sets_the_age() -> None:
    hanoi = lane()
    hanoi.waiting["a"] = (1000.0, 1100.0)
    hanoi.waiting["b"] = (1050.0, 1150.0)
    assert hanoi.oldest_waiting(now=1120.0) == 1000.0


def test_an_entry_long_past_due_is_forgotten() -> None:
    hanoi = lane()
    hanoi.waiting["gone"] = (1000.0, 1100.0)  # came back to another dispatcher
    assert hanoi.oldest_waiting(now=1100.0 + 301) is None
    assert hanoi.waiting == {}
