"""GET /tasks?q=: words matched as prefixes, the same on both databases, kept in step with
every write, and paged like any list (the walk of the sort's index and the full-text index
give the same pages)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from taskhub.search import RARE, search_words
from tests.projects.conftest import Team, add_member, make_project, make_task
from tests.projects.test_task_listing import expected_order, finds, insert_tasks, task_rows


async def found(client: httpx.AsyncClient, team: Team, q: str, **params: Any) -> list[str]:
    r = await client.get(
        "/api/v1/tasks", params={"q": q, "limit": 200, **params}, headers=team.member.headers
    )
    assert r.status_code == 200, r.text
    return sorted(task["title"] for task in r.json()["items"])


@pytest.mark.parametrize(
    ("q", "titles"),
    [
        ("depl", ["Deploy the API"]),
        ("DEPLOY", ["Deploy the API"]),
        ("ploy", []),  # inside a word: not a match
        ("bug", ["Fix login-bug"]),
        ("bug login", ["Fix login-bug"]),  # every word, in any order
        ("bug deploy", []),
        ("ug", []),
        ("under", ["under_score"]),
        ("score", ["under_score"]),
        ("1001", ["SKU-1001 widget"]),
        ("sku-1001", ["SKU-1001 widget"]),
        ("café", ["Café crème"]),
        ("CAFÉ", ["Café crème"]),  # case folds beyond ASCII
        ("cafe", []),  # accents are kept
        ("école", ["ÉCOLE du soir"]),
        ("plug", ["Fix login-bug"]),  # the description is searched too
        ("%", []),  # no word: nothing
        ("½", []),
        ("-- !!", []),
    ],
)
async def test_words_match_as_the_start_of_words(
    client: httpx.AsyncClient, team: Team, q: str, titles: list[str]
) -> None:
    for title, description in [
        ("Deploy the API", None),
        ("Fix login-bug", "the plug is loose"),
        ("under_score", None),
        ("SKU-1001 widget", None),
        ("Café crème", None),
        ("ÉCOLE du soir", None),
    ]:
        await make_task(client, team.owner, team.project_id, title=title, description=description)
    assert await found(client, team, q) == titles


async def test_search_follows_every_write(
    app: FastAPI, client: httpx.AsyncClient, team: Team
) -> None:
    task = await make_task(client, team.owner, team.project_id, title="Rename me")
    other = await make_task(client, team.owner, team.project_id, title="Rename me too")
    assert len(await found(client, team, "rename")) == 2
    r = await client.patch(
        f"/api/v1/tasks/{task['id']}",
        json={"title": "Renamed", "description": "now with marmalade"},
        headers=team.owner.headers,
    )
    assert r.status_code == 200
    assert await found(client, team, "marmalade") == ["Renamed"]
    assert await found(client, team, "me") == ["Rename me too"]
    r = await client.delete(f"/api/v1/tasks/{other['id']}", headers=team.owner.headers)
    assert r.status_code == 204
    assert await found(client, team, "rename") == ["Renamed"]
    # A project's deletion takes its tasks with it (a foreign-key cascade).
    gone = await make_project(client, team.owner, title="Doomed")
    await make_task(client, team.owner, gone, title="Marmalade elsewhere")
    assert await found(client, team, "marmalade") == ["Renamed"]  # the member cannot see it
    r = await client.delete(f"/api/v1/projects/{gone}", headers=team.owner.headers)
    assert r.status_code == 204
    r = await client.get(
        "/api/v1/tasks", params={"q": "marmalade"}, headers=team.site_admin.headers
    )
    assert [t["title"] for t in r.json()["items"]] == ["Renamed"]
    async with app.state.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # The FTS5 index holds exactly the tasks' text (raises if it does not).
            await conn.execute(
                text("INSERT INTO tasks_search(tasks_search) VALUES ('integrity-check')")
            )
            count = await conn.scalar(
                text("SELECT count(*) FROM tasks_search WHERE tasks_search MATCH 'marmalade*'")
            )
            assert count == 1


def _spread_rows(team: Team, count: int) -> list[dict[str, Any]]:
    """`task_rows`, every title with the word "Shared", and a rare word in one row in 97."""
    rows = task_rows(team, count)
    for i, row in enumerate(rows):
        row["title"] += " Shared"
        if i % 97 == 13:
            row["description"] = f"{row['description'] or ''} the rare Zyzzyva".strip()
    return rows


@pytest.mark.parametrize("sort", ["-due_date", "priority"])
async def test_search_pages_like_any_list(
    app: FastAPI, client: httpx.AsyncClient, team: Team, sort: str
) -> None:
    # Every way a search page is found gives the pages any list gives (order, filters,
    # cursors): a member's pages merged from their projects; on PostgreSQL, with the
    # statistics gathered, the full-text index for words the statistics call rare, and for
    # a common word a walk of the sort's index that fills the page, or that does not (then
    # the index). More rows than a walk reads, and than a rare word may match.
    second = await make_project(client, team.owner, title="Second")
    await add_member(client, second, by=team.owner, user=team.member, role="viewer")
    rows = _spread_rows(team, RARE + 1000)
    for row in rows[::3]:
        row["project_id"] = second
    await insert_tasks(app, rows)
    async with app.state.engine.connect() as conn:
        await conn.execute(text("ANALYZE tasks"))
    everything = await _walk(client, team.site_admin.headers, limit=200, sort="id")
    assert len(everything) == len(rows)
    early = "2030-01-01T09:30:00Z"  # with todo and none: one task in 180
    cases: list[tuple[str, dict[str, Any], int | None]] = [
        ("zyzz", {}, None),
        ("Zyzzyva rare", {"status": "done"}, None),
        ("zyzzyva", {"project_id": second}, None),
        ("login", {"priority": "high"}, None),
        ("shared", {}, 4),  # every task: its first pages
        ("shared", {"status": "todo", "priority": "none", "due_before": early}, None),
    ]
    for q, params, pages in cases:
        expected = expected_order(
            [t for t in everything if finds(q, t) and _passes(t, params)], sort
        )
        assert 0 < len(expected) <= len(rows)
        if pages:
            expected = expected[: 13 * pages]
        for headers in (team.member.headers, team.site_admin.headers):
            seen = await _walk(client, headers, limit=13, pages=pages, sort=sort, q=q, **params)
            assert [t["id"] for t in seen] == expected, (q, params)


def _passes(task: dict[str, Any], params: dict[str, Any]) -> bool:
    for name, value in params.items():
        if name == "due_before":
            if not task["due_date"] or datetime.fromisoformat(
                task["due_date"]
            ) >= datetime.fromisoformat(value):
                return False
        elif task[name] != value:
            return False
    return True


async def _walk(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    limit: int,
    pages: int | None = None,
    **params: Any,
) -> list[dict[str, Any]]:
    """Follow next_cursor to the end (or for `pages` pages); every item."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(pages or 1000):
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/v1/tasks", params=query, headers=headers)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items
    if pages:
        return items
    raise AssertionError("pagination did not end")


def test_search_words_are_runs_of_letters_and_digits() -> None:
    assert search_words("Fix login-bug #12, café_crème!") == (
        "Fix", "login", "bug", "12", "café", "crème",
    )  # fmt: skip
    assert search_words("Bug bug BUG") == ("Bug",)
    assert search_words("%_ - ½ ²") == ()
    assert search_words("x² Ⅻ a\u0301b 中文") == ("x", "Ⅻ", "a\u0301b", "中文")
