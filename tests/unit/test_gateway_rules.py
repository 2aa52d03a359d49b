"""The gateway's decisions without a broker: idempotency, tokens, rate limits, refusals,
and what GET tells a sender."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from bus.ingress.idempotency import STALE_AFTER, Verdict, checked_key, judge, valid_key
from bus.ingress.limits import SenderBucket, SenderLimits
from bus.ingress.refusals import STATUS, Refusal, Refused
from bus.ingress.senders import load_senders
from bus.ingress.status import message_status
from bus.ingress.tokens import TokenBook
from bus.observability.audit import AuditRecord
from bus.store import IdempotencyKey, KeyState, Submission


def key(state: KeyState, digest: str = "aa", updated: float = 100.0) -> IdempotencyKey:
    mid = "m-1" if state is KeyState.ANSWERED else None
    return IdempotencyKey("portal", "k", digest, state, mid, 100.0, updated)


# --- idempotency -----------------------------------------------------------------------------


def test_a_new_key_proceeds() -> None:
    assert judge(None, "aa", 100.0) is Verdict.PROCEED


def test_the_same_body_after_an_answer_gets_the_first_answer() -> None:
    assert judge(key(KeyState.ANSWERED), "aa", 200.0) is Verdict.ANSWER_AGAIN


@pytest.mark.parametrize("state", list(KeyState))
def test_another_body_under_a_key_is_a_conflict_whatever_its_state(state: KeyState) -> None:
    assert judge(key(state), "bb", 101.0) is Verdict.CONFLICT


def test_a_key_being_handled_is_in_flight_until_it_is_stale() -> None:
    assert judge(key(KeyState.IN_FLIGHT), "aa", 101.0) is Verdict.IN_FLIGHT
    assert judge(key(KeyState.IN_FLIGHT), "aa", 100.0 + STALE_AFTER + 1) is Verdict.TAKE_OVER


@pytest.mark.parametrize(
    ("value", "ok"),
    [("01a24c85-df4e-7346-858f-d160ee83d10f", True), ("a", True), ("", False),
     ("x" * 129, False), ("with space", False), ("nguyễn", False)],
)  # fmt: skip
def test_an_idempotency_key_has_a_bounded_shape(value: str, ok: bool) -> None:
    assert valid_key(value) is ok


def test_every_way_in_refuses_a_key_of_another_shape_400_naming_it_as_it_does() -> None:
    assert checked_key(None) is None
    assert checked_key("k-1") == "k-1"
    with pytest.raises(Refused) as refused:
        checked_key("with space", "IdempotencyKey")
    assert (refused.value.refusal, refused.value.status) == (Refusal.BAD_REQUEST, 400)
    assert refused.value.detail.startswith("IdempotencyKey must be 1 to 128 characters")


# --- tokens ----------------------------------------------------------------------------------


def _registry(tmp_path: Path, bearer: str) -> Path:
    path = tmp_path / "senders.yaml"
    path.write_text(
        "version: 1\nsenders:\n  hanoi:\n    agencies: [000.00.00.H26]\n"
        "    sources: [000.00.00.H26]\n    types: [dossier.status_changed]\n"
        f"    auth: {{ bearer: [{bearer}] }}\n",
        encoding="utf-8",
    )
    return path


def test_a_token_is_known_by_its_hash_or_its_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = "sha256:" + hashlib.sha256(b"tok-1").hexdigest()
    book, disabled, secrets = TokenBook.build(load_senders(_registry(tmp_path, digest)))
    assert (disabled, secrets) == ({}, [])
    assert book.sender_of("Bearer tok-1") == "hanoi"
    assert book.sender_of("bearer  tok-1 ") == "hanoi"
    for wrong in (None, "", "Bearer", "Basic tok-1", "Bearer tok-2", "tok-1"):
        assert book.sender_of(wrong) is None

    monkeypatch.setenv("HANOI_TOKEN", "tok-env")
    book, _, secrets = TokenBook.build(load_senders(_registry(tmp_path, "env:HANOI_TOKEN")))
    assert book.sender_of("Bearer tok-env") == "hanoi"
    assert secrets == ["tok-env"]  # for the log masker


def test_a_sender_whose_token_cannot_be_read_is_disabled_alone(tmp_path: Path) -> None:
    book, disabled, _ = TokenBook.build(load_senders(_registry(tmp_path, "env:DVCBUS_NOT_SET_X")))
    assert disabled == {"hanoi": "bearer token env:DVCBUS_NOT_SET_X is not set"}
    assert book.sender_of("Bearer anything") is None


# --- rate limits -----------------------------------------------------------------------------


def test_a_sender_may_burst_one_seconds_worth_then_waits() -> None:
    bucket = SenderBucket(5.0)
    assert [bucket.take() for _ in range(5)] == [0.0] * 5
    wait = bucket.take()
    assert 0 < wait <= 0.2 + 1e-6


def test_limits_are_per_sender() -> None:
    limits = SenderLimits(1.0, {"a": None, "b": 2.0})
    assert limits.admit("a") == 0.0
    assert limits.admit("a") > 0
    assert limits.admit("b") == 0.0


def test_status_reads_have_a_bucket_of_their_own_at_the_senders_rate() -> None:
    limits = SenderLimits(1.0, {"a": None})
    assert limits.admit_read("a") == 0.0
    assert limits.admit_read("a") > 0  # reads are limited like posts ...
    assert limits.admit("a") == 0.0  # ... but never use up what the sender may post
    assert limits.admit_read("unknown") == 0.0


# --- refusals --------------------------------------------------------------------------------


def test_every_refusal_has_a_status_and_401_429_503_say_what_to_do() -> None:
    assert set(STATUS) == set(Refusal)
    assert "WWW-Authenticate" in Refused(Refusal.UNAUTHENTICATED, "x").response().headers
    limited = Refused(Refusal.RATE_LIMITED, "x", retry_after=0.2).response()
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "1"
    down = Refused(Refusal.BROKER_UNAVAILABLE, "x", retry_after=5).response()
    assert (down.status, down.headers["Retry-After"]) == (503, "5")
    invalid = Refused(Refusal.INVALID, "bad", [{"path": "payload.x", "rule": "type"}]).response()
    assert invalid.content_type == "application/problem+json"
    assert orjson.loads(invalid.body)["errors"] == [{"path": "payload.x", "rule": "type"}]


# --- GET /v1/messages/{id} -------------------------------------------------------------------


def hop(stage: str, event: str, target: str | None = None, **kw: object) -> AuditRecord:
    fields = {"reason": None, "detail": None, "attempt": 1, **kw}
    return AuditRecord(at=1.0, process="p", stage=stage, event=event, message_id="m-1",
                       message_type="dossier.submitted", dossier_no=None, target=target,
                       duration=None, body_sha256=None, **fields)  # type: ignore[arg-type]  # fmt: skip


SUB = Submission("m-1", "portal", "dossier.submitted", "aa", 0.0)


def test_a_message_the_router_has_not_taken_is_accepted() -> None:
    assert message_status(SUB, [], [])["state"] == "accepted"


def test_a_message_is_followed_per_target() -> None:
    records = [
        hop("gateway", "accepted"),
        hop("router", "routed", "hanoi,justice"),
        hop("dispatcher", "retried", "hanoi", reason="HTTP 503", detail="busy", attempt=1),
        hop("dispatcher", "delivered", "justice"),
    ]
    view = message_status(SUB, records, [])
    assert view["state"] == "retrying"
    assert view["targets"]["hanoi"] == {
        "state": "retrying", "at": view["targets"]["hanoi"]["at"], "attempt": 1,
        "reason": "HTTP 503", "detail": "busy",
    }  # fmt: skip
    assert view["targets"]["justice"]["state"] == "delivered"
    done = message_status(SUB, records, [("hanoi", "delivered", 2.0, 2)])
    assert done["state"] == "delivered"  # the store is ahead of the audit trail


def test_a_delivery_ahead_of_the_routers_hop_is_not_yet_delivered() -> None:
    # the target set is the router's hop: until the audit trail has it, one delivery of two
    # must not read as "delivered"
    assert message_status(SUB, [], [("hanoi", "delivered", 2.0, 1)])["state"] == "routed"


def test_a_router_refusal_comes_from_the_dead_letters() -> None:
    dead = [(None, "router", "unauthorised", "source X may not send Y", 3.0)]
    view = message_status(SUB, [], [], dead, mask=str.upper)
    assert view["state"] == "dead_lettered"
    assert view["router"]["reason"] == "unauthorised"
    assert view["router"]["detail"] == "SOURCE X MAY NOT SEND Y"  # masked on the way out
