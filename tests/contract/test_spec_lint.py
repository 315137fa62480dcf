"""The OpenAPI document passes Redocly's `recommended` lint with no error (issue 15: public
operations without `security: []`, /health and /ready without an error answer, ...), and
the committed clients/openapi.json is the document the app serves."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from clients.export_openapi import served_document

from tests.contract.conftest import ROOT, npx

logger = logging.getLogger(__name__)


async def test_committed_document_is_the_served_one() -> None:
    committed = json.loads((ROOT / "clients" / "openapi.json").read_text())
    assert committed == await served_document(), "clients/ is stale: run `make clients`"


async def test_redocly_recommended_finds_no_error(typescript: Path, tmp_path: Path) -> None:
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(await served_document()))
    linted = npx("redocly", "lint", "--config", "../redocly.yaml", str(document), "--format=json")
    report = json.loads(linted.stdout[linted.stdout.index("{") :])
    totals = report["totals"]
    logger.info("redocly recommended: %s", totals)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert totals["errors"] == 0 and not errors, json.dumps(errors, indent=1)[:4000]
    assert linted.returncode == 0, linted.stderr
    # The one warning left: info-license (taskhub names no license).
    assert {p["ruleId"] for p in report["problems"]} <= {"info-license"}
