"""The `dvcbus` command against the real broker: send, and the demo itself."""

import json
import os
import re
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import orjson

from bus.broker.management import ManagementApi
from bus.routes import load_routes
from bus.settings import Settings
from tests.integration.harness import (
    ROOT,
    bus_env,
    collect_dead,
    example_routes_on_free_ports,
    wait_until,
)

EXAMPLE = ROOT / "schemas" / "examples" / "dossier.status_changed.v1" / "valid" / "received.json"
# `dvcbus send` as the test bus's catch-all sender, on its own broker user (a plain `send`
# publishes as the operators' user, whose messages name no sender: the router refuses them)
AS_TESTS = ("--as", "tests")


def dvcbus(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bus.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_send_reports_the_message_id_once_the_broker_confirmed(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    done = dvcbus("send", *AS_TESTS, str(EXAMPLE), env=bus.env())
    assert done.returncode == 0, done.stderr
    assert "sent 01" in done.stdout
    assert wait_until(lambda: bus.standins.received("portal"), 20)


def test_send_without_a_bus_topology_fails_instead_of_losing_the_message(tmp_path) -> None:
    env = bus_env("nobus" + str(os.getpid()), ROOT / "routes.yaml", f"sqlite:///{tmp_path}/s.db")
    done = dvcbus("send", str(EXAMPLE), env=env)
    assert done.returncode == 1
    assert "NOT sent" in done.stderr
    assert "start the bus once" in done.stderr


def test_send_passes_broken_files_to_the_router_which_dead_letters_them(bus, tmp_path) -> None:
    bus.start_router()
    bus.start_dispatcher()
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"id": "x", "type": "dossier.submitted"')
    done = dvcbus("send", str(broken), env=bus.env())
    assert done.returncode == 0, done.stderr
    (dead,) = collect_dead(bus.store, 1)
    assert dead.reason == "malformed"


def test_demo_runs_unattended_and_accounts_for_every_message() -> None:
    env = dict(os.environ)
    done = dvcbus("demo", "--messages", "600", env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for heading in ("Published", "Delivered per target", "Dead-lettered per reason", "Figures"):
        assert heading in out
    for reason in ("invalid", "unroutable", "unauthorised"):
        assert reason in out
    assert "every message was delivered to all its targets" in out
    assert "0 missing" in out


def test_demo_sends_through_the_gateway_as_its_senders_and_counts_what_it_refused() -> None:
    done = dvcbus("demo", "--messages", "300", env=dict(os.environ), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    ways = re.search(r"│ all\s+│\s*(\d+)\s*│\s*(\d+)\s*│\s*(\d+)\s*│\s*(\d+)\s*│", out)
    assert ways is not None, out
    assert all(int(n) > 0 for n in ways.groups()), ways.group(0)  # HTTP, SOAP, AMQP, callback
    # Each refusal as the gateway answered it, and as its own metric counted it.
    for reason in ("unauthenticated", "source_not_allowed", "type_not_allowed", "invalid"):
        row = re.search(rf"refused: {reason}\s*│\s*(\d+)\s*│\s*(\d+)", out)
        assert row is not None, reason
        assert int(row.group(1)) > 0 and row.group(1) == row.group(2), row.group(0)
    # Over AMQP, a province's system writing another's source meets the router instead.
    assert re.search(r"unauthorised\s*│\s*\d+\s*│ sender agency-h\d\d may not claim", out), out
    assert "via SOAP: p50" in out and "0 missing" in out
    # Its broker users (router, dispatcher, gateway, cli, the AMQP senders') are gone after.
    namespace = re.search(r"namespace (demo\w+)", out)
    assert namespace is not None
    users = [u["name"] for u in ManagementApi(Settings().management_url).get("users")]
    assert [u for u in users if u.startswith(namespace.group(1) + "-")] == []


def test_standin_logs_json_lines_when_asked(tmp_path) -> None:
    """`dvcbus standin` follows DVCBUS_LOG_FORMAT like every other command."""
    routes, _ = example_routes_on_free_ports(tmp_path / "routes.yaml")
    env = {**os.environ, "DVCBUS_ROUTES_FILE": str(routes), "DVCBUS_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bus.cli", "standin"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    portal = next(t for t in load_routes(routes).targets.values() if t.name == "portal")
    try:
        assert wait_until(lambda: port_open(urlsplit(portal.endpoint).port), 30)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    listening = [line for line in lines if line["event"] == "standin.listening"]
    assert listening, stderr
    assert all(line["process"] == "standin" for line in listening)


def port_open(port: int | None) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port or 0)) == 0


DOSSIER = (
    ROOT / "schemas" / "examples" / "dossier.submitted.v1" / "valid" / "citizen-hanoi-online.json"
)


def test_send_check_sends_what_the_router_would_route(bus) -> None:
    bus.start_router()
    bus.start_dispatcher()
    done = dvcbus("send", *AS_TESTS, "--check", str(EXAMPLE), env=bus.env())
    assert done.returncode == 0, done.stderr
    assert "checked 1 message(s)" in done.stdout and "sent 01" in done.stdout
    assert wait_until(lambda: bus.standins.received("portal"), 20)


def test_send_refuses_and_sends_nothing_when_any_file_is_empty_or_refused(bus, tmp_path) -> None:
    bus.start_router()
    bus.start_dispatcher()
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    doc = orjson.loads(DOSSIER.read_bytes())
    doc["payload"]["procedure_code"] = "1.01288"
    invalid = tmp_path / "invalid.json"
    invalid.write_bytes(orjson.dumps(doc))

    no_empty = dvcbus("send", *AS_TESTS, str(DOSSIER), str(empty), env=bus.env())
    assert no_empty.returncode == 1
    assert f"{empty}: empty file, not a message" in no_empty.stderr
    checked = dvcbus("send", *AS_TESTS, "--check", str(DOSSIER), str(invalid), env=bus.env())
    assert checked.returncode == 1
    pattern = "^[1-3]\\.[0-9]{6}$"
    refusal = f"would be refused: {invalid}: invalid: payload.procedure_code: pattern {pattern}"
    assert refusal in checked.stderr.splitlines()
    assert "sent" not in no_empty.stdout + checked.stdout

    marker = dvcbus("send", *AS_TESTS, str(EXAMPLE), env=bus.env())  # behind anything sent before
    assert marker.returncode == 0, marker.stderr
    assert wait_until(lambda: bus.standins.received("portal"), 20)
    assert [r.target for r in bus.standins.received()] == ["portal"]
    assert collect_dead(bus.store, 1, timeout=1) == []


def test_send_splits_an_array_only_when_told_to(bus, tmp_path) -> None:
    bus.start_router()
    bus.start_dispatcher()
    both = tmp_path / "both.json"
    both.write_bytes(b"[" + EXAMPLE.read_bytes() + b"," + DOSSIER.read_bytes() + b"]")

    refused = dvcbus("send", *AS_TESTS, str(both), env=bus.env())
    assert refused.returncode == 1
    assert "a JSON array of 2 element(s), not a message: pass --each" in refused.stderr

    done = dvcbus("send", *AS_TESTS, "--each", str(both), env=bus.env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("sent ") == 2
    assert wait_until(
        lambda: {r.target for r in bus.standins.received()} >= {"portal", "hanoi"}, 20
    )
    assert sorted(r.target for r in bus.standins.received()) == ["hanoi", "portal"]
