"""The router's pre-encoded copy properties are byte for byte what pika would send."""

from __future__ import annotations

import random

import pytest
from pika import BasicProperties
from pika.exceptions import ShortStringTooLong

from bus.broker import wire
from bus.broker.copy_encoding import CopyEncoder, EncodedProperties
from bus.broker.stamp import StampKey, seal

KEY = StampKey(b"k" * 32)


def pika_bytes(props: BasicProperties) -> bytes:
    return b"".join(BasicProperties.encode(props))


def reference(mid: str, kind: str, shared: dict[str, str], target: str, stamp: str, ts: int):
    return BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id=mid,
        type=kind,
        timestamp=ts,
        headers={**shared, "x-dvcbus-target": target, "x-dvcbus-stamp": stamp},
    )


def some_text(rng: random.Random, longest: int) -> str:
    alphabet = "abcXYZ09-_.:;, /\\\"'éĐđườngƯữ漢字😀\u0000\n"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))


@pytest.mark.parametrize("seed", range(200))
def test_each_copy_encodes_exactly_as_pika_encodes_it(seed: int) -> None:
    rng = random.Random(seed)
    mid, kind = some_text(rng, 60) or "m", some_text(rng, 40) or "t"
    routes = [some_text(rng, 30) for _ in range(rng.randint(1, 4))]
    notes = [some_text(rng, 200) for _ in range(rng.randint(0, 2))]
    shared = wire.route_headers(routes, notes)
    ts = rng.randint(0, 2**40)
    encoder = CopyEncoder(mid, kind, shared, ts)
    for target in (some_text(rng, 80) or "x" for _ in range(rng.randint(1, 5))):
        stamp = seal(KEY, mid, target, bytes(32))
        props = encoder.copy(target, stamp)
        assert isinstance(props, EncodedProperties)
        want = reference(mid, kind, shared, target, stamp, ts)
        assert b"".join(props.encode()) == pika_bytes(want)
        decoded = BasicProperties().decode(b"".join(props.encode()))
        assert decoded.headers == want.headers
        assert (decoded.message_id, decoded.type, decoded.timestamp) == (mid, kind, ts)
        assert (props.message_id, props.type, props.headers) == (mid, kind, want.headers)
        assert props.priority is None and props.content_encoding is None


def test_a_copy_pika_would_refuse_is_left_to_pika_which_refuses_it() -> None:
    too_long = "m" * 256  # over AMQP's short-string limit
    encoder = CopyEncoder(too_long, "dossier.submitted", {"x-dvcbus-routes": "r"}, 1)
    props = encoder.copy("hcmc", seal(KEY, too_long, "hcmc", bytes(32)))
    assert not isinstance(props, EncodedProperties)
    with pytest.raises(ShortStringTooLong):
        props.encode()


def test_a_copy_without_an_id_falls_back_and_encodes_the_same() -> None:
    encoder = CopyEncoder(None, "dossier.submitted", {"x-dvcbus-routes": "r"}, 7)
    stamp = seal(KEY, None, "hcmc", bytes(32))
    props = encoder.copy("hcmc", stamp)
    assert not isinstance(props, EncodedProperties)
    assert props.message_id is None and props.timestamp == 7
    want = {"x-dvcbus-routes": "r", "x-dvcbus-target": "hcmc", "x-dvcbus-stamp": stamp}
    assert props.headers == want
