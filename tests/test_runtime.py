"""Process tuning of the long-running processes (taskhub.runtime)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import gc
from taskhub.runtime import tune_gc
tune_gc({threshold})
print(gc.get_threshold()[0], gc.get_freeze_count() > 0)
"""


def run_python(code: str) -> str:
    """Run code in a fresh interpreter (the tuning is process-wide) and return its output."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.strip()


def test_tune_gc_raises_the_young_threshold_and_freezes_startup_objects() -> None:
    assert run_python(CHECK.format(threshold=12345)) == "12345 True"


def test_tune_gc_zero_keeps_pythons_threshold() -> None:
    default = run_python("import gc; print(gc.get_threshold()[0])")
    assert run_python(CHECK.format(threshold=0)) == f"{default} True"


def test_the_server_factory_tunes_the_process() -> None:
    code = (
        "import gc, os\n"
        "os.environ.update(DATABASE_URL='sqlite+aiosqlite:///:memory:', GC_GEN0_THRESHOLD='4321',"
        " SECRET_KEY='x' * 64, ENVIRONMENT='prod')\n"
        "from taskhub.main import app_from_env\n"
        "app_from_env()\n"
        "print(gc.get_threshold()[0], gc.get_freeze_count() > 0)\n"
    )
    assert run_python(code) == "4321 True"
