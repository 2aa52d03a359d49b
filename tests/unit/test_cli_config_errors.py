"""A configuration problem ends a command with one line naming the file, and exit code 2.

Each case runs the real ``dvcbus`` in a subprocess with the broker pointed at a closed port:
a command that tried to connect before noticing the problem would hang or fail otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "schemas" / "examples" / "dossier.status_changed.v1" / "valid" / "received.json"
DANANG_OPTIONS = "options: { port: MotCuaSoap }"


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVCBUS_")}
    env.update(
        DVCBUS_AMQP_URL="amqp://guest:guest@127.0.0.1:1/%2F",  # nothing listens there
        DVCBUS_MANAGEMENT_URL="",
        DVCBUS_STORE_URL=f"sqlite:///{tmp_path / 'bus.db'}",
        DVCBUS_LOG_FORMAT="json",
        TMPDIR=str(tmp_path),  # the demo's work directory
    )
    return env


def dvcbus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bus.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def routes_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "routes.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "routes.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def assert_one_line_exit_2(done: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


COMMANDS = {
    "run router": ["run", "router", "--http-port", "0"],
    "run dispatcher": ["run", "dispatcher", "--http-port", "0"],
    "routes check": ["routes", "check"],
    "send": ["send", str(EXAMPLE)],
    "demo": ["demo", "--messages", "1"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_broken_settings_file(tmp_path: Path, command: str) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('namespace = "bus"\nrouter_prefetch = = 5\n', encoding="utf-8")
    env = {**base_env(tmp_path), "DVCBUS_CONFIG": str(config)}
    assert_one_line_exit_2(dvcbus(*COMMANDS[command], env=env), str(config), "line 2")


def test_a_refused_setting_names_where_it_was_set(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "DVCBUS_ROUTER_PREFETCH": "lots"}
    assert_one_line_exit_2(dvcbus("run", "router", env=env), "DVCBUS_ROUTER_PREFETCH")


@pytest.mark.parametrize("command", ["run router", "run dispatcher", "routes check", "demo"])
def test_broken_schema_file(tmp_path: Path, command: str) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas, ignore=shutil.ignore_patterns("examples"))
    broken = schemas / "dossier.submitted.v1.json"
    broken.write_text('{"type": "object",\n  "properties": \n', encoding="utf-8")
    env = {**base_env(tmp_path), "DVCBUS_SCHEMAS_DIR": str(schemas)}
    assert_one_line_exit_2(dvcbus(*COMMANDS[command], env=env), str(broken), "line 3")


@pytest.mark.parametrize("command", ["run router", "run dispatcher", "demo"])
def test_broken_routes_file(tmp_path: Path, command: str) -> None:
    routes = routes_with(tmp_path, "targets:", "targets: [")
    env = {**base_env(tmp_path), "DVCBUS_ROUTES_FILE": str(routes)}
    assert_one_line_exit_2(dvcbus(*COMMANDS[command], env=env), f"{routes}:", "not valid YAML")


@pytest.mark.parametrize("command", ["run router", "run dispatcher", "demo"])
def test_unknown_adapter_kind(tmp_path: Path, command: str) -> None:
    routes = routes_with(tmp_path, "adapter: onestop-soap", "adapter: no-such-kind")
    env = {**base_env(tmp_path), "DVCBUS_ROUTES_FILE": str(routes)}
    written = routes.read_text(encoding="utf-8").splitlines()
    at = next(n for n, text in enumerate(written, start=1) if "no-such-kind" in text)
    line = assert_one_line_exit_2(dvcbus(*COMMANDS[command], env=env), f"{routes}:{at}:")
    assert "unknown adapter kind 'no-such-kind'" in line


@pytest.mark.parametrize("command", ["run dispatcher", "demo"])
def test_missing_wsdl(tmp_path: Path, command: str) -> None:
    """A process that builds adapters reads their options as `routes check` does."""
    wsdl = tmp_path / "missing.wsdl"
    routes = routes_with(tmp_path, DANANG_OPTIONS, f"options: {{ port: MotCuaSoap, wsdl: {wsdl} }}")
    env = {**base_env(tmp_path), "DVCBUS_ROUTES_FILE": str(routes)}
    written = routes.read_text(encoding="utf-8").splitlines()
    at = next(n for n, text in enumerate(written, start=1) if "missing.wsdl" in text)
    line = assert_one_line_exit_2(dvcbus(*COMMANDS[command], env=env), f"{routes}:{at}:")
    assert f"target 'danang': option 'wsdl': {wsdl} is neither a file nor in config/wsdl/" in line


def test_the_router_builds_no_adapter_and_runs_without_the_wsdl(tmp_path: Path) -> None:
    wsdl = tmp_path / "missing.wsdl"
    routes = routes_with(tmp_path, DANANG_OPTIONS, f"options: {{ port: MotCuaSoap, wsdl: {wsdl} }}")
    env = {**base_env(tmp_path), "DVCBUS_ROUTES_FILE": str(routes), "DVCBUS_AUDIT_WRITER": "thread"}
    lines = first_lines_until_connecting(["run", "router", "--http-port", "0"], env)
    assert any("broker.unavailable" in ln for ln in lines), "".join(lines)
    assert not any("wsdl" in ln.lower() for ln in lines), "".join(lines)


def test_a_target_whose_adapter_cannot_be_built_here_is_disabled_alone(tmp_path: Path) -> None:
    """A credential this host lacks: the dispatcher serves the other targets
    (docs/operations.md, DvcbusTargetNotServed)."""
    env = {**base_env(tmp_path), "DVCBUS_AUDIT_WRITER": "thread"}  # no DVCBUS_DANANG_* set
    lines = first_lines_until_connecting(["run", "dispatcher", "--http-port", "0"], env)
    disabled = [ln for ln in lines if "dispatcher.target_disabled" in ln and "'danang'" in ln]
    assert len(disabled) == 1, "".join(lines)
    assert "DVCBUS_DANANG_USER" in disabled[0]
    assert any("broker.unavailable" in ln for ln in lines), "".join(lines)
    assert not any("Traceback" in ln for ln in lines)


def first_lines_until_connecting(args: list[str], env: dict[str, str]) -> list[str]:
    """The process's log lines until it tries the (closed) broker; then it is stopped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bus.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "broker.unavailable" in line or not line:
                break  # past building the targets: it is trying to connect
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return lines
