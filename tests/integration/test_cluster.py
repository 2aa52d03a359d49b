"""The bus on a 3-node RabbitMQ cluster (scripts/cluster.sh): a node lost, the majority lost,
a rolling restart, under real traffic, with nothing lost.

The cluster runs beside the machine's own node (5672), on 5701-5703; the fixture starts it
and stops it when the module ends. The account of every message is the chaos tests'
(tests/integration/test_chaos.py ``Traffic``): by id in the store and at the stand-in
agencies, duplicates only with the same Idempotency-Key and bounded.

Sizes are cut to keep the whole module near three minutes on a 2-core machine shared with
three broker nodes: the node-loss run sends ``NODE_LOSS_MESSAGES`` (the issue asks 20,000;
see the constant), the others a few thousand.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from bus.broker.management import ManagementApi, ManagementUnavailable, quoted
from bus.store import DELIVERED
from tests.integration import senders_file
from tests.integration.harness import ROOT, catch_all_senders, wait_until
from tests.integration.test_chaos import Traffic, _reconnected
from tests.integration.test_gateway import TOKENS, body_of, message, start_gateway
from tests.integration.test_recoverability import fast_retries

pytestmark = pytest.mark.cluster

SCRIPT = ROOT / "scripts" / "cluster.sh"
NODES = ("dvc1@localhost", "dvc2@localhost", "dvc3@localhost")
AMQP = ",".join(f"amqp://guest:guest@127.0.0.1:{5700 + i}/%2F" for i in (1, 2, 3))
MANAGEMENT = ",".join(f"http://guest:guest@127.0.0.1:{15700 + i}" for i in (1, 2, 3))
# The 20,000 messages, at a pace that lasts ~35 s: the stream outlasts both faults
# (the killed node takes 10-25 s to come back before the second fault); on a loaded machine
# DVCBUS_CLUSTER_MESSAGES=12000 DVCBUS_CLUSTER_RATE=350 keeps the same duration.
NODE_LOSS_MESSAGES = int(os.environ.get("DVCBUS_CLUSTER_MESSAGES", "20000"))
RATE = float(os.environ.get("DVCBUS_CLUSTER_RATE", "600"))
RECONNECT_DELAY_MAX = 1.0  # DVCBUS_RECONNECT_DELAY_MAX of every test bus (harness.bus_env)


class Cluster:
    """scripts/cluster.sh, each step bounded; the management API of whichever node answers."""

    def __init__(self) -> None:
        self.api = ManagementApi(MANAGEMENT, timeout=5)

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"cluster.sh {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def kill(self, node: str) -> float:
        self.run("kill", node)
        return time.time()

    def stop_node(self, node: str) -> float:
        self.run("stopnode", node)
        return time.time()

    def start_nodes(self, *nodes: str) -> float:
        """Start nodes together (two stopped members each wait for the other) and wait."""
        return self._together("startnode", nodes)

    def stop_nodes(self, *nodes: str) -> float:
        """Stop nodes gracefully, together; returns once all are down."""
        return self._together("stopnode", nodes)

    @staticmethod
    def _together(command: str, nodes: tuple[str, ...]) -> float:
        procs = [
            subprocess.Popen(["bash", str(SCRIPT), command, n], stdout=subprocess.DEVNULL)
            for n in nodes
        ]
        for p in procs:
            assert p.wait(180) == 0, f"cluster.sh {command}: a node of {nodes} failed"
        return time.time()

    def queues(self, namespace: str) -> list[dict[str, Any]]:
        return [
            q
            for q in self.api.get("queues/%2F?columns=name,leader,members,online,type")
            if q["name"].startswith(namespace + ".")
        ]

    def leader_of(self, queue: str) -> str:
        return str(self.api.get(f"queues/%2F/{quoted(queue)}")["leader"])

    def all_led(self, namespace: str) -> bool:
        """Every quorum queue of the namespace has a leader on a running member, all 3 online."""
        try:
            queues = self.queues(namespace)
        except ManagementUnavailable:
            return False
        return bool(queues) and all(
            q.get("leader") in NODES and sorted(q.get("online") or []) == sorted(NODES)
            for q in queues
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """The 3-node cluster, started for this module and stopped (its files deleted) after."""
    control = Cluster()
    keep = bool(os.environ.get("DVCBUS_CLUSTER_KEEP"))  # kept: to read its logs, or rerun fast
    if not keep:  # a node an earlier run left half-joined would never finish starting
        control.run("stop", timeout=180)
    started = time.monotonic()
    try:
        control.run("start", timeout=240)
        print(f"cluster started in {time.monotonic() - started:.0f}s")
        yield control
    finally:
        if not keep:  # also when it failed to start: nothing is left for the next run
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=180)


def finish(stream: Traffic, timeout: float = 240) -> None:
    """The stream's end; every message confirmed, else which were not and why."""
    stream._thread.join(timeout)
    assert not stream.sending, "the stream did not finish in time"
    failed = Counter(
        (r.error or r.explain()) if r is not None else "never sent"
        for r in stream.results
        if r is None or not r.ok
    )
    assert not failed, failed


