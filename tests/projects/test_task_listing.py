"""GET /tasks: keyset pagination under every sort, filters, search, and statement counts."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import event, insert
from sqlalchemy.engine import Dialect

from taskhub.driver import DriverStatement
from taskhub.models import Task, TaskPriority, TaskStatus
from taskhub.pagination import encode_cursor
from taskhub.projects.task_query import TaskFilters, TaskPage, TaskSort
from taskhub.security import decode_access_token
from tests.factories import Actor, make_user
from tests.projects.conftest import Team, make_project

PRIORITIES = ["none", "low", "medium", "high", "urgent"]
URGENCY = {p: i for i, p in enumerate(PRIORITIES)}
STATUSES = ["todo", "in_progress", "done"]
BASE = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
SORTS = ["id", "-id", "due_date", "-due_date", "priority", "-priority", "created_at", "-created_at"]


async def insert_tasks(app: FastAPI, rows: list[dict[str, Any]]) -> None:
    """Write many tasks in one statement (the API path is covered by the other tests)."""
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(insert(Task), rows)


def task_rows(team: Team, count: int) -> list[dict[str, Any]]:
    """Tasks with many ties: NULL due dates, repeated due dates, priorities and timestamps."""
    assignees = [None, team.member.id, team.viewer.id, team.admin.id]
    words = ["Fix LOGIN bug", "Write docs", "100% coverage", "under_score", "Deploy"]
    rows = []
    for i in range(count):
        row: dict[str, Any] = {
            "project_id": team.project_id,
            "title": f"{words[i % len(words)]} #{i}",
            "description": "mentions Login too" if i % 7 == 0 else None,
            "status": STATUSES[i % 3],
            "priority": PRIORITIES[(i * 7) % 5],
            "assignee_id": assignees[i % 4],
            "created_by_id": team.owner.id,
            "due_date": None if i % 4 == 0 else BASE + timedelta(days=i % 9, hours=i % 2),
        }
        if i % 2:
            # Half keep the server default; half get explicit, tied, second-aligned times.
            row["created_at"] = BASE - timedelta(minutes=i % 11)
        rows.append(row)
    return rows


async def walk(
    client: httpx.AsyncClient, team: Team, *, limit: int, **params: Any
) -> list[dict[str, Any]]:
    """Follow next_cursor to the end and return every item."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {"limit": limit, **params}
        if cursor:
            query["cursor"] = cursor
        r = await client.get("/api/v1/tasks", params=query, headers=team.member.headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def expected_order(tasks: list[dict[str, Any]], sort: str) -> list[int]:
    """The order the API promises: key, then id; NULL due dates last in both directions."""
    field, descending = sort.lstrip("-"), sort.startswith("-")
    sign = -1 if descending else 1

    def key(task: dict[str, Any]) -> tuple[Any, ...]:
        if field == "id":
            return (sign * task["id"],)
        if field == "priority":
            return (sign * URGENCY[task["priority"]], sign * task["id"])
        value = task[field]
        if value is None:
            return (1, 0.0, sign * task["id"])
        return (0, sign * datetime.fromisoformat(value).timestamp(), sign * task["id"])

    return [t["id"] for t in sorted(tasks, key=key)]


@pytest.fixture
async def big_project(app: FastAPI, client: httpx.AsyncClient, team: Team) -> list[dict[str, Any]]:
    """230 tasks in the team's project, plus some in a project the member cannot see."""
    await insert_tasks(app, task_rows(team, 230))
    hidden = await make_project(client, team.outsider, title="Hidden")
    await insert_tasks(app, [{"project_id": hidden, "title": "Fix LOGIN elsewhere"}] * 5)
    tasks = await walk(client, team, limit=200, sort="id")
    assert len(tasks) == 230
    return tasks


@pytest.mark.parametrize("sort", SORTS)
async def test_pagination_walks_every_sort_without_gaps_or_duplicates(
    client: httpx.AsyncClient, team: Team, big_project: list[dict[str, Any]], sort: str
) -> None:
    seen = await walk(client, team, limit=17, sort=sort)
    ids = [t["id"] for t in seen]
    assert len(ids) == len(set(ids)) == 230
    assert ids == expected_order(big_project, sort)


async def test_nulls_sort_last_in_both_directions(
    client: httpx.AsyncClient, team: Team, big_project: list[dict[str, Any]]
) -> None:
    nulls = sum(1 for t in big_project if t["due_date"] is None)
    assert nulls > 0
    for sort in ("due_date", "-due_date"):
        seen = await walk(client, team, limit=50, sort=sort)
        assert all(t["due_date"] is None for t in seen[-nulls:])
        assert all(t["due_date"] is not None for t in seen[:-nulls])


async def test_priority_sorts_by_urgency(
    client: httpx.AsyncClient, team: Team, big_project: list[dict[str, Any]]
) -> None:
    r = await client.get(
        "/api/v1/tasks", params={"sort": "-priority", "limit": 200}, headers=team.member.headers
    )
    priorities = [t["priority"] for t in r.json()["items"]]
    assert priorities[0] == "urgent"
    assert priorities[-1] == "none"
    assert priorities.index("medium") < priorities.index("low")


@pytest.mark.parametrize(
    ("params", "predicate"),
    [
        ({"status": "done"}, lambda t: t["status"] == "done"),
        ({"priority": "high"}, lambda t: t["priority"] == "high"),
        (
            {"due_before": "2030-01-03T00:00:00Z"},
            lambda t: _due(t) < datetime(2030, 1, 3, tzinfo=UTC),
        ),
        (
            {"due_after": "2030-01-08T00:00:00+00:00"},
            lambda t: t["due_date"] and _due(t) > datetime(2030, 1, 8, tzinfo=UTC),
        ),
        ({"q": "login"}, lambda t: finds("login", t)),
        ({"q": "LOG"}, lambda t: "login" in f"{t['title']} {t['description']}".lower()),
        ({"q": "under_score"}, lambda t: "under_score" in t["title"]),
        ({"q": "100%"}, lambda t: finds("100", t)),
        (
            {"status": "todo", "priority": "medium", "q": "DOCS"},
            lambda t: (
                t["status"] == "todo" and t["priority"] == "medium" and "docs" in t["title"].lower()
            ),
        ),
    ],
)
async def test_filters(
    client: httpx.AsyncClient,
    team: Team,
    big_project: list[dict[str, Any]],
    params: dict[str, str],
    predicate: Any,
) -> None:
    expected = [t["id"] for t in big_project if predicate(t)]
    seen = await walk(client, team, limit=23, **params)
    assert [t["id"] for t in seen] == expected
    assert expected, "the filter should match something"
    assert len(expected) < 230


@pytest.mark.parametrize("sort", ["due_date", "-due_date", "priority", "-priority"])
@pytest.mark.parametrize(
    "params",
    [
        {"due_after": "2030-01-04T09:00:00Z"},
        {"due_before": "2030-01-04T09:00:00Z"},
        {"due_after": "2030-01-02T09:00:00Z", "due_before": "2030-01-07T10:00:00Z"},
        {"priority": "high"},
        {"priority": "none", "status": "done"},
    ],
)
async def test_filters_on_the_sort_key_page_like_any_other(
    client: httpx.AsyncClient,
    team: Team,
    big_project: list[dict[str, Any]],
    sort: str,
    params: dict[str, str],
) -> None:
    # Such a filter bounds the sort key's index range on the side the pages start from
    # (folded into the start bound) or on the far side; every page follows the cursor.
    def passes(task: dict[str, Any]) -> bool:
        for name, value in params.items():
            due = _due(task) if task["due_date"] else None
            if name in ("due_after", "due_before"):
                bound = datetime.fromisoformat(value)
                if due is None or not (due > bound if name == "due_after" else due < bound):
                    return False
            if name in ("priority", "status") and task[name] != value:
                return False
        return True

    expected = expected_order([t for t in big_project if passes(t)], sort)
    assert 0 < len(expected) < 230
    seen = await walk(client, team, limit=7, sort=sort, **params)
    assert [t["id"] for t in seen] == expected


async def test_assignee_filter(
    client: httpx.AsyncClient, team: Team, big_project: list[dict[str, Any]]
) -> None:
    expected = [t["id"] for t in big_project if t["assignee_id"] == team.viewer.id]
    seen = await walk(client, team, limit=9, assignee_id=team.viewer.id, sort="-due_date")
    assert sorted(t["id"] for t in seen) == expected
    assert len(expected) == 230 // 4


def finds(q: str, task: dict[str, Any]) -> bool:
    """The search rule (README): every word of q begins a word of the title or description."""
    text = f"{task['title']} {task['description'] or ''}"
    words = [w.lower() for w in re.findall(r"[^\W_]+", text)]
    return all(any(w.startswith(part.lower()) for w in words) for part in re.findall(r"[^\W_]+", q))


def _due(task: dict[str, Any]) -> datetime:
    value = task["due_date"]
    return datetime.fromisoformat(value) if value else datetime.max.replace(tzinfo=UTC)


async def test_project_filter_and_visibility(
    app: FastAPI, client: httpx.AsyncClient, team: Team, big_project: list[dict[str, Any]]
) -> None:
    r = await client.get("/api/v1/tasks", params={"q": "elsewhere"}, headers=team.member.headers)
    assert r.json()["items"] == []
    r = await client.get(
        "/api/v1/tasks", params={"q": "elsewhere"}, headers=team.site_admin.headers
    )
    assert len(r.json()["items"]) == 5
    other = r.json()["items"][0]["project_id"]
    r = await client.get(
        "/api/v1/tasks", params={"project_id": other}, headers=team.outsider.headers
    )
    assert len(r.json()["items"]) == 5
    r = await client.get(
        "/api/v1/tasks",
        params={"project_id": team.project_id, "limit": 1},
        headers=team.outsider.headers,
    )
    assert r.json()["items"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "title"},
        {"limit": 0},
        {"limit": 201},
        {"project_id": 2**31},
        {"assignee_id": 0},
        {"status": "blocked"},
        {"due_before": "soon"},
        {"q": "x" * 201},
        {"q": ""},
    ],
)
async def test_bad_query_is_422(
    client: httpx.AsyncClient, team: Team, params: dict[str, Any]
) -> None:
    r = await client.get("/api/v1/tasks", params=params, headers=team.member.headers)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    # Reported where FastAPI reports a query parameter (the string is validated in one step).
    assert [e["loc"] for e in r.json()["errors"]] == [["query", *params]]


