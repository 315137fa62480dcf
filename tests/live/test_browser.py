"""The /live page in a real browser: Debian's headless Chromium, driven by Playwright.

A user signs in on the page, an order is placed through the API, and the page shows it turn
from PENDING to RESERVED as the events arrive, without a reload; a project's tasks change
the same way. Against a real `taskhub serve` (the embedded shape: SQLite, events dispatched
in the server).

The page shows what the domain's own events say: the test also checks that each event it
waits for was written by the code that made the change (`event_written`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from taskhub.db import make_engine, make_sessionmaker
from taskhub.migrate import upgrade
from taskhub.models import OutboxEvent
from tests.conftest import make_settings, service_missing
from tests.processes import ServerProcess, process_env

try:
    from playwright.async_api import expect
except ImportError:  # the dev dependencies are not installed: the fixture skips
    expect = None  # type: ignore[assignment]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN, USER, PASSWORD = "page-admin@example.com", "page-user@example.com", "Page-pass-123"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, str]]:
    """`taskhub serve` on a fresh SQLite database, with a site admin; its database URL."""
    if not os.access(CHROMIUM, os.X_OK):
        service_missing("chromium", f"{CHROMIUM} is not installed (apt-get install chromium)")
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    await upgrade(make_settings(database_url=url))
    env = process_env(DATABASE_URL=url, BCRYPT_ROUNDS="4", RELAY_POLL_SECONDS="0.05")
    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "taskhub.cli", "create-superuser", "--email", ADMIN,
         "--password", PASSWORD],
        env=env, capture_output=True, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    process = ServerProcess(env=env, log=tmp_path / "serve.log", cwd=tmp_path)
    try:
        await asyncio.to_thread(process.wait_ready)
        yield process, url
    finally:
        if process.proc.poll() is None:
            await asyncio.to_thread(process.terminate)
        process.close()


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    r = await client.post(
        "/api/v1/auth/login/access-token", data={"username": email, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def event_written(
    database_url: str, event_type: str, payload: dict[str, Any], *, key: str
) -> None:
    """The domain wrote an event of `event_type` about `payload[key]` with its change."""
    engine = make_engine(make_settings(database_url=database_url))
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.scalars(
                select(OutboxEvent.payload).where(OutboxEvent.type == event_type)
            )
            assert any(row.get(key) == payload[key] for row in rows), (event_type, payload)
    finally:
        await engine.dispose()


@dataclass
class Browser:
    """A page, and the answers of 400 or more its requests got (path and status)."""

    page: Any
    failed: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture
async def browser(server: tuple[ServerProcess, str]) -> AsyncIterator[Browser]:
    """A page of headless Chromium. Nothing may go wrong in it: no script error, no
    Content-Security-Policy violation (each test checks the requests that failed)."""
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            opened = Browser(await chromium.new_page())
            problems: list[str] = []
            opened.page.on("pageerror", lambda error: problems.append(str(error)))

            def console(message: Any) -> None:
                # A failed request is logged too: those are in `failed`, with their path.
                if message.type == "error" and not message.text.startswith("Failed to load"):
                    problems.append(message.text)

            def answered(response: Any) -> None:
                if response.status >= 400:
                    opened.failed.append((urlsplit(response.url).path, response.status))

            opened.page.on("console", console)
            opened.page.on("response", answered)
            yield opened
            assert not problems, problems
        finally:
            await chromium.close()


async def sign_in(page: Any, base_url: str, email: str) -> None:
    """Open /live and sign in; the orders stream is live when this returns."""
    await page.goto(f"{base_url}/live")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await expect(page.locator("#orders-state")).to_have_text("live", timeout=20_000)
    # A reload would lose this.
    await page.evaluate("window.notReloaded = true")


async def expect_no_reload(page: Any) -> None:
    assert await page.evaluate("window.notReloaded") is True


async def test_the_live_page_shows_an_order_turn_reserved_without_a_reload(
    server: tuple[ServerProcess, str], browser: Browser
) -> None:
    process, database_url = server
    page = browser.page
    async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
        admin = await login(client, ADMIN)
        user_id, user = await sign_up(client, USER)
        product = await client.post(
            "/api/v2/products",
            json={"sku": "PAGE-1", "name": "Mug", "price_cents": 899, "stock": 5},
            headers=admin,
        )
        assert product.status_code == 201, product.text
        await sign_in(page, process.url, USER)

        placed = await client.post(
            "/api/v2/orders",
            json={"items": [{"product_id": product.json()["id"], "quantity": 2}]},
            headers=user,
        )
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["id"]
        row = page.locator(f'#order-rows tr[data-order-id="{order_id}"]')
        await expect(row.locator(".history")).to_contain_text("PENDING", timeout=20_000)

        async def reserved() -> bool:
            read = await client.get(f"/api/v2/orders/{order_id}", headers=user)
            return bool(read.json()["status"] == "RESERVED")

        async with asyncio.timeout(20):
            while not await reserved():
                await asyncio.sleep(0.05)
        payload = {"order_id": order_id, "user_id": user_id, "status": "RESERVED"}
        await event_written(database_url, "order.reserved", payload, key="order_id")

        await expect(row.locator(".status")).to_have_text("RESERVED", timeout=20_000)
        await expect(row.locator(".history")).to_have_text("PENDING → RESERVED")
        await expect(row.locator(".total")).to_have_text("17.98")
        await expect_no_reload(page)
        assert await page.locator("#event-log li").count() >= 2
        assert browser.failed == []


async def test_the_live_page_shows_a_projects_tasks_change(
    server: tuple[ServerProcess, str], browser: Browser
) -> None:
    process, database_url = server
    page = browser.page
    async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
        owner = await login(client, ADMIN)
        user_id, user = await sign_up(client, USER)
        project = await client.post("/api/v1/projects", json={"title": "Launch"}, headers=owner)
        project_id = project.json()["id"]
        added = await client.put(
            f"/api/v1/projects/{project_id}/members/{user_id}",
            json={"role": "member"},
            headers=owner,
        )
        assert added.status_code == 201, added.text
        await sign_in(page, process.url, USER)
        await page.select_option("#project-select", str(project_id))
        await expect(page.locator("#project-state")).to_have_text("live", timeout=20_000)

        created = await client.post(
            "/api/v1/tasks",
            json={"title": "Write the docs", "project_id": project_id},
            headers=owner,
        )
        assert created.status_code == 201, created.text
        task = created.json()
        payload = {"task_id": task["id"], "project_id": project_id, "task": task}
        await event_written(database_url, "task.created", payload, key="task_id")
        row = page.locator(f'#task-rows tr[data-task-id="{task["id"]}"]')
        await expect(row.locator(".title")).to_have_text("Write the docs", timeout=20_000)
        await expect(row.locator(".status")).to_have_text("todo")

        moved = await client.post(f"/api/v1/tasks/{task['id']}/status/done", headers=owner)
        assert moved.status_code == 200, moved.text
        changes = {"status": ["todo", "done"]}
        payload = {"task_id": task["id"], "project_id": project_id, "changes": changes}
        await event_written(database_url, "task.updated", payload, key="task_id")
        await expect(row.locator(".status")).to_have_text("done", timeout=20_000)

        # Removed from the project: the stream ends, and the page says so.
        removed = await client.delete(
            f"/api/v1/projects/{project_id}/members/{user_id}", headers=owner
        )
        assert removed.status_code == 204, removed.text
        await expect(page.locator("#project-note")).to_contain_text(
            "no longer visible", timeout=20_000
        )
        await expect(page.locator("#project-state")).to_have_text("gone")
        await expect_no_reload(page)
        # The only refusals: the project, once it was no longer visible (404), and perhaps
        # the stream itself, reopened before the page asked (404 too).
        assert browser.failed
        assert {failure[1] for failure in browser.failed} == {404}, browser.failed
        assert {failure[0] for failure in browser.failed} <= {
            f"/api/v1/projects/{project_id}",
            f"/api/v1/projects/{project_id}/events",
        }, browser.failed


async def sign_up(client: httpx.AsyncClient, email: str) -> tuple[int, dict[str, str]]:
    signup = await client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    return signup.json()["id"], await login(client, email)
