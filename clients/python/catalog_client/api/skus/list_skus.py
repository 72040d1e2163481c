from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.sku_page import SkuPage
from ...types import UNSET, Response, Unset


def _get_kwargs(
    product_id: int,
    *,
    limit: int | Unset = UNSET,
    after: int | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["after"] = after

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/products/{product_id}/skus".format(
            product_id=quote(str(product_id), safe=""),
        ),
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Problem | SkuPage | None:
    if response.status_code == 200:
        response_200 = SkuPage.from_dict(response.json())

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
) -> Response[Problem | SkuPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    product_id: int,
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = UNSET,
    after: int | Unset = UNSET,
) -> Response[Problem | SkuPage]:
    """List a product's SKUs

     The product's SKUs by ascending id, one keyset page at a time.

    Args:
        product_id (int): The product's id.
        limit (int | Unset): Page size (default 20).
        after (int | Unset): Return SKUs after this id (default 0: from the start).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | SkuPage]
    """

    kwargs = _get_kwargs(
        product_id=product_id,
        limit=limit,
        after=after,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    product_id: int,
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = UNSET,
    after: int | Unset = UNSET,
) -> Problem | SkuPage | None:
    """List a product's SKUs

     The product's SKUs by ascending id, one keyset page at a time.

    Args:
        product_id (int): The product's id.
        limit (int | Unset): Page size (default 20).
        after (int | Unset): Return SKUs after this id (default 0: from the start).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | SkuPage
    """

    return sync_detailed(
        product_id=product_id,
        client=client,
        limit=limit,
        after=after,
    ).parsed


async def asyncio_detailed(
    product_id: int,
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = UNSET,
    after: int | Unset = UNSET,
) -> Response[Problem | SkuPage]:
    """List a product's SKUs

     The product's SKUs by ascending id, one keyset page at a time.

    Args:
        product_id (int): The product's id.
        limit (int | Unset): Page size (default 20).
        after (int | Unset): Return SKUs after this id (default 0: from the start).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | SkuPage]
    """

    kwargs = _get_kwargs(
        product_id=product_id,
        limit=limit,
        after=after,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    product_id: int,
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = UNSET,
    after: int | Unset = UNSET,
) -> Problem | SkuPage | None:
    """List a product's SKUs

     The product's SKUs by ascending id, one keyset page at a time.

    Args:
        product_id (int): The product's id.
        limit (int | Unset): Page size (default 20).
        after (int | Unset): Return SKUs after this id (default 0: from the start).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | SkuPage
    """

    return (
        await asyncio_detailed(
            product_id=product_id,
            client=client,
            limit=limit,
            after=after,
        )
    ).parsed