async def test_the_query_string_follows_fastapis_rules(
    client: httpx.AsyncClient, team: Team, big_project: list[dict[str, Any]]
) -> None:
    # A repeated key: the last value wins. An unknown key: ignored.
    r = await client.get(
        "/api/v1/tasks?limit=500&limit=3&sort=-id&colour=red", headers=team.member.headers
    )
    assert r.status_code == 200, r.text
    assert [t["id"] for t in r.json()["items"]] == sorted(t["id"] for t in big_project)[-1:-4:-1]
    schema = (await client.get("/openapi.json")).json()
    documented = schema["paths"]["/api/v1/tasks"]["get"]["parameters"]
    assert {p["name"] for p in documented if p["in"] == "query"} == {
        "project_id", "status", "assignee_id", "priority", "due_before", "due_after",
        "q", "sort", "limit", "cursor",
    }  # fmt: skip


async def test_cursor_is_checked(
    client: httpx.AsyncClient, team: Team, big_project: list[dict[str, Any]]
) -> None:
    r = await client.get(
        "/api/v1/tasks", params={"sort": "due_date", "limit": 5}, headers=team.member.headers
    )
    cursor = r.json()["next_cursor"]
    assert cursor
    for params in (
        {"sort": "priority", "cursor": cursor},  # a cursor of another sort
        {"cursor": "not-a-cursor"},
        {"cursor": encode_cursor(["id", "x", 2])},
        {"cursor": encode_cursor(["id", 1])},
        {"sort": "due_date", "cursor": encode_cursor(["due_date", "not-a-date", 3])},
        {"sort": "due_date", "cursor": encode_cursor(["due_date", "0001-01-01T00:00+05:00", 3])},
        {"sort": "priority", "cursor": encode_cursor(["priority", None, 3])},
    ):
        r = await client.get("/api/v1/tasks", params=params, headers=team.member.headers)
        assert r.status_code == 400, params


