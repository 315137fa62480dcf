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
