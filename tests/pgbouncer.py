"""A PgBouncer of the test's own, in transaction pooling mode, in front of the test PostgreSQL.

Debian's pgbouncer (1.18: no protocol-level prepared statements) is started on a free port
from a pgbouncer.ini and userlist written to a temporary directory, with trust auth, and
stopped at the end. It passes every database name through to the PostgreSQL of the admin
DSN, so a URL of any test database can be pointed at it (`url_through`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from tests.processes import free_port

PGBOUNCER_PATHS = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


def pgbouncer_binary() -> str | None:
    """The pgbouncer executable, or None when it is not installed.

    TASKHUB_TEST_PGBOUNCER names it explicitly (a missing path: not installed).
    """
    explicit = os.environ.get("TASKHUB_TEST_PGBOUNCER")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("pgbouncer")
    if found:
        return found
    return next((path for path in PGBOUNCER_PATHS if os.access(path, os.X_OK)), None)


class PgBouncer:
    """pgbouncer in transaction mode; `start()`, then `url_through(url)`, then `stop()`."""

    def __init__(self, admin_dsn: str, *, pool_size: int = 10, round_robin: bool = True) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise FileNotFoundError("pgbouncer is not installed (apt-get install pgbouncer)")
        self.binary = binary
        upstream = urlsplit(admin_dsn)
        self.upstream_host = upstream.hostname or "127.0.0.1"
        self.upstream_port = upstream.port or 5432
        self.user = upstream.username or "postgres"
        self.pool_size = pool_size
        self.round_robin = round_robin
        self.port = 0
        self.dir = Path(tempfile.mkdtemp(prefix="taskhub-pgbouncer-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={self.upstream_host} port={self.upstream_port}\n"
            "\n[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.dir / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            # Fewer server connections than clients: transactions really share them.
            f"default_pool_size = {self.pool_size}\n"
            "max_client_conn = 1000\n"
            # Hand each transaction to the next server connection in turn, not to the one
            # used last: anything that relies on session state then fails early.
            f"server_round_robin = {1 if self.round_robin else 0}\n"
            "query_wait_timeout = 60\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
        )
        (self.dir / "userlist.txt").write_text(f'"{self.user}" ""\n')
        return ini

    def start(self, timeout: float = 15) -> None:
        """Start on a free port; return once it accepts connections."""
        self.port = free_port()
        ini = self._write_config()
        command = [self.binary]
        if os.geteuid() == 0:
            # pgbouncer refuses to run as root: drop to the postgres account, which must
            # then own the directory of the ini and userlist.
            account = pwd.getpwnam("postgres")
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
            command += ["-u", account.pw_name]
        self._log = (self.dir / "pgbouncer.log").open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 (a fixed binary and our own ini)
            [*command, str(ini)], stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited at start:\n{self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"pgbouncer did not listen within {timeout}s") from None
                time.sleep(0.05)

    def url_through(self, url: str) -> str:
        """The same database URL, reached through this pgbouncer."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(False)

    def stop(self) -> None:
        """Stop it (SIGTERM: immediate shutdown) and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, lines: int = 20) -> str:
        """The end of its log, for failure messages."""
        path = self.dir / "pgbouncer.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