def longest_pause(bus, since: float, until: float) -> float:
    """The longest time (s) between two answered calls at the agencies in [since, until]."""
    times = sorted(r.at for r in bus.receipts() if r.ok and since <= r.at <= until)
    if len(times) < 2:
        return until - since
    return max(b - a for a, b in itertools.pairwise(times))


def test_a_node_killed_then_another_restarted_loses_nothing(make_bus, cluster, figures) -> None:
    bus = make_bus(fast_retries, cluster=(AMQP, MANAGEMENT))
    router, dispatcher = bus.start_router(), bus.start_dispatcher()
    assert wait_until(lambda: cluster.all_led(bus.names.namespace), 30, 0.5)
    replicas = {q["name"]: len(q["members"]) for q in cluster.queues(bus.names.namespace)}
    leaders = {q["leader"] for q in cluster.queues(bus.names.namespace)}
    stream = Traffic(bus, NODE_LOSS_MESSAGES, seed=21, rate=RATE)
    victim = cluster.leader_of(bus.names.ingress_queue)
    other = next(n for n in NODES if n != victim)
    stream.start()
    started = time.time()
    assert wait_until(lambda: sum(r.ok for r in bus.receipts()) >= 300, 60, 0.1)
    sending_during_faults = [stream.sending]
    killed_at = cluster.kill(victim)  # kill -9 the node leading ingress, mid-stream
    time.sleep(2)
    back_at = cluster.start_nodes(victim)  # back (a majority stays up all along) ...
    sending_during_faults.append(stream.sending)
    stopped_at = cluster.stop_node(other)  # ... then another node's graceful stop (320)
    cluster.start_nodes(other)
    finish(stream)
    account = stream.account(timeout=150, interruptions=3)
    ended = time.time()
    figures(
        "cluster node loss",
        {
            "ingress_leader_killed": victim,
            "gracefully_restarted": other,
            "killed_after_s": round(killed_at - started, 1),
            "down_s": round(back_at - killed_at, 1),
            "stopped_after_s": round(stopped_at - started, 1),
            "longest_pause_s": round(longest_pause(bus, started, ended), 2),
            **account,
        },
    )
    assert set(replicas.values()) == {3}, replicas  # every quorum queue on all three nodes
    assert len(leaders) >= 2, leaders  # leaders spread over the nodes
    assert all(sending_during_faults), "the faults must land while messages are being sent"
    assert account["problems"] == []
    assert account["delivered"] + account["superseded"] == account["expected_deliveries"]
    assert router.alive and dispatcher.alive  # the same processes reconnected by themselves
    assert _reconnected(router.log_text(), "dvcbus-router") or "broker.connected" in (
        router.log_text()
    )
    assert wait_until(lambda: cluster.all_led(bus.names.namespace), 60, 1)


def with_gateway_sender(bus) -> None:
    """The tests' publisher and the gateway's ``portal`` sender (a bearer token) in
    senders.yaml, before the router and gateway read it."""
    token = "sha256:" + hashlib.sha256(TOKENS["portal"].encode()).hexdigest()
    bus.routes_file.with_name("senders.yaml").write_text(
        catch_all_senders(bus.names) + senders_file.portal(f"auth: {{ bearer: [{token}] }}"),
        encoding="utf-8",
    )


