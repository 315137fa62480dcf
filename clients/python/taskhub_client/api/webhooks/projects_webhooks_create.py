from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.project_webhook_create_in import ProjectWebhookCreateIn
from ...models.validation_problem import ValidationProblem
from ...models.webhook_secret_out import WebhookSecretOut
from ...types import Response


def _get_kwargs(
    project_id: int,
    *,
    body: ProjectWebhookCreateIn,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/projects/{project_id}/webhooks".format(
            project_id=quote(str(project_id), safe=""),
        ),
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

    if response.status_code == 404:
        response_404 = Problem.from_dict(response.json())

        return response_404

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
    project_id: int,
    *,
    client: AuthenticatedClient,
    body: ProjectWebhookCreateIn,
) -> Response[Problem | ValidationProblem | WebhookSecretOut]:
    """Create Project Webhook

     Register an endpoint for the project's task and member events (admin+). The answer
    carries the signing secret, shown only here and by rotate-secret.

    Args:
        project_id (int):
        body (ProjectWebhookCreateIn): A new endpoint for a project's task and member events.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ValidationProblem | WebhookSecretOut]
    """

    kwargs = _get_kwargs(
        project_id=project_id,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    project_id: int,
    *,
    client: AuthenticatedClient,
    body: ProjectWebhookCreateIn,
) -> Problem | ValidationProblem | WebhookSecretOut | None:
    """Create Project Webhook

     Register an endpoint for the project's task and member events (admin+). The answer
    carries the signing secret, shown only here and by rotate-secret.

    Args:
        project_id (int):
        body (ProjectWebhookCreateIn): A new endpoint for a project's task and member events.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ValidationProblem | WebhookSecretOut
    """

    return sync_detailed(
        project_id=project_id,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    project_id: int,
    *,
    client: AuthenticatedClient,
    body: ProjectWebhookCreateIn,
) -> Response[Problem | ValidationProblem | WebhookSecretOut]:
    """Create Project Webhook

     Register an endpoint for the project's task and member events (admin+). The answer
    carries the signing secret, shown only here and by rotate-secret.

    Args:
        project_id (int):
        body (ProjectWebhookCreateIn): A new endpoint for a project's task and member events.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ValidationProblem | WebhookSecretOut]
    """

    kwargs = _get_kwargs(
        project_id=project_id,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    project_id: int,
    *,
    client: AuthenticatedClient,
    body: ProjectWebhookCreateIn,
) -> Problem | ValidationProblem | WebhookSecretOut | None:
    """Create Project Webhook

     Register an endpoint for the project's task and member events (admin+). The answer
    carries the signing secret, shown only here and by rotate-secret.

    Args:
        project_id (int):
        body (ProjectWebhookCreateIn): A new endpoint for a project's task and member events.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ValidationProblem | WebhookSecretOut
    """

    return (
        await asyncio_detailed(
            project_id=project_id,
            client=client,
            body=body,
        )
    ).parsed
