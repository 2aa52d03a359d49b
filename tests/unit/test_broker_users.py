"""`dvcbus broker users sync`'s plan from senders.yaml, and how it is applied: one user per
AMQP sender, ingress only, its own types only, never a tag."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bus.broker.access import apply
from bus.broker.topology import Names
from bus.ingress.broker_users import UserClash, plan_registry_users
from bus.ingress.senders import SendersConfig, load_senders
from tests.unit.test_ingress_identity import SENDERS

NAMES = Names("ns1")


def registry(tmp_path: Path, text: str = SENDERS) -> SendersConfig:
    path = tmp_path / "senders.yaml"
    path.write_text(text, encoding="utf-8")
    return load_senders(path)


def test_the_plan_is_the_bus_users_then_one_per_amqp_sender(tmp_path: Path) -> None:
    users = plan_registry_users(NAMES, registry(tmp_path), "ns1-gateway")
    assert [(u.name, u.role) for u in users] == [
        ("ns1-router", "router"),
        ("ns1-dispatcher", "dispatcher"),
        ("ns1-cli", "cli"),
        ("ns1-gateway", "gateway"),
        ("sender-portal", "sender portal"),
        ("sender-hanoi", "sender hanoi-igate"),
    ]  # hcmc has no amqp_user: it comes through the gateway


def test_a_senders_user_may_publish_its_own_types_to_the_ingress_only(tmp_path: Path) -> None:
    hanoi = plan_registry_users(NAMES, registry(tmp_path), "ns1-gateway")[-1]
    assert hanoi.permission.write == r"^(ns1\.ingress)$"
    assert hanoi.permission.configure == hanoi.permission.read == "^$"
    (topic,) = hanoi.topics
    assert topic.exchange == "ns1.ingress" and topic.read == "^$"
    assert re.search(topic.write, "dossier.status_changed")
    for key in ("dossier.submitted", "dossier.status_changedX", "payment.confirmed", "#"):
        assert not re.search(topic.write, key), key


def test_an_amqp_user_that_is_a_bus_user_is_refused(tmp_path: Path) -> None:
    clash = SENDERS.replace("amqp_user: sender-hanoi", "amqp_user: ns1-gateway")
    with pytest.raises(UserClash, match="'hanoi-igate': amqp_user 'ns1-gateway' is the bus's"):
        plan_registry_users(NAMES, registry(tmp_path, clash), "ns1-gateway")


class FakeApi:
    """The management API as a list of calls (unit test: no broker)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def get(self, path: str) -> Any:
        assert path == "users"
        return [{"name": "sender-hanoi", "tags": ["impersonator"]}]

    def put(self, path: str, body: dict[str, Any]) -> None:
        self.calls.append(("PUT", path, body))

    def delete(self, path: str) -> None:
        self.calls.append(("DELETE", path, None))


def test_apply_sets_no_tags_and_exactly_the_planned_topic_permissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = plan_registry_users(NAMES, registry(tmp_path), "ns1-gateway")
    for user in users:
        monkeypatch.setenv(f"PW_{user.name.upper().replace('-', '_')}", f"pw-{user.name}")
    api = FakeApi()
    done = apply(api, "/", users, "env:PW_{USER}")  # type: ignore[arg-type]
    puts = {path: body for verb, path, body in api.calls if verb == "PUT"}
    for user in users:
        assert puts[f"users/{user.name}"]["tags"] == ""  # an impersonator tag is taken away
    assert puts["topic-permissions/%2F/sender-hanoi"]["write"] == r"^(dossier\.status_changed)$"
    deleted = {path for verb, path, _ in api.calls if verb == "DELETE"}
    assert "topic-permissions/%2F/ns1-router" in deleted  # none planned: none left behind
    assert "topic-permissions/%2F/sender-hanoi" not in deleted
    hanoi = done[-1]
    assert not hanoi.created and "routing keys on ns1.ingress" in hanoi.describe("/")
    assert "pw-" not in " ".join(d.describe("/") for d in done)
