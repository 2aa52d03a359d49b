"""Policies that could drop the bus's messages are found, with the queue and policy named."""

from bus.broker.topology import Names, plan
from bus.broker.topology_check import Policy, check, effective, risks

TOPOLOGY = plan(Names("bus"), {"hanoi": 20}, 20, [10.0])


def policy(name: str, pattern: str, **definition: object) -> Policy:
    return Policy(name, pattern, "queues", 0, dict(definition))


def test_the_bus_own_arguments_are_safe() -> None:
    assert check(TOPOLOGY, [], []) == []


def test_a_length_limit_dropping_the_oldest_is_refused() -> None:
    problems = check(TOPOLOGY, [policy("cap", r"^bus\.dead$", **{"max-length": 1000})], [])
    assert problems == [
        "queue bus.dead: a length limit with overflow drop-head: the oldest messages are dropped "
        "(from policy 'cap')"
    ]


def test_a_delivery_limit_on_the_dead_letter_queue_has_nowhere_to_go() -> None:
    problems = check(TOPOLOGY, [], [policy("ops", r"\.dead$", **{"delivery-limit": 5})])
    assert any("no dead-letter exchange" in p and "operator policy 'ops'" in p for p in problems)


def test_an_expiring_queue_is_refused() -> None:
    problems = check(TOPOLOGY, [policy("tidy", r"^bus\.", expires=60000)], [])
    assert len(problems) == len(TOPOLOGY.queues)


def test_queue_arguments_win_over_a_policy_except_stricter_limits() -> None:
    args = {"x-dead-letter-exchange": "bus.dead", "x-delivery-limit": 20}
    got = effective(
        args, policy("p", ".", **{"dead-letter-exchange": "", "delivery-limit": 3}), None
    )
    assert got["dead-letter-exchange"] == "bus.dead" and got["delivery-limit"] == 3


def test_reject_publish_overflow_is_safe() -> None:
    assert risks({"max-length": 10, "overflow": "reject-publish"}) == []


def test_policies_that_match_other_queues_are_ignored() -> None:
    assert check(TOPOLOGY, [policy("other", r"^celery", **{"max-length": 1})], []) == []
