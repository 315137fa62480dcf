"""The generated clients against a real `taskhub serve`, in both shapes (tests/e2e's
processes): the TypeScript client (clients/typescript: openapi-typescript types,
openapi-fetch requests) compiles with `tsc --strict` and runs the README's v2 walk-through
(design §7) in node; then the README's client examples, Python and TypeScript, extracted from
README.md, run as written. One server per shape serves all three."""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import sys
from pathlib import Path

from tests.contract.conftest import ROOT, npx
from tests.e2e.test_walkthrough import PASSWORD, Stack


def test_the_client_compiles_strict(typescript: Path) -> None:
    checked = npx("tsc", "-p", "tsconfig.json", "--strict", "--noEmit")
    assert checked.returncode == 0, checked.stdout
    assert (typescript / "dist" / "scripts" / "walkthrough.js").exists()


def test_against_taskhub_serve(typescript: Path, stack: Stack) -> None:
    node_walkthrough(typescript, stack)
    python_example(stack)
    typescript_example(typescript, stack)


def node_walkthrough(typescript: Path, stack: Stack) -> None:
    """The v2 walk-through, clients/typescript/scripts/walkthrough.ts."""
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


def readme_block(name: str) -> str:
    """The code of one README block between its markers."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {name}:start -->\n```\w+\n(.*?)```\n<!-- {name}:end -->", text, re.S)
    assert match, f"README.md has no {name} block"
    return match.group(1)


def as_written(code: str, stack: Stack) -> str:
    return code.replace("http://localhost:8000", f"http://127.0.0.1:{stack.port}").replace(
        "<your-password>", PASSWORD
    )


def python_example(stack: Stack) -> None:
    """README.md's client:python block."""
    run = subprocess.run(
        [sys.executable, "-c", as_written(readme_block("client:python"), stack)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "RESERVED", run.stdout


def typescript_example(typescript: Path, stack: Stack) -> None:
    """README.md's client:typescript block."""
    folder = typescript / "readme-example"
    folder.mkdir(exist_ok=True)
    code = as_written(readme_block("client:typescript"), stack)
    (folder / "example.ts").write_text(code.replace('"taskhub-client"', '"../src/index.js"'))
    (folder / "tsconfig.json").write_text(
        json.dumps(
            {
                "extends": "../tsconfig.json",
                "compilerOptions": {"rootDir": "..", "outDir": "../dist"},
                "include": ["example.ts"],
            }
        )
    )
    with (typescript / ".tools.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        compiled = npx("tsc", "-p", "readme-example/tsconfig.json", "--strict")
    assert compiled.returncode == 0, compiled.stdout
    run = subprocess.run(
        ["node", "dist/readme-example/example.js"],
        cwd=typescript,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "RESERVED", run.stdout
