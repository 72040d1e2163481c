from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.sku import Sku
from ...types import Response


def _get_kwargs(
    sku_id: int,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/skus/{sku_id}".format(
            sku_id=quote(str(sku_id), safe=""),
        ),
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Problem | Sku | None:
    if response.status_code == 200:
        response_200 = Sku.from_dict(response.json())

        return response_200

    if response.status_code == 404:
        response_404 = Problem.from_dict(response.json())

        return response_404

    if response.status_code == 422:
        response_422 = Problem.from_dict(response.json())

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
) -> Response[Problem | Sku]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    sku_id: int,
    *,
    client: AuthenticatedClient | Client,
) -> Response[Problem | Sku]:
    """Get a SKU

     One SKU by id.

    Args:
        sku_id (int): The SKU's id.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | Sku]
    """

    kwargs = _get_kwargs(
        sku_id=sku_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    sku_id: int,
    *,
    client: AuthenticatedClient | Client,
) -> Problem | Sku | None:
    """Get a SKU

     One SKU by id.

    Args:
        sku_id (int): The SKU's id.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | Sku
    """

    return sync_detailed(
        sku_id=sku_id,
        client=client,
    ).parsed


async def asyncio_detailed(
    sku_id: int,
    *,
    client: AuthenticatedClient | Client,
) -> Response[Problem | Sku]:
    """Get a SKU

     One SKU by id.

    Args:
        sku_id (int): The SKU's id.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | Sku]
    """

    kwargs = _get_kwargs(
        sku_id=sku_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    sku_id: int,
    *,
    client: AuthenticatedClient | Client,
) -> Problem | Sku | None:
    """Get a SKU

     One SKU by id.

    Args:
        sku_id (int): The SKU's id.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | Sku
    """

    return (
        await asyncio_detailed(
            sku_id=sku_id,
            client=client,
        )
    ).parsed
