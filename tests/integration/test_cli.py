"""The `dvcbus` command against the real broker: send, and the demo itself."""

import os
import subprocess
import sys

from tests.integration.harness import ROOT, bus_env, collect_dead, wait_until

EXAMPLE = ROOT / "schemas" / "examples" / "dossier.status_changed.v1" / "valid" / "received.json"


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
    done = dvcbus("send", str(EXAMPLE), env=bus.env())
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
