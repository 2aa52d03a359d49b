"""The adapter deadline: one formula, used by the dispatcher's lanes and the conformance kit."""

from __future__ import annotations

from pathlib import Path

from adapters.base import TargetSpec
from bus.app import build_lane
from bus.delivery.deadline import adapter_deadline
from bus.routes import load_routes

ROUTES = """\
version: 1
sources:
  dossier.submitted: ["000.00.00.G22/portal"]
targets:
  hanoi:
    agency: 000.00.00.H26
    adapter: rest
    endpoint: "http://127.0.0.1:18101/"
    timeouts: { connect: 2s, read: 15s }
routes:
  - name: hanoi
    match: { type: dossier.submitted }
    to: hanoi
"""


def _spec(connect: float, read: float) -> TargetSpec:
    return TargetSpec("hanoi", "000.00.00.H26", "rest", "http://x", connect, read, 1)


def test_the_deadline_leaves_room_for_two_calls_within_their_timeouts_plus_slack() -> None:
    assert adapter_deadline(_spec(2.0, 15.0)) == 2 * (2.0 + 15.0) + 5.0
    assert adapter_deadline(_spec(1.0, 1.0)) == 9.0


def test_a_longer_read_timeout_moves_the_deadline_by_twice_as_much() -> None:
    assert adapter_deadline(_spec(2.0, 25.0)) - adapter_deadline(_spec(2.0, 15.0)) == 20.0


def test_a_dispatcher_lane_abandons_calls_at_the_adapter_deadline(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES, encoding="utf-8")
    target = load_routes(path).targets["hanoi"]
    lane = build_lane("hanoi", target)
    assert lane.deadline == adapter_deadline(target.spec()) == 39.0
