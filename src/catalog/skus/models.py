"""SKU wire shapes: money in minor units with its ISO 4217 code, stock as a count."""

from __future__ import annotations

from typing import Annotated, get_args

import msgspec

from src.catalog.models import MAX_ID, Name, decode_json, whole_numbers

MAX_DELTA = 1_000_000  # the largest stock change one request may make, either way
MAX_COUNT = MAX_ID  # price and stock are PostgreSQL INTs too

# A size or a color follows the rule for product names (the same pattern), at most 50
# characters (the CHECKs on product_size and product_color).
_NAME_RULE: msgspec.Meta = get_args(Name)[1]
ShortName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=50,
        pattern=_NAME_RULE.pattern,
        description="1 to 50 characters, not only spaces, tabs or line breaks; no NUL.",
    ),
]
Currency = Annotated[
    str,
    # The length as well as the pattern: Python's `$` (msgspec) also matches before a
    # final line break, so "EUR\n" would pass the pattern alone (and fail the CHECK).
    msgspec.Meta(
        min_length=3,
        max_length=3,
        pattern="^[A-Z]{3}$",
        description="An ISO 4217 code: three capital letters.",
        examples=["EUR"],
    ),
]
Delta = Annotated[
    int,
    msgspec.Meta(
        ge=-MAX_DELTA,
        le=MAX_DELTA,
        extra_json_schema={"not": {"const": 0}},
        description="Added to the stock (negative: taken from it); not 0.",
    ),
]


class Sku(msgspec.Struct, frozen=True):
    """A SKU: a size and color of a product, its price and its stock (as the feed has it)."""

    sku_id: int
    product_id: int
    size: str
    color: str
    price: Annotated[int, msgspec.Meta(description="In minor units of `currency` (cents).")]
    currency: str
    stock: Annotated[int, msgspec.Meta(description="How many are in stock.")]


class SkuIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A SKU as a client writes it: all required, nothing else; a new size or color joins."""

    size: ShortName
    color: ShortName
    price: Annotated[
        int,
        msgspec.Meta(
            ge=0, le=MAX_COUNT, description="In minor units of `currency` (cents), 0 or more."
        ),
    ]
    currency: Currency
    stock: Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT, description="How many are in stock.")]


class SkuPage(msgspec.Struct, frozen=True):
    """One keyset page; pass `next_after` as `after` for the next one (null: no more)."""

    items: list[Sku]
    next_after: int | None


class StockChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A change of stock, applied atomically: `delta` is added to it."""

    delta: Delta


def decode_sku_in(body: bytes) -> SkuIn:
    """Decode a SkuIn body (bytes that are not JSON are a 422 saying why)."""
    return msgspec.convert(whole_numbers(decode_json(body), "price", "stock"), SkuIn)


def decode_stock_change(body: bytes) -> StockChange:
    """Decode a StockChange body; a delta of 0 is refused like any out-of-range one."""
    change = msgspec.convert(whole_numbers(decode_json(body), "delta"), StockChange)
    if change.delta == 0:
        raise msgspec.ValidationError("Expected a non-zero `int` - at `$.delta`")
    return change
