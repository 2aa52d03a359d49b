"""The wire format: builders encode exactly as the hand-built properties did; one x-death rule."""

import time

import pytest
from pika import BasicProperties

from bus.broker import wire
from bus.broker.wire import Header
from bus.contract.rejections import Reason
from bus.delivery.retry import AttemptRecord
from bus.recovery import dead_letters
from bus.recovery.dead_letter_recorder import to_dead_letter

NOW = 1_765_000_000.25


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire.time, "time", lambda: NOW)


def encoded(props: BasicProperties) -> bytes:
    return b"".join(props.encode())


def incoming() -> BasicProperties:
    """A delivery as the dispatcher receives it: a routed copy back from a delay tier."""
    return BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id="m1",
        type="dossier.submitted",
        timestamp=1_700_000_000,
        headers={
            "x-dvcbus-routes": "hcmc-submissions",
            "x-dvcbus-target": "hcmc",
            "x-death": [{"queue": "bus.retry.10s", "reason": "expired", "count": 1}],
        },
    )


def test_routed_copy_encodes_as_the_router_built_it(frozen_clock: None) -> None:
    shared = wire.route_headers(("r1", "r2"), ("79 -> 79001",))
    new = wire.copy_properties("m1", "dossier.submitted", shared, "hcmc", "ab12")
    old = BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id="m1",
        type="dossier.submitted",
        timestamp=int(NOW),
        headers={
            "x-dvcbus-routes": "r1,r2",
            "x-dvcbus-units": "79 -> 79001",
            "x-dvcbus-target": "hcmc",
            "x-dvcbus-stamp": "ab12",
        },
    )
    assert encoded(new) == encoded(old)
    assert "x-dvcbus-target" not in shared  # one dict per copy, the shared one untouched


def test_a_retry_copy_keeps_the_routers_stamp() -> None:
    props = incoming()
    props.headers["x-dvcbus-stamp"] = "ab12"
    record = AttemptRecord.from_headers(props.headers, NOW).failed(NOW, "HTTP 503", "hcmc")
    retried = wire.retry_properties(props, record.headers(props.headers))
    assert wire.stamp_of(retried.headers) == "ab12"  # back from the tier, it still verifies


def test_copy_without_unit_notes_has_no_units_header() -> None:
    assert wire.route_headers(("r1",), ()) == {"x-dvcbus-routes": "r1"}


def test_retry_copy_encodes_as_the_dispatcher_built_it() -> None:
    props, headers = incoming(), {"x-dvcbus-attempt": 2}
    old = BasicProperties(
        content_type=props.content_type,
        delivery_mode=2,
        message_id=props.message_id,
        type=props.type,
        timestamp=props.timestamp,
        headers=headers,
    )
    assert encoded(wire.retry_properties(props, headers)) == encoded(old)


def test_dispatcher_dead_letter_encodes_as_before() -> None:
    props = incoming()
    new = wire.dead_letter_properties(
        Reason.REJECTED,
        "HTTP 422",
        stage="dispatcher",
        original=props,
        headers={"x-dvcbus-attempt": 2},
        target="hcmc",
    )
    # Before: an intermediate BasicProperties carried the headers into dead_letters.properties.
    headers = {
        "x-dvcbus-attempt": 2,
        "x-dvcbus-reason": "rejected",
        "x-dvcbus-detail": "HTTP 422",
        "x-dvcbus-stage": "dispatcher",
        "x-dvcbus-dead-at": new.headers["x-dvcbus-dead-at"],
        "x-dvcbus-target": "hcmc",
    }
    old = BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id="m1",
        type="dossier.submitted",
        timestamp=1_700_000_000,
        headers=headers,
    )
    assert encoded(new) == encoded(old)


def test_ingress_and_replay_encode_as_before(frozen_clock: None) -> None:
    old_ingress = BasicProperties(content_type="application/json", delivery_mode=2, message_id="m")
    assert encoded(wire.ingress_properties("m")) == encoded(old_ingress)
    headers = {"x-trace": "t", "x-dvcbus-replay-of": 7}
    old_replay = BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id="m",
        type="dossier.status",
        timestamp=int(NOW),
        headers=headers,
    )
    new_replay = wire.replay_properties("m", "dossier.status", headers)
    assert encoded(new_replay) == encoded(old_replay)


