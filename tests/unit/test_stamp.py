"""The router's stamp: only the same key, id, target and body give the same stamp."""

import hashlib
import hmac
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bus.broker.stamp import StampKey, body_digest, seal, stamp, verify
from bus.broker.stamp_key import StampKeyError, load_stamp_key
from bus.contract.rejections import Reason
from bus.delivery import steps
from bus.delivery.retry import AttemptRecord
from bus.recovery.replay import destination, replay_headers
from bus.store import DeadLetter

SECRET = b"0123456789abcdef0123456789abcdef"
KEY = StampKey(SECRET)
BODY = b'{"id": "m1", "type": "dossier.submitted"}'


def test_the_stamp_is_hmac_sha256_over_the_length_prefixed_id_target_and_body_digest() -> None:
    framed = b"2:m15:hanoi" + hashlib.sha256(BODY).digest()
    assert stamp(KEY, "m1", "hanoi", BODY) == hmac.new(SECRET, framed, "sha256").hexdigest()


def test_a_long_key_is_hashed_first_as_hmac_does() -> None:
    long = os.urandom(100)
    assert StampKey(long).mac(b"x") == hmac.new(long, b"x", "sha256").hexdigest()


def test_the_right_stamp_verifies() -> None:
    assert verify(KEY, "m1", "hanoi", BODY, stamp(KEY, "m1", "hanoi", BODY))


def test_a_stamp_read_back_as_bytes_verifies() -> None:
    assert verify(KEY, "m1", "hanoi", BODY, stamp(KEY, "m1", "hanoi", BODY).encode())


@pytest.mark.parametrize(
    ("key", "message_id", "target", "body"),
    [
        (StampKey(b"another key, just as long......."), "m1", "hanoi", BODY),
        (KEY, "m2", "hanoi", BODY),
        (KEY, "m1", "hcmc", BODY),
        (KEY, "m1", "hanoi", BODY + b" "),
        (KEY, None, "hanoi", BODY),
    ],
    ids=["other key", "other id", "other target", "other body", "no id"],
)
def test_a_stamp_made_for_anything_else_does_not_verify(
    key: StampKey, message_id: str | None, target: str, body: bytes
) -> None:
    assert not verify(KEY, "m1", "hanoi", BODY, stamp(key, message_id, target, body))


def test_a_separator_in_the_id_cannot_move_characters_into_the_target() -> None:
    digest = body_digest(BODY)
    assert seal(KEY, "m1:", "hanoi", digest) != seal(KEY, "m1", ":hanoi", digest)
    assert seal(KEY, "m15:h", "anoi", digest) != seal(KEY, "m1", "hanoi", digest)


def test_garbage_does_not_verify() -> None:
    assert not verify(KEY, "m1", "hanoi", BODY, "")
    assert not verify(KEY, "m1", "hanoi", BODY, "zz" * 32)


def test_the_key_never_shows_in_its_repr() -> None:
    assert "0123" not in repr(KEY)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        StampKey(b"short")


def test_a_missing_or_wrong_stamp_is_dead_lettered_unauthorised_saying_which() -> None:
    record = AttemptRecord(1, 0.0, [])
    missing = steps.unstamped(None, record)
    wrong = steps.unstamped("ab" * 32, record)
    assert missing.reason is Reason.UNAUTHORISED and wrong.reason is Reason.UNAUTHORISED
    assert "no router stamp" in missing.detail
    assert "does not match" in wrong.detail and "ab" * 32 not in wrong.detail
    assert missing.failure is None  # no call was made: the target's counters are untouched


# --- where the key comes from ---------------------------------------------------------------


def test_the_default_key_file_is_created_once_private_and_shared(tmp_path: Path) -> None:
    first = load_stamp_key("", tmp_path)
    path = tmp_path / "var" / "stamp.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(bytes.fromhex(path.read_text().strip())) == 32
    again = load_stamp_key("", tmp_path)
    assert first.mac(b"x") == again.mac(b"x")
    assert [p.name for p in path.parent.iterdir()] == ["stamp.key"]  # no file left aside


def test_processes_racing_to_create_the_key_all_get_the_winners(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: load_stamp_key("", tmp_path).mac(b"x"), range(16)))
    assert len(set(keys)) == 1
    assert [p.name for p in (tmp_path / "var").iterdir()] == ["stamp.key"]


def test_env_and_file_references_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_STAMP_KEY", SECRET.decode())
    (tmp_path / "k").write_bytes(SECRET + b"\n")
    assert load_stamp_key("env:TEST_STAMP_KEY", tmp_path).mac(b"x") == KEY.mac(b"x")
    assert load_stamp_key(f"file:{tmp_path / 'k'}", tmp_path).mac(b"x") == KEY.mac(b"x")


def test_unusable_references_are_refused_without_showing_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_STAMP_SHORT", "tiny-secret")
    with pytest.raises(StampKeyError, match="not set"):
        load_stamp_key("env:TEST_STAMP_UNSET", tmp_path)
    with pytest.raises(StampKeyError, match="fewer than 16 bytes") as short:
        load_stamp_key("env:TEST_STAMP_SHORT", tmp_path)
    assert "tiny-secret" not in str(short.value)
    with pytest.raises(StampKeyError, match="cannot be read"):
        load_stamp_key(f"file:{tmp_path / 'absent'}", tmp_path)


# --- replays ---------------------------------------------------------------------------------


def _letter(reason: str, headers: dict[str, object]) -> DeadLetter:
    return DeadLetter(
        message_id="m1", message_type="dossier.submitted", target="hanoi", reason=reason,
        detail="", stage="dispatcher", attempts=1, history=[], headers=headers, body=BODY,
        dead_at=1.0,
    )  # fmt: skip


def test_only_a_dead_letter_with_the_routers_stamp_is_replayed_straight_to_its_target() -> None:
    genuine = {"x-dvcbus-stamp": stamp(KEY, "m1", "hanoi", BODY)}
    assert destination(_letter("rejected", genuine), KEY) == ("deliver", "hanoi", "target hanoi")
    lifted = {"x-dvcbus-stamp": stamp(KEY, "m1", "hcmc", BODY)}
    for headers in ({}, lifted, {"x-dvcbus-stamp": "ab" * 32}):
        kind, key, where = destination(_letter("rejected", headers), KEY)
        assert (kind, key) == ("ingress", "dossier.submitted")
        assert where == "ingress (no router stamp for target hanoi)"
    assert destination(_letter("unauthorised", {}), KEY)[0] == "ingress"


def test_a_replay_drops_the_old_stamp() -> None:
    assert "x-dvcbus-stamp" not in replay_headers(_letter("rejected", {"x-dvcbus-stamp": "ab"}))
