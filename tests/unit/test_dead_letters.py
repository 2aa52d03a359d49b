"""Dead-letter headers: our reasons round-trip; broker-made dead letters get a reason too."""

from pika import BasicProperties

from bus.broker.wire import MAX_DETAIL, Header, dead_letter_properties
from bus.contract.rejections import Reason
from bus.recovery import dead_letters


def test_reason_and_detail_round_trip() -> None:
    original = BasicProperties(message_id="m1", type="dossier.submitted", headers={"x-trace": "t"})
    props = dead_letter_properties(
        Reason.INVALID,
        "payload.procedure_code: pattern ^[1-3]\\.\\d{6}$",
        stage="router",
        original=original,
    )
    info = dead_letters.read(props)
    assert info.reason == "invalid"
    assert info.detail.startswith("payload.procedure_code: pattern")
    assert (info.stage, info.message_id, info.message_type) == ("router", "m1", "dossier.submitted")
    assert props.headers["x-trace"] == "t"
    assert props.delivery_mode == 2


def test_overlong_detail_is_cut() -> None:
    props = dead_letter_properties(
        Reason.REJECTED, "x" * 10_000, stage="dispatcher", target="hanoi"
    )
    assert len(props.headers[Header.DETAIL]) == MAX_DETAIL
    assert dead_letters.read(props).target == "hanoi"


def test_delivery_limit_dead_letter_reads_as_poison() -> None:
    props = BasicProperties(
        message_id="m2",
        headers={
            Header.TARGET: "hanoi",
            "x-first-death-reason": "delivery_limit",
            "x-first-death-queue": "bus.deliver.hanoi",
        },
    )
    info = dead_letters.read(props)
    assert info.reason == Reason.POISON.value
    assert "bus.deliver.hanoi" in info.detail


def test_copy_parked_by_the_alternate_exchange_reads_as_no_delivery_queue() -> None:
    props = BasicProperties(message_id="m3", headers={Header.TARGET: "gone"})
    info = dead_letters.read(props)
    assert info.reason == Reason.NO_DELIVERY_QUEUE.value
    assert "gone" in info.detail
