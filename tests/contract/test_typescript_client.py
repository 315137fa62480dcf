"""The generated TypeScript client (clients/typescript: openapi-typescript types, openapi-fetch
requests) compiles with `tsc --strict` and runs the README's v2 walk-through (design §7)
against a real `taskhub serve`, in both shapes (tests/e2e's processes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.contract.conftest import npx
from tests.e2e.test_walkthrough import PASSWORD, Stack


def test_the_client_compiles_strict(typescript: Path) -> None:
    checked = npx("tsc", "-p", "tsconfig.json", "--strict", "--noEmit")
    assert checked.returncode == 0, checked.stdout
    assert (typescript / "dist" / "scripts" / "walkthrough.js").exists()


def test_v2_walkthrough_in_node(typescript: Path, stack: Stack) -> None:
    run = subprocess.run(
        [
            "node",
            "dist/scripts/walkthrough.js",
            f"http://127.0.0.1:{stack.port}",
            "admin@example.com",
            PASSWORD,
        ],
        cwd=typescript,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    steps = {line["step"]: line["value"] for line in map(json.loads, run.stdout.splitlines())}
    assert steps["login"] is True
    assert steps["product"]["stock"] == 10
    assert steps["product"]["location"] == f"/api/v2/products/{steps['product']['id']}"
    assert steps["products"] == ["SKU-1001"]
    assert steps["order"]["status"] == "PENDING" and steps["order"]["total_cents"] == 3998
    assert steps["reserved"] == "RESERVED"
    assert steps["paid"] == "PAID"
    assert steps["cancel-refused"] == {"status": 409, "current_status": "PAID"}
    assert steps["cancelled"] == "CANCELLED"
    assert steps["stock"] == 8
