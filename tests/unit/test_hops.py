"""A failing observer is logged and skipped; the hop still reaches the others."""

from bus.observability.hops import Event, Hop, Hops


class Broken:
    def record(self, hop: Hop) -> None:
        raise RuntimeError("sink bug")


class Keeper:
    def __init__(self) -> None:
        self.hops: list[Hop] = []

    def record(self, hop: Hop) -> None:
        self.hops.append(hop)


def test_a_failing_sink_does_not_stop_the_others() -> None:
    keeper = Keeper()
    hops = Hops([Broken(), keeper])
    hops.emit(Hop(Event.DELIVERED, "dispatcher", "m1", "dossier.submitted"))
    assert [h.message_id for h in keeper.hops] == ["m1"]
