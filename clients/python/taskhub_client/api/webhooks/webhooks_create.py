from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.validation_problem import ValidationProblem
from ...models.webhook_create_in import WebhookCreateIn
from ...models.webhook_secret_out import WebhookSecretOut
from ...types import Response


def _get_kwargs(
    *,
    body: WebhookCreateIn,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v2/webhooks",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Problem | ValidationProblem | WebhookSecretOut | None:
    if response.status_code == 201:
        response_201 = WebhookSecretOut.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = ValidationProblem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = Problem.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = Problem.from_dict(response.json())

        return response_403

    if response.status_code == 409:
        response_409 = Problem.from_dict(response.json())

        return response_409

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
) -> Response[Problem | ValidationProblem | WebhookSecretOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: WebhookCreateIn,
) -> Response[Problem | ValidationProblem | WebhookSecretOut]:
    """Create Webhook

     Register an endpoint for your orders' events (site admins: `"scope": "all"` for
    every order's). The answer carries the signing secret, shown only here and by
    rotate-secret.

    Args:
        body (WebhookCreateIn): A new endpoint for order events.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ValidationProblem | WebhookSecretOut]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: WebhookCreateIn,
) -> Problem | ValidationProblem | WebhookSecretOut | None:
    """Create Webhook

     Register an endpoint for your orders' events (site admins: `"scope": "all"` for
    every order's). The answer carries the signing secret, shown only here and by
    rotate-secret.

    Args:
        body (WebhookCreateIn): A new endpoint for order events.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ValidationProblem | WebhookSecretOut
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: WebhookCreateIn,
) -> Response[Problem | ValidationProblem | WebhookSecretOut]:
    """Create Webhook

     Register an endpoint for your orders' events (site admins: `"scope": "all"` for
    every order's). The answer carries the signing secret, shown only here and by
    rotate-secret.

    Args:
        body (WebhookCreateIn): A new endpoint for order events.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ValidationProblem | WebhookSecretOut]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: WebhookCreateIn,
) -> Problem | ValidationProblem | WebhookSecretOut | None:
    """Create Webhook

     Register an endpoint for your orders' events (site admins: `"scope": "all"` for
    every order's). The answer carries the signing secret, shown only here and by
    rotate-secret.

    Args:
        body (WebhookCreateIn): A new endpoint for order events.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ValidationProblem | WebhookSecretOut
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
