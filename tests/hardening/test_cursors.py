"""Crafted cursors are a 400 problem on every list, on both shapes: a cursor's values are
checked by type, shape and range for the list and the sort it belongs to, before any SQL."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from taskhub.pagination import encode_cursor
from taskhub.projects.task_query import TaskSort
from tests.commerce.conftest import make_product, place_order
from tests.factories import make_user
from tests.hardening.conftest import assert_problem
from tests.projects.conftest import make_project, make_task

TIMESTAMP = "2026-01-01T00:00:00+00:00"
NOT_VALUES: list[Any] = [True, False, None, "x", 1.5, 2**40, 2**31, 0, -1, [1], {"id": 1}]


def raw(text: str) -> str:
    """Base64 of arbitrary bytes, without padding, as cursors are written."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# Not a cursor at all: invalid base64, JSON that is not a list, lists of the wrong size.
MALFORMED = [
    "!!!!",
    "a",
    "abc$",
    raw("not json"),
    raw("1"),
    raw('"id"'),
    raw("{}"),
    raw("[]"),
    raw("[[1]]"),
    raw("[[[1]]]"),
    raw("[1, 2]"),
    raw("[1e400]"),
    raw("[123456789012345678901234567890]"),
]


def one_value_cursors() -> list[str]:
    """Cursors of the lists keyed by one id: every value that is not an id."""
    return [*MALFORMED, *(encode_cursor([value]) for value in NOT_VALUES), encode_cursor(["id"])]


def task_cursors(sort: TaskSort) -> list[str]:
    """Cursors of GET /tasks for one sort: [sort, value, id] with one part wrong."""
    good: Any = {"id": 1, "priority": 2, "due_date": TIMESTAMP, "created_at": TIMESTAMP}
    value = good[sort.field]
    bad_values: list[Any] = [
        True,
        1.5,
        2**40,
        [value],
        {"v": value},
        "2026-13-45T00:00:00",
        "x" * 41,
    ]
    bad_values.append("x" if sort.field in ("id", "priority") else 5)
    if sort.field != "due_date":
        bad_values.append(None)  # only the block without due dates has a null key
    if sort.field == "priority":
        bad_values += [-1, 5]
    cursors = [*MALFORMED, *(encode_cursor([value]) for value in NOT_VALUES)]
    cursors += [encode_cursor([sort.value, bad, 1]) for bad in bad_values]
    cursors += [encode_cursor([sort.value, value, bad]) for bad in NOT_VALUES]
    cursors += [
        encode_cursor(["nosuch", value, 1]),
        encode_cursor([next(s for s in TaskSort if s is not sort).value, value, 1]),
        encode_cursor([True, value, 1]),
        encode_cursor([None, value, 1]),
        encode_cursor([sort.value, value, 1, 1]),
        encode_cursor([sort.value, value]),
    ]
    return cursors


async def lists_to_probe(
    app: FastAPI, client: httpx.AsyncClient
) -> list[tuple[str, dict[str, Any], dict[str, str], list[str]]]:
    """(path, extra query, headers, crafted cursors) for every list of the API."""
    admin = await make_user(app, client, is_superuser=True)
    project_id = await make_project(client, admin)
    task = await make_task(client, admin, project_id)
    product_id = await make_product(client, admin)
    assert (await place_order(client, admin, [(product_id, 1)])).status_code == 201
    lists: list[tuple[str, dict[str, Any], dict[str, str], list[str]]] = [
        ("/api/v1/users", {}, admin.headers, one_value_cursors()),
        ("/api/v1/projects", {}, admin.headers, one_value_cursors()),
        (f"/api/v1/projects/{project_id}/members", {}, admin.headers, one_value_cursors()),
        (f"/api/v1/tasks/{task['id']}/activity", {}, admin.headers, one_value_cursors()),
        ("/api/v2/products", {}, {}, one_value_cursors()),
        ("/api/v2/orders", {}, admin.headers, one_value_cursors()),
    ]
    for sort in TaskSort:
        lists.append(("/api/v1/tasks", {"sort": sort.value}, admin.headers, task_cursors(sort)))
    return lists


async def test_crafted_cursors_are_400_on_every_list(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    probed = 0
    for path, query, headers, cursors in await lists_to_probe(app, client):
        # Control: the list answers, and its own cursor format is what the probes vary.
        first = await client.get(path, params={**query, "limit": 1}, headers=headers)
        assert first.status_code == 200, (path, query, first.text)
        for cursor in cursors:
            r = await client.get(path, params={**query, "cursor": cursor}, headers=headers)
            body = assert_problem(r, 400)
            assert "cursor" in str(body["detail"]), (path, query, cursor)
            probed += 1
    assert probed > 300


@pytest.mark.parametrize("sort", list(TaskSort))
async def test_valid_cursors_still_page(
    app: FastAPI, client: httpx.AsyncClient, sort: TaskSort
) -> None:
    # Every sort's own cursors, a null due date's included, go on to the next page.
    admin = await make_user(app, client, is_superuser=True)
    project_id = await make_project(client, admin)
    for i in range(3):
        await make_task(
            client, admin, project_id, priority="high", due_date=None if i else TIMESTAMP
        )
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": sort.value, "limit": 1}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/api/v1/tasks", params=params, headers=admin.headers)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(orjson.loads(base64.urlsafe_b64decode(cursor + "==")), list)
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 3
