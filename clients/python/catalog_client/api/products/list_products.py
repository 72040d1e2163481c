from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.product_page import ProductPage
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    brand_id: int | Unset = UNSET,
    limit: int | Unset = UNSET,
    after: int | Unset = UNSET,
    q: str | Unset = UNSET,
    min_price: int | Unset = UNSET,
    max_price: int | Unset = UNSET,
    in_stock: bool | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["brand_id"] = brand_id

    params["limit"] = limit

    params["after"] = after

    params["q"] = q

    params["min_price"] = min_price

    params["max_price"] = max_price

    params["in_stock"] = in_stock

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/products",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Problem | ProductPage | None:
    if response.status_code == 200:
        response_200 = ProductPage.from_dict(response.json())

        return response_200

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
) -> Response[Problem | ProductPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    brand_id: int | Unset = UNSET,
    limit: int | Unset = UNSET,
    after: int | Unset = UNSET,
    q: str | Unset = UNSET,
    min_price: int | Unset = UNSET,
    max_price: int | Unset = UNSET,
    in_stock: bool | Unset = UNSET,
) -> Response[Problem | ProductPage]:
    """List products

     Products by ascending id, one keyset page at a time; the filters given combine.

    Args:
        brand_id (int | Unset): Only this brand's products.
        limit (int | Unset): Page size (default 20).
        after (int | Unset): Return products after this id (default 0: from the start).
        q (str | Unset): Only products whose name contains this text, in any case: 1 to 100
            characters, taken as they are (`%`, `_` and `\\` are not wildcards).
        min_price (int | Unset): Only products with a SKU priced at least this, in minor units
            (with max_price: a SKU priced in the range, ends included; above max_price is a 422).
        max_price (int | Unset): Only products with a SKU priced at most this, in minor units.
        in_stock (bool | Unset): `true`: only products with a SKU in stock (with a price range: a
            SKU in the range and in stock). `false`, the default, filters nothing.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ProductPage]
    """

    kwargs = _get_kwargs(
        brand_id=brand_id,
        limit=limit,
        after=after,
        q=q,
        min_price=min_price,
        max_price=max_price,
        in_stock=in_stock,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    brand_id: int | Unset = UNSET,
    limit: int | Unset = UNSET,
    after: int | Unset = UNSET,
    q: str | Unset = UNSET,
    min_price: int | Unset = UNSET,
    max_price: int | Unset = UNSET,
    in_stock: bool | Unset = UNSET,
) -> Problem | ProductPage | None:
    """List products

     Products by ascending id, one keyset page at a time; the filters given combine.

    Args:
        brand_id (int | Unset): Only this brand's products.
        limit (int | Unset): Page size (default 20).
        after (int | Unset): Return products after this id (default 0: from the start).
        q (str | Unset): Only products whose name contains this text, in any case: 1 to 100
            characters, taken as they are (`%`, `_` and `\\` are not wildcards).
        min_price (int | Unset): Only products with a SKU priced at least this, in minor units
            (with max_price: a SKU priced in the range, ends included; above max_price is a 422).
        max_price (int | Unset): Only products with a SKU priced at most this, in minor units.
        in_stock (bool | Unset): `true`: only products with a SKU in stock (with a price range: a
            SKU in the range and in stock). `false`, the default, filters nothing.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ProductPage
    """

    return sync_detailed(
        client=client,
        brand_id=brand_id,
        limit=limit,
        after=after,
        q=q,
        min_price=min_price,
        max_price=max_price,
        in_stock=in_stock,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    brand_id: int | Unset = UNSET,
    limit: int | Unset = UNSET,
    after: int | Unset = UNSET,
    q: str | Unset = UNSET,
    min_price: int | Unset = UNSET,
    max_price: int | Unset = UNSET,
    in_stock: bool | Unset = UNSET,
) -> Response[Problem | ProductPage]:
    """List products

     Products by ascending id, one keyset page at a time; the filters given combine.

    Args:
        brand_id (int | Unset): Only this brand's products.
        limit (int | Unset): Page size (default 20).
        after (int | Unset): Return products after this id (default 0: from the start).
        q (str | Unset): Only products whose name contains this text, in any case: 1 to 100
            characters, taken as they are (`%`, `_` and `\\` are not wildcards).
        min_price (int | Unset): Only products with a SKU priced at least this, in minor units
            (with max_price: a SKU priced in the range, ends included; above max_price is a 422).
        max_price (int | Unset): Only products with a SKU priced at most this, in minor units.
        in_stock (bool | Unset): `true`: only products with a SKU in stock (with a price range: a
            SKU in the range and in stock). `false`, the default, filters nothing.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | ProductPage]
    """

    kwargs = _get_kwargs(
        brand_id=brand_id,
        limit=limit,
        after=after,
        q=q,
        min_price=min_price,
        max_price=max_price,
        in_stock=in_stock,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    brand_id: int | Unset = UNSET,
    limit: int | Unset = UNSET,
    after: int | Unset = UNSET,
    q: str | Unset = UNSET,
    min_price: int | Unset = UNSET,
    max_price: int | Unset = UNSET,
    in_stock: bool | Unset = UNSET,
) -> Problem | ProductPage | None:
    """List products

     Products by ascending id, one keyset page at a time; the filters given combine.

    Args:
        brand_id (int | Unset): Only this brand's products.
        limit (int | Unset): Page size (default 20).
        after (int | Unset): Return products after this id (default 0: from the start).
        q (str | Unset): Only products whose name contains this text, in any case: 1 to 100
            characters, taken as they are (`%`, `_` and `\\` are not wildcards).
        min_price (int | Unset): Only products with a SKU priced at least this, in minor units
            (with max_price: a SKU priced in the range, ends included; above max_price is a 422).
        max_price (int | Unset): Only products with a SKU priced at most this, in minor units.
        in_stock (bool | Unset): `true`: only products with a SKU in stock (with a price range: a
            SKU in the range and in stock). `false`, the default, filters nothing.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | ProductPage
    """

    return (
        await asyncio_detailed(
            client=client,
            brand_id=brand_id,
            limit=limit,
            after=after,
            q=q,
            min_price=min_price,
            max_price=max_price,
            in_stock=in_stock,
        )
    ).parsed
