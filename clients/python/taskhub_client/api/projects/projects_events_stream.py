from http import HTTPStatus
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.projects_events_stream_response_200 import ProjectsEventsStreamResponse200
from ...models.validation_problem import ValidationProblem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    project_id: int,
    *,
    last_event_id_query: None | Unset | UUID = UNSET,
    last_event_id_header: None | Unset | UUID = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(last_event_id_header, Unset):
        headers["Last-Event-ID"] = last_event_id_header

    params: dict[str, Any] = {}

    json_last_event_id_query: None | str | Unset
    if isinstance(last_event_id_query, Unset):
        json_last_event_id_query = UNSET
    elif isinstance(last_event_id_query, UUID):
        json_last_event_id_query = str(last_event_id_query)
    else:
        json_last_event_id_query = last_event_id_query
    params["last_event_id"] = json_last_event_id_query

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/projects/{project_id}/events".format(
            project_id=quote(str(project_id), safe=""),
        ),
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Problem | ProjectsEventsStreamResponse200 | ValidationProblem | None:
    if response.status_code == 200:
        response_200 = ProjectsEventsStreamResponse200.from_dict(response.text)

        return response_200

    if response.status_code == 401:
        response_401 = Problem.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = Problem.from_dict(response.json())

        return response_404

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
) -> Response[Problem | ProjectsEventsStreamResponse200 | ValidationProblem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    project_id: int,
    *,
    client: AuthenticatedClient,
    last_event_id_query: None | Unset | UUID = UNSET,
    last_event_id_header: None | Unset | UUID = UNSET,
) -> Response[Problem | ProjectsEventsStreamResponse200 | ValidationProblem]:
    """Project Events

     Live task and member events of a project, as Server-Sent Events (members only).

    Authenticate as for the orders stream. The stream ends within a second when the caller
    is removed from the project, or the token ends.

    Args:
        project_id (int):
        last_event_id_query (None | Unset | UUID): `Last-Event-ID`, for clients that cannot send
            the header
        last_event_id_header (None | Unset | UUID): Resume after this event (the `id` of the last
            message received; EventSource sends it when it reconnects): the events missed since are
            sent first, from the last hour, in order and once each. An id no longer known: the whole
            hour

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ProjectsEventsStreamResponse200 | ValidationProblem]
    """

    kwargs = _get_kwargs(
        project_id=project_id,
        last_event_id_query=last_event_id_query,
        last_event_id_header=last_event_id_header,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    project_id: int,
    *,
    client: AuthenticatedClient,
    last_event_id_query: None | Unset | UUID = UNSET,
    last_event_id_header: None | Unset | UUID = UNSET,
) -> Problem | ProjectsEventsStreamResponse200 | ValidationProblem | None:
    """Project Events

     Live task and member events of a project, as Server-Sent Events (members only).

    Authenticate as for the orders stream. The stream ends within a second when the caller
    is removed from the project, or the token ends.

    Args:
        project_id (int):
        last_event_id_query (None | Unset | UUID): `Last-Event-ID`, for clients that cannot send
            the header
        last_event_id_header (None | Unset | UUID): Resume after this event (the `id` of the last
            message received; EventSource sends it when it reconnects): the events missed since are
            sent first, from the last hour, in order and once each. An id no longer known: the whole
            hour

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ProjectsEventsStreamResponse200 | ValidationProblem
    """

    return sync_detailed(
        project_id=project_id,
        client=client,
        last_event_id_query=last_event_id_query,
        last_event_id_header=last_event_id_header,
    ).parsed


async def asyncio_detailed(
    project_id: int,
    *,
    client: AuthenticatedClient,
    last_event_id_query: None | Unset | UUID = UNSET,
    last_event_id_header: None | Unset | UUID = UNSET,
) -> Response[Problem | ProjectsEventsStreamResponse200 | ValidationProblem]:
    """Project Events

     Live task and member events of a project, as Server-Sent Events (members only).

    Authenticate as for the orders stream. The stream ends within a second when the caller
    is removed from the project, or the token ends.

    Args:
        project_id (int):
        last_event_id_query (None | Unset | UUID): `Last-Event-ID`, for clients that cannot send
            the header
        last_event_id_header (None | Unset | UUID): Resume after this event (the `id` of the last
            message received; EventSource sends it when it reconnects): the events missed since are
            sent first, from the last hour, in order and once each. An id no longer known: the whole
            hour

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ProjectsEventsStreamResponse200 | ValidationProblem]
    """

    kwargs = _get_kwargs(
        project_id=project_id,
        last_event_id_query=last_event_id_query,
        last_event_id_header=last_event_id_header,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    project_id: int,
    *,
    client: AuthenticatedClient,
    last_event_id_query: None | Unset | UUID = UNSET,
    last_event_id_header: None | Unset | UUID = UNSET,
) -> Problem | ProjectsEventsStreamResponse200 | ValidationProblem | None:
    """Project Events

     Live task and member events of a project, as Server-Sent Events (members only).

    Authenticate as for the orders stream. The stream ends within a second when the caller
    is removed from the project, or the token ends.

    Args:
        project_id (int):
        last_event_id_query (None | Unset | UUID): `Last-Event-ID`, for clients that cannot send
            the header
        last_event_id_header (None | Unset | UUID): Resume after this event (the `id` of the last
            message received; EventSource sends it when it reconnects): the events missed since are
            sent first, from the last hour, in order and once each. An id no longer known: the whole
            hour

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ProjectsEventsStreamResponse200 | ValidationProblem
    """

    return (
        await asyncio_detailed(
            project_id=project_id,
            client=client,
            last_event_id_query=last_event_id_query,
            last_event_id_header=last_event_id_header,
        )
    ).parsed
