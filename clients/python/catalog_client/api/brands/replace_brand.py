from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.brand import Brand
from ...models.brand_in import BrandIn
from ...models.problem import Problem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    brand_id: int,
    *,
    body: BrandIn,
    if_match: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(if_match, Unset):
        headers["If-Match"] = if_match

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/brands/{brand_id}".format(
            brand_id=quote(str(brand_id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Brand | Problem | None:
    if response.status_code == 200:
        response_200 = Brand.from_dict(response.json())

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
) -> Response[Brand | Problem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    brand_id: int,
    *,
    client: AuthenticatedClient,
    body: BrandIn,
    if_match: str | Unset = UNSET,
) -> Response[Brand | Problem]:
    """Rename a brand

     Replace a brand's name.

    Args:
        brand_id (int): The brand's id.
        if_match (str | Unset): Write only if the resource still has this ETag (from a GET); `*`:
            if it exists. Without it, the write is unconditional.
        body (BrandIn): A brand as a client writes it: its name, nothing else accepted.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Brand | Problem]
    """

    kwargs = _get_kwargs(
        brand_id=brand_id,
        body=body,
        if_match=if_match,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    brand_id: int,
    *,
    client: AuthenticatedClient,
    body: BrandIn,
    if_match: str | Unset = UNSET,
) -> Brand | Problem | None:
    """Rename a brand

     Replace a brand's name.

    Args:
        brand_id (int): The brand's id.
        if_match (str | Unset): Write only if the resource still has this ETag (from a GET); `*`:
            if it exists. Without it, the write is unconditional.
        body (BrandIn): A brand as a client writes it: its name, nothing else accepted.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Brand | Problem
    """

    return sync_detailed(
        brand_id=brand_id,
        client=client,
        body=body,
        if_match=if_match,
    ).parsed


async def asyncio_detailed(
    brand_id: int,
    *,
    client: AuthenticatedClient,
    body: BrandIn,
    if_match: str | Unset = UNSET,
) -> Response[Brand | Problem]:
    """Rename a brand

     Replace a brand's name.

    Args:
        brand_id (int): The brand's id.
        if_match (str | Unset): Write only if the resource still has this ETag (from a GET); `*`:
            if it exists. Without it, the write is unconditional.
        body (BrandIn): A brand as a client writes it: its name, nothing else accepted.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Brand | Problem]
    """

    kwargs = _get_kwargs(
        brand_id=brand_id,
        body=body,
        if_match=if_match,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    brand_id: int,
    *,
    client: AuthenticatedClient,
    body: BrandIn,
    if_match: str | Unset = UNSET,
) -> Brand | Problem | None:
    """Rename a brand

     Replace a brand's name.

    Args:
        brand_id (int): The brand's id.
        if_match (str | Unset): Write only if the resource still has this ETag (from a GET); `*`:
            if it exists. Without it, the write is unconditional.
        body (BrandIn): A brand as a client writes it: its name, nothing else accepted.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Brand | Problem
    """

    return (
        await asyncio_detailed(
            brand_id=brand_id,
            client=client,
            body=body,
            if_match=if_match,
        )
    ).parsed
