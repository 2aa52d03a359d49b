"""The gateway journals a request's hop before it answers: a kill after the answer cannot
lose the record of what was answered (the same hop journal as the router's acks)."""

from __future__ import annotations

import time
from typing import Any

from bus.ingress.admission import Admission, Post
from bus.ingress.gateway import Gateway
from bus.observability.hops import Event


class RecordingHops:
    def __init__(self, fail_sync: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_sync = fail_sync

    def emit(self, hop: Any) -> None:
        self.calls.append(("emit", hop.event))

    def sync(self) -> None:
        self.calls.append(("sync",))
        if self.fail_sync:
            raise OSError("disk full")


def gateway_with(hops: RecordingHops) -> Admission:
    gateway = Gateway.__new__(Gateway)  # only the hop step is exercised: no server, no broker
    gateway.hops = hops  # type: ignore[assignment]
    return Admission(gateway)


def test_each_answers_hop_is_journaled_before_the_answer() -> None:
    hops = RecordingHops()
    post = Post(started=time.perf_counter(), sender="portal", body=b"{}")
    gateway_with(hops).hop(Event.ACCEPTED, post)
    gateway_with(hops).hop(Event.REFUSED, post, "unauthenticated", "401 no token")
    assert hops.calls == [
        ("emit", Event.ACCEPTED),
        ("sync",),
        ("emit", Event.REFUSED),
        ("sync",),
    ]


def test_a_journal_that_cannot_be_written_does_not_turn_an_answer_into_an_error() -> None:
    hops = RecordingHops(fail_sync=True)
    post = Post(started=time.perf_counter(), sender="portal", body=b"{}")
    gateway_with(hops).hop(Event.ACCEPTED, post)  # logged, not raised
    assert hops.calls == [("emit", Event.ACCEPTED), ("sync",)]
