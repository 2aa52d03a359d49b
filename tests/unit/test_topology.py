"""The planned topology: quorum work queues that can never drop a message when dead-lettering."""

from bus.broker.topology import Names, plan


def test_every_work_queue_dead_letters_at_least_once_to_the_dead_exchange() -> None:
    names = Names("bus")
    topo = plan(names, {"hanoi": 20, "portal": 5}, ingress_delivery_limit=20)
    queues = {q.name: q.arguments for q in topo.queues}
    for name in ("bus.ingress", "bus.deliver.hanoi", "bus.deliver.portal"):
        args = queues[name]
        assert args["x-queue-type"] == "quorum"
        assert args["x-dead-letter-exchange"] == "bus.dead"
        assert args["x-dead-letter-strategy"] == "at-least-once"
        assert args["x-overflow"] == "reject-publish"  # at-least-once requires it
    assert queues["bus.deliver.portal"]["x-delivery-limit"] == 5
    assert queues["bus.dead"] == {"x-queue-type": "quorum"}


def test_each_target_queue_is_bound_by_its_name_and_unrouted_copies_are_parked() -> None:
    names = Names("ns1")
    topo = plan(names, {"hanoi": 20}, ingress_delivery_limit=20)
    bindings = {(b.queue, b.exchange, b.routing_key) for b in topo.bindings}
    assert ("ns1.deliver.hanoi", "ns1.deliver", "hanoi") in bindings
    assert ("ns1.dead", "ns1.unrouted", "") in bindings
    deliver = next(e for e in topo.exchanges if e.name == "ns1.deliver")
    assert deliver.arguments == {"alternate-exchange": "ns1.unrouted"}


def test_plan_is_deterministic() -> None:
    names = Names()
    assert plan(names, {"b": 1, "a": 2}, 3) == plan(names, {"a": 2, "b": 1}, 3)
