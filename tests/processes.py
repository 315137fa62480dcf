"""Real `taskhub` processes for tests: servers and workers started as scripts start them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_env(**values: str) -> dict[str, str]:
    """The environment of a child process: this one's, minus test switches, plus `values`."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TASKHUB_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    return {
        **inherited,
        # Compiled bytecode is cached out of the tree, so that processes start in ~1 s.
        "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "taskhub-test-pycache"),
        "PYTHONUNBUFFERED": "1",
        "ENVIRONMENT": "test",
        "SECRET_KEY": SECRET,
        **values,
    }


class TaskhubProcess:
    """`python -m taskhub.cli <args>` in the background, its output kept in a log file."""

    def __init__(self, args: list[str], *, env: dict[str, str], log: Path, cwd: Path) -> None:
        self.log = log
        self._file = log.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 (our own CLI)
            [sys.executable, "-m", "taskhub.cli", *args],
            env=env,
            cwd=cwd,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def kill9(self) -> None:
        """SIGKILL: no cleanup at all."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM, then wait for the graceful exit; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Make sure the process is gone."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._file.close()

    def tail(self, lines: int = 30) -> str:
        """The end of the log, for failure messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class PrivateRedis:
    """A throwaway redis-server that a test may stop and start (never the shared one)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self._proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("private redis-server did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """Stop the server abruptly."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(5)
            self._proc = None


class ServerProcess(TaskhubProcess):
    """`taskhub serve` on a free port of 127.0.0.1, as scripts start it."""

    def __init__(self, *, env: dict[str, str], log: Path, cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(["serve", "--port", str(self.port)], env=env, log=log, cwd=cwd)

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until /health answers (fails with the log's tail if it never does)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"GET /health HTTP/1.0\r\nHost: t\r\n\r\n")
                    if sock.recv(32).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("taskhub serve did not start:\n" + self.tail())
            time.sleep(0.1)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """`count` ports whose cluster bus ports (+10000) are free too."""
    import random

    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 29999)  # noqa: S311 - choosing a port, not a secret
        if port not in ports and _bindable(port) and _bindable(port + 10000):
            ports.append(port)
    return ports


def _redis_cli(port: int, *args: str, timeout: float = 10) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    ).stdout


class LocalCluster:
    """A Redis Cluster of 3 masters and 3 replicas on loopback ports (no persistence),
    joined by `redis-cli --cluster create`. A node may be killed and started again (it
    rejoins with its nodes.conf)."""

    def __init__(self, workdir: Path, *, node_timeout_ms: int = 1000) -> None:
        self.ports = cluster_ports(6)
        self._workdir = workdir
        self._node_timeout = node_timeout_ms
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """A seed node, as REDIS_URL names it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        """Start the six servers, create the cluster, and wait until it is ok."""
        for port in self.ports:
            self.start_node(port)
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses]
            + ["--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}")
        self.wait_ok()

    def start_node(self, port: int) -> None:
        """Start (or restart) one node and wait until it answers."""
        node_dir = self._workdir / str(port)
        node_dir.mkdir(exist_ok=True)
        self._procs[port] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(self._node_timeout),
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
                "--dir",
                str(node_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while "PONG" not in _redis_cli(port, "PING"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster node {port} did not start")
            time.sleep(0.05)

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every running node says cluster_state:ok, 3 masters serve the slots, and
        every replica is in sync with its master (else it could not take over)."""
        deadline = time.monotonic() + timeout
        while True:
            states = [_redis_cli(port, "CLUSTER", "INFO") for port in self._procs]
            replication = [_redis_cli(port, "INFO", "replication") for port in self._procs]
            synced = all(
                "role:master" in info or "master_link_status:up" in info for info in replication
            )
            ok = all("cluster_state:ok" in state for state in states)
            if ok and synced and len(self.masters()) == 3:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not become ok:\n" + "\n".join(states))
            time.sleep(0.1)

    def nodes(self) -> list[tuple[int, str, bool]]:
        """(port, node id, is a live master serving slots) of every node, as a live node
        sees them."""
        live = next(iter(self._procs))
        out = []
        for line in _redis_cli(live, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            flags = fields[2].split(",")
            serving = "master" in flags and "fail" not in flags and len(fields) > 8
            out.append((port, fields[0], serving))
        return out

    def masters(self) -> list[int]:
        """Ports of the live masters that serve slots."""
        return [port for port, _, serving in self.nodes() if serving and port in self._procs]

    def replica_of(self, master_port: int) -> int:
        """The port of a replica of that master."""
        master_id = next(node for port, node, _ in self.nodes() if port == master_port)
        live = next(iter(self._procs))
        for line in _redis_cli(live, "CLUSTER", "REPLICAS", master_id).splitlines():
            return int(line.split()[1].split("@")[0].rsplit(":", 1)[1])
        raise RuntimeError(f"no replica of {master_port}")

    def kill(self, port: int) -> None:
        """SIGKILL one node."""
        proc = self._procs.pop(port)
        proc.kill()
        proc.wait(5)

    def stop(self) -> None:
        """Kill every node."""
        for port in list(self._procs):
            self.kill(port)
