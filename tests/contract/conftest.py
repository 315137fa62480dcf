"""Contract-test fixtures: the npm tools of clients/typescript, and the real processes of the
README walk-through (tests/e2e)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import service_missing
from tests.e2e.test_walkthrough import embedded_env, fullstack_env, stack  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
TS = ROOT / "clients" / "typescript"


def npx(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run an npm tool of clients/typescript (installed by `typescript` below)."""
    return subprocess.run(
        ["npx", "--no-install", *args],
        cwd=TS,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def typescript() -> Path:
    """clients/typescript with its locked npm packages installed (`npm ci`) and compiled
    (`tsc --strict`, into dist/); one process at a time does either."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        service_missing("node and npm", "not on PATH")
    with (TS / ".tools.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = TS / "node_modules" / ".package-lock.json"
        if not stamp.exists() or stamp.stat().st_mtime < (TS / "package-lock.json").stat().st_mtime:
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=TS,
                check=True,
                timeout=600,
            )
        compiled = npx("tsc", "-p", "tsconfig.json", "--strict")
        assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return TS
