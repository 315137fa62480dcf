"""Write the OpenAPI document the app serves at /openapi.json to a file (`make clients`).

The app is built with neutral settings and asked over ASGI, exactly as a client would ask a
running server; the document depends on no setting but DOCS_ENABLED, which is on here.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx

from taskhub.config import Settings
from taskhub.main import create_app


async def served_document() -> dict[str, object]:
    """GET /openapi.json from the app."""
    settings = Settings(
        _env_file=None,
        environment="test",
        secret_key="openapi-export-" + "0" * 32,
        database_url="sqlite+aiosqlite:///:memory:",
        docs_enabled=True,
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://taskhub") as client:
        response = await client.get("/openapi.json")
        response.raise_for_status()
        document: dict[str, object] = response.json()
        return document


def main() -> None:
    """Write the document to the path given (or print it)."""
    text = json.dumps(asyncio.run(served_document()), indent=2, ensure_ascii=False) + "\n"
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
