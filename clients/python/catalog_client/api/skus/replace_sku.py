from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.sku import Sku
from ...models.sku_in import SkuIn
from ...types import UNSET, Response, Unset


def _get_kwargs(
    sku_id: int,
    *,
    body: SkuIn,
    if_match: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(if_match, Unset):
        headers["If-Match"] = if_match

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/skus/{sku_id}".format(
            sku_id=quote(str(sku_id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Problem | Sku | None:
    if response.status_code == 200:
        response_200 = Sku.from_dict(response.json())

        return response_200

    if response.status_code == 401:
        response_401 = Problem.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = Problem.from_dict(response.json())

        return response_404

    if response.status_code == 412:
        response_412 = Problem.from_dict(response.json())

        return response_412

    if response.status_code == 413:
        response_413 = Problem.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = Problem.from_dict(response.json())

        return response_415

    if response.status_code == 422:
        response_422 = Problem.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = Problem.from_dict(response.json())

        return response_429

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
    client: AuthenticatedClient,
    body: SkuIn,
    if_match: str | Unset = UNSET,
) -> Response[Problem | Sku]:
    """Replace a SKU

     Replace a SKU's size, color, price, currency and stock (all of them).

    Args:
        sku_id (int): The SKU's id.
        if_match (str | Unset): Write only if the resource still has this ETag (from a GET); `*`:
            if it exists. Without it, the write is unconditional.
        body (SkuIn): A SKU as a client writes it: all required, nothing else; a new size or color
            joins.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | Sku]
    """

    kwargs = _get_kwargs(
        sku_id=sku_id,
        body=body,
        if_match=if_match,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    sku_id: int,
    *,
    client: AuthenticatedClient,
    body: SkuIn,
    if_match: str | Unset = UNSET,
) -> Problem | Sku | None:
    """Replace a SKU

     Replace a SKU's size, color, price, currency and stock (all of them).

    Args:
        sku_id (int): The SKU's id.
        if_match (str | Unset): Write only if the resource still has this ETag (from a GET); `*`:
            if it exists. Without it, the write is unconditional.
        body (SkuIn): A SKU as a client writes it: all required, nothing else; a new size or color
            joins.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | Sku
    """

    return sync_detailed(
        sku_id=sku_id,
        client=client,
        body=body,
        if_match=if_match,
    ).parsed


async def asyncio_detailed(
    sku_id: int,
    *,
    client: AuthenticatedClient,
    body: SkuIn,
    if_match: str | Unset = UNSET,
) -> Response[Problem | Sku]:
    """Replace a SKU

     Replace a SKU's size, color, price, currency and stock (all of them).

    Args:
        sku_id (int): The SKU's id.
        if_match (str | Unset): Write only if the resource still has this ETag (from a GET); `*`:
            if it exists. Without it, the write is unconditional.
        body (SkuIn): A SKU as a client writes it: all required, nothing else; a new size or color
            joins.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | Sku]
    """

    kwargs = _get_kwargs(
        sku_id=sku_id,
        body=body,
        if_match=if_match,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    sku_id: int,
    *,
    client: AuthenticatedClient,
    body: SkuIn,
    if_match: str | Unset = UNSET,
) -> Problem | Sku | None:
    """Replace a SKU

     Replace a SKU's size, color, price, currency and stock (all of them).

    Args:
        sku_id (int): The SKU's id.
        if_match (str | Unset): Write only if the resource still has this ETag (from a GET); `*`:
            if it exists. Without it, the write is unconditional.
        body (SkuIn): A SKU as a client writes it: all required, nothing else; a new size or color
            joins.

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
            body=body,
            if_match=if_match,
        )
    ).parsed
