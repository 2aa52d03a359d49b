"""The gateway's pre-encoded publish properties are byte for byte what pika would send."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from pika import BasicProperties
from pika.exceptions import ShortStringTooLong

from bus.broker import wire
from bus.broker.copy_encoding import EncodedProperties
from bus.ingress.publish_properties import GatewayProperties


def some_text(rng: random.Random, longest: int) -> str:
    alphabet = "abcXYZ09-_.:;, /\\\"'éĐđườngƯữ漢字😀\u0000\n"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, longest)))


def same_second(make: Callable[[], tuple[Any, Any]]) -> tuple[Any, Any]:
    """``make()``'s pair, made within one second (the timestamp is the second's)."""
    for _ in range(3):
        before = int(time.time())
        got, want = make()
        if int(time.time()) == before:
            return got, want
    raise AssertionError("the clock kept crossing seconds")


@pytest.mark.parametrize("seed", range(200))
def test_each_publish_encodes_exactly_as_pika_encodes_it(seed: int) -> None:
    rng = random.Random(seed)
    user = rng.choice([None, "bus-gateway", some_text(rng, 40)])
    properties = GatewayProperties(user)
    kinds = [some_text(rng, 40) for _ in range(2)]
    senders = [some_text(rng, 60) for _ in range(2)]
    for _ in range(6):  # shapes met again reuse their encoding
        mid, kind, sender = some_text(rng, 60), rng.choice(kinds), rng.choice(senders)
        got, want = same_second(
            lambda mid=mid, kind=kind, sender=sender: (
                properties(mid, kind, sender),
                wire.gateway_properties(mid, kind, sender, user),
            )
        )
        assert isinstance(got, EncodedProperties)
        assert b"".join(got.encode()) == b"".join(BasicProperties.encode(want))
        decoded = BasicProperties().decode(b"".join(got.encode()))
        assert decoded.headers == want.headers == got.headers
        assert (decoded.message_id, decoded.type, decoded.user_id) == (mid, kind, user)
        assert (got.message_id, got.type, got.user_id, got.timestamp) == (
            mid,
            kind,
            user,
            want.timestamp,
        )


def test_a_publish_pika_would_refuse_is_left_to_pika_which_refuses_it() -> None:
    properties = GatewayProperties("bus-gateway")
    for got in (
        properties("m" * 256, "dossier.submitted", "portal"),  # over a short string's limit
        properties("m-1", "t" * 256, "portal"),
        GatewayProperties("u" * 256)("m-1", "dossier.submitted", "portal"),
    ):
        assert not isinstance(got, EncodedProperties)
        with pytest.raises(ShortStringTooLong):
            got.encode()
