"""The catalog's wire shapes: msgspec Structs shared by routes, queries and the schema."""

from __future__ import annotations

from typing import Annotated

import msgspec
from lihil.problems import CustomValidationError

MAX_ID = 2**31 - 1  # PostgreSQL INT: larger ids can never exist, so they are client errors
MAX_PRICE = 2**31 - 1  # sku.price is an INT too (minor units)
Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="A positive 32-bit id.")]
Name = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        # At least one character besides ASCII spaces, tabs and line breaks, and no NUL
        # (PostgreSQL's text cannot hold it). Not `\S`: JSON Schema's (ECMA-262) and
        # Python's whitespace differ (U+001E, say). Read alike by both.
        pattern=r"^[^\u0000]*[^\u0000\t\n\v\f\r ][^\u0000]*$",
        description="1 to 200 characters, not only spaces, tabs or line breaks; no NUL.",
    ),
]


class Brand(msgspec.Struct, frozen=True):
    """A brand of the catalog."""

    brand_id: int
    brand_name: str


class BrandIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A brand as a client writes it: its name, nothing else accepted."""

    brand_name: Name


class Product(msgspec.Struct, frozen=True):
    """A product: its id, its name and the id of its brand."""

    product_id: int
    product_name: str
    brand_id: int


class ProductIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A product as a client writes it: both fields required, nothing else accepted."""

    product_name: Name
    brand_id: Id


class ProductPage(msgspec.Struct, frozen=True):
    """One keyset page; pass `next_after` as `after` for the next one (null: no more)."""

    items: list[Product]
    next_after: int | None


def decode_json(body: bytes) -> object:
    """Any JSON body, or a 422 saying what is wrong with its bytes. msgspec raises more than
    DecodeError for some bytes (UnicodeDecodeError for a string that is not UTF-8,
    RecursionError past its nesting limit): each would be a 500."""
    try:
        return msgspec.json.decode(body)
    except UnicodeDecodeError:
        reason = "the body is not valid UTF-8 (JSON text must be)"
    except RecursionError:
        reason = "the body's JSON is nested too deeply"
    except msgspec.DecodeError as exc:  # its " - at `$[...]`" names no field: dropped
        reason = f"the body is not valid JSON: {str(exc).split(' - at ')[0]}"
    raise CustomValidationError(detail=reason)


def decode_brand_in(body: bytes) -> BrandIn:
    """Decode a BrandIn body (bytes that are not JSON are a 422 saying why)."""
    return msgspec.convert(decode_json(body), BrandIn)


def whole_numbers(data: object, *fields: str) -> object:
    """JSON Schema counts 7.0 as an integer: in a body object, such a float in one of
    `fields` becomes the int it stands for; anything else is left for msgspec to judge, as
    strictly as ever (no "7" for 7, no unknown fields)."""
    if isinstance(data, dict):
        for field in fields:
            value = data.get(field)
            if isinstance(value, float) and value.is_integer():
                data[field] = int(value)
    return data


def decode_product_in(body: bytes) -> ProductIn:
    """Decode a ProductIn body (brand_id 7.0 is 7: `whole_numbers`)."""
    return msgspec.convert(whole_numbers(decode_json(body), "brand_id"), ProductIn)


def decode_true_or_false(text: str) -> bool:
    """A boolean query parameter: `true` or `false`, nothing else (msgspec would also read
    `1`, `0` and other spellings)."""
    if text == "true":
        return True
    if text == "false":
        return False
    raise CustomValidationError(detail=f"expected true or false, not {text[:20]!r}")