@contextmanager
def count_statements(app: FastAPI) -> Iterator[list[str]]:
    """Record the SQL statements this test's requests send, through SQLAlchemy or the driver.

    Statements of background tasks (the embedded event dispatcher polls the outbox on the
    same engine) are left out: only the current asyncio task's statements count.
    """
    statements: list[str] = []
    me = asyncio.current_task()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        try:
            current = asyncio.current_task()
        except RuntimeError:
            return
        if current is me:
            statements.append(statement)

    # Hot paths skip SQLAlchemy on PostgreSQL and run on the driver (taskhub.driver).
    driver_run = DriverStatement._run

    async def run_and_record(
        self: DriverStatement, driver: Any, dialect: Dialect, params: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        record(None, None, self._compile(dialect).sql)
        return await driver_run(self, driver, dialect, params)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    # Patched on the class for the fixture's span, so that every driver statement is recorded.
    DriverStatement._run = run_and_record  # type: ignore[method-assign]
    try:
        yield statements
    finally:
        DriverStatement._run = driver_run  # type: ignore[method-assign]
        event.remove(engine, "before_cursor_execute", record)


async def test_task_list_is_a_constant_number_of_statements(
    app: FastAPI, client: httpx.AsyncClient, team: Team
) -> None:
    counts = []
    for batch, shown in ((3, 3), (60, 50)):
        await insert_tasks(app, task_rows(team, batch))
        with count_statements(app) as statements:
            r = await client.get("/api/v1/tasks?limit=50", headers=team.member.headers)
        assert r.status_code == 200
        assert len(r.json()["items"]) == shown
        counts.append(len([s for s in statements if "tasks" in s]))
        total = len(statements)
        assert total <= 2, statements  # the page with the account (SQLite: one, then the other)
    assert counts == [1, 1]
    assert any(t["assignee_id"] for t in r.json()["items"])


async def test_project_list_is_a_constant_number_of_statements(
    client: httpx.AsyncClient, app: FastAPI, team: Team
) -> None:
    totals = []
    for extra in (1, 12):
        for i in range(extra):
            await make_project(client, team.member, title=f"p{i}")
        with count_statements(app) as statements:
            r = await client.get("/api/v1/projects", headers=team.member.headers)
        assert r.status_code == 200
        totals.append(len(statements))
    assert len(r.json()["items"]) == 1 + 1 + 12
    assert totals[0] == totals[1] <= 3


async def both_writers(
    app: FastAPI, page: TaskPage, *, limit: int, member: Actor | None
) -> tuple[bytes, bytes]:
    """The page as the server writes it from rows, and as PostgreSQL writes it."""
    db = app.state.database.pooled
    token = None
    if member is not None:
        token = decode_access_token(member.token, key=app.state.settings.signing_key())
        assert token is not None
    bodies = []
    statement = page.statement(db.dialect)
    for write in (statement.page_from_rows, statement.page_from_json):
        response, _ = await write(db, limit=limit, cursor_of=page.cursor_of, **page.params(token))
        assert response is not None
        bodies.append(bytes(response.body))
    return bodies[0], bodies[1]


@pytest.mark.parametrize("shape", ["postgres"], indirect=True)
async def test_pages_written_by_postgresql_equal_the_row_pages(
    app: FastAPI, client: httpx.AsyncClient, team: Team, big_project: list[dict[str, Any]]
) -> None:
    # On PostgreSQL the database writes GET /tasks pages (pages.json_page): the same items
    # and cursors as the rows serialized by the server (the SQLite path), for every sort and
    # position, for a member's page and for a site admin's (every task). Text JSON must
    # escape, and a due date whose fraction ends in zeros (six digits).
    await insert_tasks(
        app,
        [
            {
                "project_id": team.project_id,
                "title": 'Quote " \\ ✓ \x01',
                "due_date": BASE + timedelta(microseconds=120000),
            }
        ],
    )
    filters = [
        TaskFilters(),
        TaskFilters(status=TaskStatus.TODO),
        TaskFilters(q="login"),
        TaskFilters(priority=TaskPriority.HIGH, due_after=BASE),
    ]
    for sort, task_filters, members_only in itertools.product(TaskSort, filters, (True, False)):
        cursor = None
        for _ in range(3):  # the first pages, then one after a cursor, and so on
            page = TaskPage(
                filters=task_filters, sort=sort, cursor=cursor, members_only=members_only
            )
            member = team.member if members_only else None
            rows, written = await both_writers(app, page, limit=40, member=member)
            assert written == rows, (sort, task_filters, cursor)  # byte for byte
            cursor = orjson.loads(rows)["next_cursor"]
            if cursor is None:
                break
    # An edit through the API shows in the next page at once, as the task's own answer.
    first = big_project[0]["id"]
    edited = await client.patch(
        f"/api/v1/tasks/{first}",
        json={"title": "Edited ✓", "status": "done", "due_date": None},
        headers=team.owner.headers,
    )
    assert edited.status_code == 200, edited.text
    listed = await client.get("/api/v1/tasks", params={"limit": 1}, headers=team.member.headers)
    assert listed.json()["items"] == [edited.json()]
    page = TaskPage(filters=TaskFilters(), sort=TaskSort.ID, cursor=None, members_only=True)
    rows, written = await both_writers(app, page, limit=50, member=team.member)
    assert written == rows


async def test_an_inactive_or_deleted_account_cannot_list_tasks(
    app: FastAPI, client: httpx.AsyncClient, team: Team, big_project: list[dict[str, Any]]
) -> None:
    # GET /tasks reads only the token: its page statement reads the account (on SQLite,
    # just before the page). 401 at once either way.
    gone = await make_user(app, client)
    for actor in (team.viewer, gone):
        assert (await client.get("/api/v1/tasks", headers=actor.headers)).status_code == 200
    r = await client.patch(
        f"/api/v1/users/{team.viewer.id}",
        json={"is_active": False},
        headers=team.site_admin.headers,
    )
    assert r.status_code == 200
    r = await client.delete(f"/api/v1/users/{gone.id}", headers=team.site_admin.headers)
    assert r.status_code == 204
    for actor in (team.viewer, gone):
        for params in ({}, {"sort": "-due_date", "status": "todo"}):
            r = await client.get("/api/v1/tasks", params=params, headers=actor.headers)
            assert r.status_code == 401, r.text
            assert r.headers["www-authenticate"] == "Bearer"
    # The others are unaffected; a site admin still sees every task.
    assert (await client.get("/api/v1/tasks", headers=team.member.headers)).status_code == 200
    hidden = await client.get(
        "/api/v1/tasks", params={"q": "elsewhere"}, headers=team.site_admin.headers
    )
    assert len(hidden.json()["items"]) == 5  # in a project the site admin is not a member of
