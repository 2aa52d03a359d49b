"""What every benchmark phase shares: namespaces, processes, /proc readings, queue polling.

Nothing here is mocked: processes are real ``dvcbus`` (or Celery, or bare-loop) subprocesses,
agencies are the stand-in HTTP servers in a process of their own, the broker is the local
RabbitMQ. Every phase works in a namespace of its own and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika

from bus.broker.connection import ChannelOps, connect
from bus.broker.topology import Topology, declare

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0.0 once it is gone)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = data[data.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in kB."""
    found: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    except OSError:
        pass
    return found


def children(pid: int) -> list[int]:
    """Direct child processes (e.g. Celery's prefork pool)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def helper_pids(pids: dict[str, int]) -> dict[str, int]:
    """The child processes of the bus's processes (the audit writer), named after their
    parent, so that their CPU and memory count in the run's tables rather than as "other"."""
    found: dict[str, int] = {}
    for name, pid in pids.items():
        for child in children(pid):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            writer = b"bus.observability.audit_writer" in cmdline
            what = "audit writer" if writer else f"child {child}"
            found[f"{name} · {what}"] = child
    return found


def broker_pid() -> int | None:
    """The local RabbitMQ's Erlang VM (beam.smp), to measure the broker's CPU too."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "beam.smp":
                    return int(entry.name)
    return None


@dataclass
class CpuMark:
    """CPU seconds of a set of processes at one moment."""

    at: float
    cpu: dict[str, float]

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuMark:
        marks = {name: cpu_seconds(pid) for name, pid in pids.items()}
        marks["benchmark (publisher, poller)"] = time.process_time()
        marks[MACHINE] = machine_busy_seconds()
        return cls(time.monotonic(), marks)


MACHINE = "whole machine"
OTHERS = "other processes (not part of the run)"


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: everything but idle, iowait)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(x) for x in fields]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    return busy / CLK_TCK


def background_cores(seconds: float = 3.0) -> float:
    """Cores busy over a few seconds before the run, not counting the broker: other
    sessions' work on the same machine, which the run's figures cannot be separated from."""
    broker = broker_pid()
    start_machine, start_broker = machine_busy_seconds(), cpu_seconds(broker) if broker else 0.0
    time.sleep(seconds)
    used = machine_busy_seconds() - start_machine
    if broker:
        used -= cpu_seconds(broker) - start_broker
    return round(max(used, 0.0) / seconds, 2)


def cpu_per_1k(before: CpuMark, after: CpuMark, messages: int) -> dict[str, dict[str, float]]:
    """CPU seconds per 1,000 messages and average cores busy, per process, between two marks."""
    wall = max(after.at - before.at, 1e-9)
    used_by = {name: end - before.cpu.get(name, end) for name, end in after.cpu.items()}
    machine = used_by.pop(MACHINE, None)
    if machine is not None:
        # Other sessions' tests, builds ... on the same 2 cores: the figures are only clean
        # when this stays near zero.
        used_by[OTHERS] = max(machine - sum(used_by.values()), 0.0)
    out: dict[str, dict[str, float]] = {}
    for name, used in used_by.items():
        out[name] = {
            "cpu_s": round(used, 3),
            "cpu_s_per_1k_msgs": round(used / max(messages, 1) * 1000, 4),
            "cores_busy": round(used / wall, 3),
        }
    return out


# --------------------------------------------------------------------------- broker


def blocking(url: str) -> tuple[pika.BlockingConnection, Any]:
    """A blocking connection to ``url``, or to one of a cluster's nodes (comma-separated)."""
    from bus.broker.nodes import blocking_connection

    conn = blocking_connection(url, "dvcbus-bench")
    return conn, conn.channel()


def broker_version(url: str) -> str:
    conn, _ = blocking(url)
    try:
        props = conn._impl.server_properties
        version = props.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        conn.close()


def declare_topology(url: str, topology: Topology) -> None:
    """Declare a topology exactly as the bus does (``bus.topology.declare``)."""

    async def go() -> None:
        conn, _closed = await connect(url, name="dvcbus-bench-setup")
        try:
            await declare(await ChannelOps.open(conn), topology)
        finally:
            conn.close()

    asyncio.run(go())