def test_the_majority_lost_acknowledges_nothing_then_carries_on(make_bus, cluster, figures) -> None:
    bus = make_bus(fast_retries, cluster=(AMQP, MANAGEMENT))
    with_gateway_sender(bus)
    router, dispatcher = bus.start_router(), bus.start_dispatcher()
    gateway = start_gateway(bus, DVCBUS_GATEWAY_CONFIRM_TIMEOUT="3")
    assert wait_until(lambda: gateway.request("GET", "/readyz", token=None).status == 200, 30)
    stream = Traffic(bus, 2000, seed=22, rate=150)  # 13 s of traffic
    stream.start()
    assert wait_until(lambda: sum(r.ok for r in bus.receipts()) >= 100, 60, 0.1)
    first, second = NODES[1], NODES[2]
    # 2 of 3 gone: the last node pauses itself (pause_minority) and closes its connections
    lost_at = cluster.stop_nodes(first, second)
    sending_when_lost = stream.sending
    time.sleep(6)
    refused = gateway.post(body_of(message()))  # the gateway accepts nothing meanwhile
    returning_at = time.time()  # until now no majority: nothing may be confirmed or delivered
    delivered_while_lost = [
        r for r in bus.receipts() if r.ok and lost_at + 0.5 < r.at < returning_at
    ]
    confirmed_while_lost = [
        r.message_id
        for r in stream.results
        if r is not None and r.ok and lost_at + 0.5 < r.confirmed_at < returning_at
    ]
    back_at = cluster.start_nodes(first, second)
    finish(stream)
    account = stream.account(timeout=150, interruptions=3)
    after = [r for r in bus.receipts() if r.ok and r.at > returning_at]
    # then the gateway takes messages again (after the account: they are not the stream's)
    accepted_doc = message()
    accepted: list[int] = []
    assert wait_until(
        lambda: accepted.append(gateway.post(body_of(accepted_doc)).status) or accepted[-1] == 202,
        60,
        1,
    ), accepted
    figures(
        "cluster majority lost",
        {
            "majority_down_s": round(returning_at - lost_at, 1),
            "nodes_back_after_s": round(back_at - returning_at, 1),
            "confirmed_while_lost": len(confirmed_while_lost),
            "delivered_while_lost": len(delivered_while_lost),
            "delivered_after_return": len(after),
            "gateway_while_lost": refused.status,
            "gateway_after_return": accepted[-1],
            **account,
        },
    )
    assert sending_when_lost, "the majority must go while messages are being sent"
    assert confirmed_while_lost == []  # nothing acknowledged that the cluster did not hold
    assert delivered_while_lost == []  # nor taken from a queue without a majority
    assert refused.status == 503, refused  # the gateway says so; the sender tries again later
    assert refused.body["reason"] == "broker_unavailable"
    delivered_by_gateway = wait_until(
        lambda: (
            ("hanoi", DELIVERED)
            in {(t, o) for _m, t, o in bus.store.outcomes([accepted_doc["id"]])}
        ),
        60,
        0.5,
    )
    assert delivered_by_gateway, "a message the gateway accepted after the return is delivered"
    assert account["problems"] == []
    assert account["delivered"] + account["superseded"] == account["expected_deliveries"]
    assert after, "the bus must carry on once the nodes return"
    assert router.alive and dispatcher.alive
    assert _reconnected(dispatcher.log_text(), "dvcbus-dispatcher"), dispatcher.log_text()[-3000:]


def test_a_rolling_restart_under_load_keeps_delivering(make_bus, cluster, figures) -> None:
    bus = make_bus(fast_retries, cluster=(AMQP, MANAGEMENT))
    router, dispatcher = bus.start_router(), bus.start_dispatcher()
    stream = Traffic(bus, 6000, seed=23, rate=100)  # 60 s of traffic, the restarts ~50 s
    stream.start()
    assert wait_until(lambda: sum(r.ok for r in bus.receipts()) >= 100, 60, 0.1)
    started = time.time()
    sending_throughout = []
    for node in NODES:
        sending_throughout.append(stream.sending)
        cluster.stop_node(node)
        cluster.start_nodes(node)
    restarted = time.time()
    led = wait_until(lambda: cluster.all_led(bus.names.namespace), 60, 1)
    finish(stream)
    account = stream.account(timeout=150, interruptions=3)
    pause = longest_pause(bus, started, restarted)
    figures(
        "cluster rolling restart",
        {
            "restart_s": round(restarted - started, 1),
            "longest_pause_s": round(pause, 2),
            "reconnect_backoff_max_s": RECONNECT_DELAY_MAX,
            **account,
        },
    )
    assert all(sending_throughout), "each restart must begin while messages are being sent"
    assert led, cluster.queues(bus.names.namespace)  # every quorum queue has a leader again
    assert account["problems"] == []
    assert account["delivered"] + account["superseded"] == account["expected_deliveries"]
    assert router.alive and dispatcher.alive
    # Leader election of the quorum queues (a few s) plus one backoff step, not a stall.
    assert pause <= 5 * RECONNECT_DELAY_MAX + 5, pause
