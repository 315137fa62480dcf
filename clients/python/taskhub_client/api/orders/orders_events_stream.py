from http import HTTPStatus
from typing import Any
from uuid import UUID

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.orders_events_stream_response_200 import OrdersEventsStreamResponse200
from ...models.problem import Problem
from ...models.validation_problem import ValidationProblem
from ...types import UNSET, Response, Unset


def _get_kwargs(
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
        "url": "/api/v2/orders/events",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> OrdersEventsStreamResponse200 | Problem | ValidationProblem | None:
    if response.status_code == 200:
        response_200 = OrdersEventsStreamResponse200.from_dict(response.text)

        return response_200

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
) -> Response[OrdersEventsStreamResponse200 | Problem | ValidationProblem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    last_event_id_query: None | Unset | UUID = UNSET,
    last_event_id_header: None | Unset | UUID = UNSET,
) -> Response[OrdersEventsStreamResponse200 | Problem | ValidationProblem]:
    """Order Events

     Live events of your orders (a site admin's: every order), as Server-Sent Events.

    Authenticate with `Authorization: Bearer`, or (EventSource) `?ticket=` from
    `POST /api/v1/auth/stream-ticket`. The stream ends within a second when the token ends
    (logout, deactivation, a password change).

    Args:
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
        Response[OrdersEventsStreamResponse200 | Problem | ValidationProblem]
    """

    kwargs = _get_kwargs(
        last_event_id_query=last_event_id_query,
        last_event_id_header=last_event_id_header,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    last_event_id_query: None | Unset | UUID = UNSET,
    last_event_id_header: None | Unset | UUID = UNSET,
) -> OrdersEventsStreamResponse200 | Problem | ValidationProblem | None:
    """Order Events

     Live events of your orders (a site admin's: every order), as Server-Sent Events.

    Authenticate with `Authorization: Bearer`, or (EventSource) `?ticket=` from
    `POST /api/v1/auth/stream-ticket`. The stream ends within a second when the token ends
    (logout, deactivation, a password change).

    Args:
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
        OrdersEventsStreamResponse200 | Problem | ValidationProblem
    """

    return sync_detailed(
        client=client,
        last_event_id_query=last_event_id_query,
        last_event_id_header=last_event_id_header,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    last_event_id_query: None | Unset | UUID = UNSET,
    last_event_id_header: None | Unset | UUID = UNSET,
) -> Response[OrdersEventsStreamResponse200 | Problem | ValidationProblem]:
    """Order Events

     Live events of your orders (a site admin's: every order), as Server-Sent Events.

    Authenticate with `Authorization: Bearer`, or (EventSource) `?ticket=` from
    `POST /api/v1/auth/stream-ticket`. The stream ends within a second when the token ends
    (logout, deactivation, a password change).

    Args:
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
        Response[OrdersEventsStreamResponse200 | Problem | ValidationProblem]
    """

    kwargs = _get_kwargs(
        last_event_id_query=last_event_id_query,
        last_event_id_header=last_event_id_header,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    last_event_id_query: None | Unset | UUID = UNSET,
    last_event_id_header: None | Unset | UUID = UNSET,
) -> OrdersEventsStreamResponse200 | Problem | ValidationProblem | None:
    """Order Events

     Live events of your orders (a site admin's: every order), as Server-Sent Events.

    Authenticate with `Authorization: Bearer`, or (EventSource) `?ticket=` from
    `POST /api/v1/auth/stream-ticket`. The stream ends within a second when the token ends
    (logout, deactivation, a password change).

    Args:
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
        OrdersEventsStreamResponse200 | Problem | ValidationProblem
    """

    return (
        await asyncio_detailed(
            client=client,
            last_event_id_query=last_event_id_query,
            last_event_id_header=last_event_id_header,
        )
    ).parsed