class QueueWatch:
    """Reads queue depths and consumer counts on one blocking connection (passive declares)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn, self.ch = blocking(url)

    def _declare(self, queue: str) -> Any:
        try:
            return self.ch.queue_declare(queue, passive=True).method
        except pika.exceptions.ChannelClosedByBroker:
            self.ch = self.conn.channel()
            return None

    def depth(self, queue: str) -> int:
        method = self._declare(queue)
        return method.message_count if method else 0

    def consumers(self, queue: str) -> int:
        method = self._declare(queue)
        return method.consumer_count if method else 0

    def total(self, queues: Iterable[str]) -> int:
        return sum(self.depth(q) for q in queues)

    def purge(self, queue: str) -> int:
        return self.ch.queue_purge(queue).method.message_count

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.02, what: str = ""
) -> float:
    """Poll until ``predicate()``; return the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what or predicate}")
        time.sleep(interval)


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """A subprocess of the benchmark with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode}; see {self.log_path}"
            )

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it does not stop in time."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(10)


@dataclass
class Procs:
    """Every subprocess a phase started; all are stopped when the phase ends, even on error."""

    logdir: Path
    env: dict[str, str]
    started: list[Proc] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        self.logdir.mkdir(parents=True, exist_ok=True)
        log_path = self.logdir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                argv,
                env=env or self.env,
                cwd=cwd or ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc = Proc(name, popen, log_path)
        self.started.append(proc)
        return proc

    def bus(self, name: str, *args: str) -> Proc:
        """A ``dvcbus`` subprocess; its HTTP endpoints (metrics, health), if the bus has them,
        stay on but on free ports, so several processes and other runs never collide."""
        from bus.settings import Settings

        env = dict(self.env)
        for key in Settings.model_fields:
            if key.endswith("_http_port"):
                env[f"DVCBUS_{key.upper()}"] = str(free_port())
        return self.start(name, [sys.executable, "-m", "bus.cli", *args], env=env)

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            if proc.alive():
                proc.popen.send_signal(signal.SIGTERM)
        for proc in reversed(self.started):
            proc.stop(30)


def credentials_env(routes_file: Path) -> dict[str, str]:
    """A value for every ``env:NAME`` credential routes.yaml refers to (the stand-ins accept
    any): the demo's values where it has them (the payment secret must match the traffic
    generator's checksums), a placeholder otherwise."""
    names = re.findall(r"env:([A-Za-z_][A-Za-z0-9_]*)", routes_file.read_text(encoding="utf-8"))
    values = {name: f"bench-{name.lower()}" for name in names}
    try:
        from bus.demo import run as demo

        values.update(getattr(demo, "DEMO_CREDENTIALS", {}))
    except ImportError:
        pass
    values.setdefault("DVCBUS_PORTAL_TOKEN", "bench-portal-token")
    return values


def bus_env(amqp_url: str, namespace: str, routes_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DVCBUS_NAMESPACE=namespace,
        DVCBUS_ROUTES_FILE=str(routes_file),
        DVCBUS_AMQP_URL=amqp_url,
        DVCBUS_LOG_FORMAT="json",
    )
    for name, value in credentials_env(routes_file).items():
        env.setdefault(name, value)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# --------------------------------------------------------------------------- routes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_routes(source: Path, dest: Path, *, lift_rate_limits: bool) -> Path:
    """``source`` with every loopback port moved to a free one (other runs may use the usual
    ports) and, unless told otherwise, per-target rate limits lifted: the benchmark measures
    the bus, not the example agencies' contractual limits."""
    text = source.read_text(encoding="utf-8")
    mapping: dict[int, int] = {}

    def move(m: re.Match[str]) -> str:
        old = int(m.group(2))
        mapping.setdefault(old, free_port())
        return f"{m.group(1)}:{mapping[old]}"

    text = re.sub(r"(127\.0\.0\.1|localhost):(\d+)", move, text)
    if lift_rate_limits:
        text = re.sub(r"(rate_limit:\s*)[0-9.]+/[sm]", r"\g<1>1000000/s", text)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return dest


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def new_namespace(tag: str) -> str:
    return f"bench{os.getpid() % 100000}{tag}{int(time.time() * 1000) % 10_000_000}"
