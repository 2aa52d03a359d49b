"""The messages a phase publishes, and what the bus must do with each of them.

Every batch comes from one realistic traffic generator (``bus.demo.traffic``, without the
1.1 MB oversized bodies: the issue's 1-3 KB mix), so ids and dossier numbers never repeat
across phases: an idempotency store or a status-ordering rule can never turn a later
phase's message into a "duplicate" of an earlier one. The expected fate of each message
is decided in-process by the bus's own pipeline, as the demo does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bus.app import Loaded
from bus.demo.traffic import TrafficGenerator
from bus.routing.pipeline import Forward, RouterPipeline


@dataclass
class Batch:
    bodies: list[bytes]
    expected: dict[str, tuple[str, ...]]  # message id -> targets; () = dead-lettered
    kinds: Counter[str]
    parked: int  # messages the router dead-letters (invalid, unroutable, ...)

    @property
    def copies(self) -> int:
        """Messages the router puts on queues: a copy per target, or one dead letter."""
        return sum(len(t) for t in self.expected.values()) + self.parked

    @property
    def pairs(self) -> int:
        return sum(len(t) for t in self.expected.values())

    @property
    def mean_bytes(self) -> float:
        return sum(len(b) for b in self.bodies) / max(len(self.bodies), 1)


class Workload:
    """Batches of the realistic mix, each message new."""

    def __init__(self, loaded: Loaded, seed: int, *, dossier_v2: bool = True) -> None:
        self.gen = TrafficGenerator(seed, loaded, oversized=False, dossier_v2=dossier_v2)
        s = loaded.settings
        self.pipeline = RouterPipeline(loaded.schemas, loaded.table, s.max_message_bytes)
        self._malformed = 0

    def batch(self, n: int) -> Batch:
        bodies: list[bytes] = []
        expected: dict[str, tuple[str, ...]] = {}
        kinds: Counter[str] = Counter()
        parked = 0
        for _ in range(n):
            g = self.gen.one()
            bodies.append(g.body)
            kinds[g.kind] += 1
            decision = self.pipeline.decide(g.body)
            mid = g.message_id
            if not mid:  # not JSON: the sender gives it an id of its own
                self._malformed += 1
                mid = f"malformed-{self._malformed}"
            if isinstance(decision, Forward):
                expected[mid] = decision.targets
            else:
                expected[mid] = ()
                parked += 1
        return Batch(bodies, expected, kinds, parked)

    def weights(self, sample: int = 2000) -> dict[str, int]:
        """Copies per target in a sample of the mix (to share targets among dispatchers)."""
        counts: Counter[str] = Counter()
        for targets in self.batch(sample).expected.values():
            counts.update(targets)
        return dict(counts)