def test_a_header_member_as_key_encodes_like_its_name() -> None:
    by_member = BasicProperties(headers={Header.TARGET: "hcmc", Header.ATTEMPT: 3})
    by_name = BasicProperties(headers={"x-dvcbus-target": "hcmc", "x-dvcbus-attempt": 3})
    assert encoded(by_member) == encoded(by_name)


def test_every_bus_header_is_named_x_dvcbus() -> None:
    assert all(h.value.startswith("x-dvcbus-") for h in Header)
    assert len({h.value for h in Header}) == len(Header)


def test_replay_of_reads_the_dead_letter_id() -> None:
    assert wire.replay_of({"x-dvcbus-replay-of": 12}) == 12
    assert wire.replay_of(None) is None
    assert wire.replay_of({}) is None


# --- x-death: the last death is the head of the list -----------------------------------


def test_last_death_is_the_head_of_x_death() -> None:
    headers = {
        "x-death": [
            {"queue": b"bus.deliver.hcmc", "reason": b"delivery_limit", "count": 1},
            {"queue": "bus.retry.10s", "reason": "expired", "count": 3},
        ],
        "x-first-death-queue": "bus.retry.10s",
        "x-first-death-reason": "expired",
    }
    assert wire.last_death(headers) == wire.Death("bus.deliver.hcmc", "delivery_limit")


def test_without_x_death_the_last_death_headers_come_before_the_first() -> None:
    headers = {
        "x-first-death-queue": "bus.retry.10s",
        "x-first-death-reason": "expired",
        "x-last-death-queue": "bus.deliver.hcmc",
        "x-last-death-reason": "delivery_limit",
    }
    assert wire.last_death(headers) == wire.Death("bus.deliver.hcmc", "delivery_limit")
    only_first = {"x-first-death-queue": "q", "x-first-death-reason": "delivery_limit"}
    assert wire.last_death(only_first) == wire.Death("q", "delivery_limit")


def test_no_death_recorded_is_none() -> None:
    assert wire.last_death(None) is None
    assert wire.last_death({"x-death": []}) is None
    assert wire.last_death({"x-death": "garbage"}) is None


def test_a_poison_dead_letter_counts_the_deliveries_on_its_last_queue() -> None:
    props = BasicProperties(
        message_id="m1",
        headers={
            "x-dvcbus-target": "hcmc",
            "x-death": [
                {"queue": "bus.deliver.hcmc", "reason": "delivery_limit", "count": 1},
                {"queue": "bus.retry.10s", "reason": "expired", "count": 1},
            ],
        },
    )
    letter = to_dead_letter(props, b"{}", time.time(), {"bus.deliver.hcmc": 5})
    assert letter.reason == Reason.POISON.value
    assert letter.attempts == 6
    assert "delivery limit 5 on bus.deliver.hcmc" in letter.detail


def test_an_older_delivery_limit_death_is_not_why_it_is_here() -> None:
    """The rules disagreed here: the recorder scanned x-death for any delivery_limit entry.

    The reader took the head (expired in a delay tier, then no queue for the target) while
    the recorder would have counted deliveries on a queue of an earlier journey. Both now
    take the head: not poison, no delivery count.
    """
    headers = {
        "x-dvcbus-target": "hcmc",
        "x-dvcbus-reason": "poison",
        "x-dvcbus-detail": "as recorded",
        "x-death": [
            {"queue": "bus.retry.10s", "reason": "expired", "count": 1},
            {"queue": "bus.deliver.hcmc", "reason": "delivery_limit", "count": 1},
        ],
    }
    letter = to_dead_letter(
        BasicProperties(message_id="m1", headers=headers), b"{}", 0.0, {"bus.deliver.hcmc": 5}
    )
    assert letter.detail == "as recorded"
    assert letter.attempts == 0
    without_reason = {k: v for k, v in headers.items() if k != Header.REASON}
    info = dead_letters.read(BasicProperties(headers=without_reason))
    assert info.reason == Reason.NO_DELIVERY_QUEUE.value
