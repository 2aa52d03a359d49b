"""Planned broker permissions: a sender writes the ingress only; the check names the rest."""

import re

from bus.broker.access import administrators, password_for
from bus.broker.permissions import (
    DEFAULT_EXCHANGE,
    internal_names,
    plan_users,
    too_wide,
)
from bus.broker.topology import Names, plan

NAMES = Names("ns1")
TOPOLOGY = plan(NAMES, {"hanoi": 5, "hcmc": 5}, 20, [10.0, 60.0])
EVERY_NAME = sorted(
    {e.name for e in TOPOLOGY.exchanges} | {q.name for q in TOPOLOGY.queues} | {DEFAULT_EXCHANGE}
)


def allowed(pattern: str) -> set[str]:
    return {n for n in EVERY_NAME if re.search(pattern, n)}


def by_role() -> dict[str, object]:
    return {u.role: u.permission for u in plan_users(NAMES, ["portal-sender"])}


def test_a_sender_may_write_the_ingress_exchange_and_nothing_else() -> None:
    sender = by_role()["sender"]
    assert allowed(sender.write) == {"ns1.ingress"}  # the exchange (and its queue: no bind
    assert allowed(sender.configure) == allowed(sender.read) == set()  # without read)


def test_router_and_dispatcher_may_declare_the_namespace_but_not_the_default_exchange() -> None:
    roles = by_role()
    inside = set(EVERY_NAME) - {DEFAULT_EXCHANGE}
    for role in ("router", "dispatcher"):
        p = roles[role]
        assert allowed(p.configure) == allowed(p.write) == allowed(p.read) == inside
    assert not re.search(roles["router"].write, "ns10.deliver")  # another namespace


def test_the_cli_writes_where_it_sends_replays_and_parks() -> None:
    cli = by_role()["cli"]
    assert allowed(cli.write) == {"ns1.ingress", "ns1.deliver", "ns1.dead"}
    assert allowed(cli.configure) == allowed(cli.read) == set()


def test_bus_users_are_named_after_the_namespace() -> None:
    assert [u.name for u in plan_users(NAMES, ["s1"])] == [
        "ns1-router", "ns1-dispatcher", "ns1-cli", "ns1-gateway", "s1",
    ]  # fmt: skip
    assert plan_users(NAMES, (), gateway_user="edge-gw")[3].name == "edge-gw"


def test_the_gateway_writes_the_ingress_only_like_a_sender() -> None:
    gateway = by_role()["gateway"]
    assert allowed(gateway.write) == {"ns1.ingress"}
    assert allowed(gateway.configure) == allowed(gateway.read) == set()
    wide = {"user": "ns1-gateway", "configure": "^$", "write": ".*", "read": "^$"}
    assert [t.user for t in too_wide(NAMES, TOPOLOGY, [wide], set())] == ["ns1-gateway"]


def test_the_check_names_other_users_that_may_write_internals_admins_as_warnings() -> None:
    permissions = [
        {"user": "guest", "configure": ".*", "write": ".*", "read": ".*"},
        {"user": "ns1-router", "configure": ".*", "write": ".*", "read": ".*"},
        {"user": "portal-sender", "configure": "^$", "write": r"^ns1\.ingress$", "read": "^$"},
        {"user": "sloppy", "configure": "^$", "write": r"^ns1\.(ingress|retry\..*)$", "read": ""},
        {"user": "default", "configure": "^$", "write": "^amq\\.default$", "read": "^$"},
        {"user": "other-ns", "configure": r"^ns2\.", "write": r"^ns2\.", "read": ".*"},
    ]
    found = too_wide(NAMES, TOPOLOGY, permissions, administrators([
        {"name": "guest", "tags": ["administrator"]}, {"name": "sloppy", "tags": "monitoring"},
    ]))  # fmt: skip
    assert [(t.user, t.administrator) for t in found] == [
        ("default", False), ("sloppy", False), ("guest", True),
    ]  # fmt: skip
    sloppy = found[1]
    assert sloppy.writes == ("ns1.retry.10s", "ns1.retry.1m") and sloppy.configures == ()
    assert "may write ns1.retry.10s, ns1.retry.1m" in sloppy.describe()
    assert found[0].writes == (DEFAULT_EXCHANGE,)  # it reaches every queue by name


def test_internal_names_leave_out_the_ingress_only() -> None:
    assert "ns1.ingress" not in internal_names(NAMES, TOPOLOGY)
    assert {"ns1.deliver", "ns1.dead", "ns1.unrouted", "ns1.retry.10s", "ns1.deliver.hanoi"} <= set(
        internal_names(NAMES, TOPOLOGY)
    )


def test_passwords_come_from_a_reference_template(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DVCBUS_BROKER_PASSWORD_BUS_ROUTER", "s3cret")
    assert password_for("env:DVCBUS_BROKER_PASSWORD_{USER}", "bus-router") == "s3cret"
    (tmp_path / "bus-cli").write_text("other\n")
    assert password_for(f"file:{tmp_path}/{{user}}", "bus-cli") == "other"
