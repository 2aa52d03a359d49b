"""The payment platform's checksum: computed, verified in constant time, carried unchanged."""

import hashlib
import hmac
from unittest import mock

import pytest

from adapters.kinds import payment
from adapters.kinds.payment import checksum_matches, payment_checksum
from bus.demo import traffic

FIELDS = ["DVCQG-20261125-000431", "FT26329812345678", 8000, "2026-11-25T09:20:17+07:00"]


def test_checksum_is_lowercase_hex_sha256_of_the_pipe_joined_fields_then_the_secret() -> None:
    expected = hashlib.sha256(
        b"DVCQG-20261125-000431|FT26329812345678|8000|2026-11-25T09:20:17+07:00|s3cret"
    ).hexdigest()
    assert payment_checksum(FIELDS, "s3cret") == expected
    assert expected == expected.lower() and len(expected) == 64


def test_amounts_beyond_2_31_are_written_in_full() -> None:
    fields = [*FIELDS[:2], 12_000_000_000, FIELDS[3]]
    assert (
        payment_checksum(fields, "k")
        == hashlib.sha256(
            b"DVCQG-20261125-000431|FT26329812345678|12000000000|2026-11-25T09:20:17+07:00|k"
        ).hexdigest()
    )


def test_verification_accepts_the_right_checksum_and_refuses_any_change() -> None:
    good = payment_checksum(FIELDS, "s3cret")
    assert checksum_matches(FIELDS, "s3cret", good)
    assert not checksum_matches(FIELDS, "other-secret", good)
    assert not checksum_matches([*FIELDS[:2], 8001, FIELDS[3]], "s3cret", good)
    assert not checksum_matches(FIELDS, "s3cret", good.upper())
    assert not checksum_matches(FIELDS, "s3cret", "")


def test_verification_compares_in_constant_time() -> None:
    with mock.patch.object(payment.hmac, "compare_digest", wraps=hmac.compare_digest) as spy:
        checksum_matches(FIELDS, "s3cret", "0" * 64)
    spy.assert_called_once()


def test_the_demo_traffic_signs_the_way_the_router_verifies() -> None:
    from adapters.kinds.payment_signature import checksum_matches as platform_matches
    from bus import app
    from bus.settings import Settings

    gen = traffic.TrafficGenerator(7, app.load(Settings.load(None)))
    doc = gen.payment()
    p = doc["payload"]
    assert doc["version"] == 2
    assert platform_matches(p["signed"], ["demo-secret"], p["checksum"])
    old = gen.payment(version=1)["payload"]
    values = [old[f] for f in payment.DEFAULT_FIELDS]
    assert checksum_matches(values, "demo-secret", old["checksum"])


@pytest.mark.parametrize("secret", ["", "a|b", "bí mật"])
def test_any_secret_text_is_hashed_as_utf8(secret: str) -> None:
    joined = "|".join([*(str(v) for v in FIELDS), secret]).encode()
    assert payment_checksum(FIELDS, secret) == hashlib.sha256(joined).hexdigest()
