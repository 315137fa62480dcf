import datetime
from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.page_task_out import PageTaskOut
from ...models.problem import Problem
from ...models.task_priority import TaskPriority
from ...models.task_sort import TaskSort
from ...models.task_status import TaskStatus
from ...models.validation_problem import ValidationProblem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    project_id: int | Unset = UNSET,
    status: TaskStatus | Unset = UNSET,
    assignee_id: int | Unset = UNSET,
    priority: TaskPriority | Unset = UNSET,
    due_before: datetime.datetime | Unset = UNSET,
    due_after: datetime.datetime | Unset = UNSET,
    q: str | Unset = UNSET,
    sort: TaskSort | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["cursor"] = cursor

    params["project_id"] = project_id

    json_status: str | Unset = UNSET
    if not isinstance(status, Unset):
        json_status = status.value

    params["status"] = json_status

    params["assignee_id"] = assignee_id

    json_priority: str | Unset = UNSET
    if not isinstance(priority, Unset):
        json_priority = priority.value

    params["priority"] = json_priority

    json_due_before: str | Unset = UNSET
    if not isinstance(due_before, Unset):
        json_due_before = due_before.isoformat()
    params["due_before"] = json_due_before

    json_due_after: str | Unset = UNSET
    if not isinstance(due_after, Unset):
        json_due_after = due_after.isoformat()
    params["due_after"] = json_due_after

    params["q"] = q

    json_sort: str | Unset = UNSET
    if not isinstance(sort, Unset):
        json_sort = sort.value

    params["sort"] = json_sort

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/tasks",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> PageTaskOut | Problem | ValidationProblem | None:
    if response.status_code == 200:
        response_200 = PageTaskOut.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ValidationProblem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = Problem.from_dict(response.json())

        return response_401

    if response.status_code == 413:
        response_413 = Problem.from_dict(response.json())

        return response_413

    if response.status_code == 422:
        response_422 = ValidationProblem.from_dict(response.json())

        return response_422

    if response.status_code == 503:
        response_503 = Problem.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[PageTaskOut | Problem | ValidationProblem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    project_id: int | Unset = UNSET,
    status: TaskStatus | Unset = UNSET,
    assignee_id: int | Unset = UNSET,
    priority: TaskPriority | Unset = UNSET,
    due_before: datetime.datetime | Unset = UNSET,
    due_after: datetime.datetime | Unset = UNSET,
    q: str | Unset = UNSET,
    sort: TaskSort | Unset = UNSET,
) -> Response[PageTaskOut | Problem | ValidationProblem]:
    """Search Tasks

     Tasks in the caller's projects (site admins: all), filtered, sorted, keyset-paginated.

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):
        project_id (int | Unset):
        status (TaskStatus | Unset): Where a task stands.
        assignee_id (int | Unset):
        priority (TaskPriority | Unset): How urgent a task is, lowest first.
        due_before (datetime.datetime | Unset):
        due_after (datetime.datetime | Unset):
        q (str | Unset):
        sort (TaskSort | Unset): The orders GET /tasks accepts; a leading '-' means descending.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[PageTaskOut | Problem | ValidationProblem]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        project_id=project_id,
        status=status,
        assignee_id=assignee_id,
        priority=priority,
        due_before=due_before,
        due_after=due_after,
        q=q,
        sort=sort,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    project_id: int | Unset = UNSET,
    status: TaskStatus | Unset = UNSET,
    assignee_id: int | Unset = UNSET,
    priority: TaskPriority | Unset = UNSET,
    due_before: datetime.datetime | Unset = UNSET,
    due_after: datetime.datetime | Unset = UNSET,
    q: str | Unset = UNSET,
    sort: TaskSort | Unset = UNSET,
) -> PageTaskOut | Problem | ValidationProblem | None:
    """Search Tasks

     Tasks in the caller's projects (site admins: all), filtered, sorted, keyset-paginated.

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):
        project_id (int | Unset):
        status (TaskStatus | Unset): Where a task stands.
        assignee_id (int | Unset):
        priority (TaskPriority | Unset): How urgent a task is, lowest first.
        due_before (datetime.datetime | Unset):
        due_after (datetime.datetime | Unset):
        q (str | Unset):
        sort (TaskSort | Unset): The orders GET /tasks accepts; a leading '-' means descending.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        PageTaskOut | Problem | ValidationProblem
    """

    return sync_detailed(
        client=client,
        limit=limit,
        cursor=cursor,
        project_id=project_id,
        status=status,
        assignee_id=assignee_id,
        priority=priority,
        due_before=due_before,
        due_after=due_after,
        q=q,
        sort=sort,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    project_id: int | Unset = UNSET,
    status: TaskStatus | Unset = UNSET,
    assignee_id: int | Unset = UNSET,
    priority: TaskPriority | Unset = UNSET,
    due_before: datetime.datetime | Unset = UNSET,
    due_after: datetime.datetime | Unset = UNSET,
    q: str | Unset = UNSET,
    sort: TaskSort | Unset = UNSET,
) -> Response[PageTaskOut | Problem | ValidationProblem]:
    """Search Tasks

     Tasks in the caller's projects (site admins: all), filtered, sorted, keyset-paginated.

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):
        project_id (int | Unset):
        status (TaskStatus | Unset): Where a task stands.
        assignee_id (int | Unset):
        priority (TaskPriority | Unset): How urgent a task is, lowest first.
        due_before (datetime.datetime | Unset):
        due_after (datetime.datetime | Unset):
        q (str | Unset):
        sort (TaskSort | Unset): The orders GET /tasks accepts; a leading '-' means descending.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[PageTaskOut | Problem | ValidationProblem]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        project_id=project_id,
        status=status,
        assignee_id=assignee_id,
        priority=priority,
        due_before=due_before,
        due_after=due_after,
        q=q,
        sort=sort,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    project_id: int | Unset = UNSET,
    status: TaskStatus | Unset = UNSET,
    assignee_id: int | Unset = UNSET,
    priority: TaskPriority | Unset = UNSET,
    due_before: datetime.datetime | Unset = UNSET,
    due_after: datetime.datetime | Unset = UNSET,
    q: str | Unset = UNSET,
    sort: TaskSort | Unset = UNSET,
) -> PageTaskOut | Problem | ValidationProblem | None:
    """Search Tasks

     Tasks in the caller's projects (site admins: all), filtered, sorted, keyset-paginated.

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):
        project_id (int | Unset):
        status (TaskStatus | Unset): Where a task stands.
        assignee_id (int | Unset):
        priority (TaskPriority | Unset): How urgent a task is, lowest first.
        due_before (datetime.datetime | Unset):
        due_after (datetime.datetime | Unset):
        q (str | Unset):
        sort (TaskSort | Unset): The orders GET /tasks accepts; a leading '-' means descending.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        PageTaskOut | Problem | ValidationProblem
    """

    return (
        await asyncio_detailed(
            client=client,
            limit=limit,
            cursor=cursor,
            project_id=project_id,
            status=status,
            assignee_id=assignee_id,
            priority=priority,
            due_before=due_before,
            due_after=due_after,
            q=q,
            sort=sort,
        )
    ).parsed
