from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.product_out import ProductOut
from ...models.validation_problem import ValidationProblem
from ...types import UNSET, Response


def _get_kwargs(
    product_id: int,
    *,
    delta: int,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["delta"] = delta

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "patch",
        "url": "/api/v2/products/{product_id}/stock".format(
            product_id=quote(str(product_id), safe=""),
        ),
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Problem | ProductOut | ValidationProblem | None:
    if response.status_code == 200:
        response_200 = ProductOut.from_dict(response.json())

        return response_200

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
) -> Response[Problem | ProductOut | ValidationProblem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    product_id: int,
    *,
    client: AuthenticatedClient,
    delta: int,
) -> Response[Problem | ProductOut | ValidationProblem]:
    """Adjust Stock

     Add or remove stock by hand (site admins); 409 if it would go negative.

    Args:
        product_id (int):
        delta (int): Signed change, e.g. 5 or -3 (URL-encode '+' as %2B, or omit it)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ProductOut | ValidationProblem]
    """

    kwargs = _get_kwargs(
        product_id=product_id,
        delta=delta,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    product_id: int,
    *,
    client: AuthenticatedClient,
    delta: int,
) -> Problem | ProductOut | ValidationProblem | None:
    """Adjust Stock

     Add or remove stock by hand (site admins); 409 if it would go negative.

    Args:
        product_id (int):
        delta (int): Signed change, e.g. 5 or -3 (URL-encode '+' as %2B, or omit it)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ProductOut | ValidationProblem
    """

    return sync_detailed(
        product_id=product_id,
        client=client,
        delta=delta,
    ).parsed


async def asyncio_detailed(
    product_id: int,
    *,
    client: AuthenticatedClient,
    delta: int,
) -> Response[Problem | ProductOut | ValidationProblem]:
    """Adjust Stock

     Add or remove stock by hand (site admins); 409 if it would go negative.

    Args:
        product_id (int):
        delta (int): Signed change, e.g. 5 or -3 (URL-encode '+' as %2B, or omit it)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ProductOut | ValidationProblem]
    """

    kwargs = _get_kwargs(
        product_id=product_id,
        delta=delta,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    product_id: int,
    *,
    client: AuthenticatedClient,
    delta: int,
) -> Problem | ProductOut | ValidationProblem | None:
    """Adjust Stock

     Add or remove stock by hand (site admins); 409 if it would go negative.

    Args:
        product_id (int):
        delta (int): Signed change, e.g. 5 or -3 (URL-encode '+' as %2B, or omit it)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ProductOut | ValidationProblem
    """

    return (
        await asyncio_detailed(
            product_id=product_id,
            client=client,
            delta=delta,
        )
    ).parsed
