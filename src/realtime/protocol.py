"""The WebSocket protocol of API.md: close codes, message shapes, parameter rules. No I/O."""

import re

import msgspec

from src.edge.checks import canonical_int
from src.errors import Close as Close  # the close codes live beside the HTTP errors


class Welcome(msgspec.Struct, tag="welcome", tag_field="type"):
    session_id: str
    member_id: str
    users: int
    max_users: int


class Count(msgspec.Struct, tag="count", tag_field="type"):
    session_id: str
    users: int
    max_users: int


class Message(msgspec.Struct, tag="message", tag_field="type"):
    session_id: str
    member_id: str
    text: str


encode = msgspec.json.Encoder().encode


class BadParameter(ValueError):
    """A path or query parameter is invalid; str() is the close reason (4400)."""


SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def parse_session_id(raw: str) -> str:
    if not SESSION_ID.fullmatch(raw):
        raise BadParameter("session_id must be 1-64 characters of A-Z a-z 0-9 _ -")
    return raw


def _integer(raw: str, low: int, high: int) -> int | None:
    """`raw` as an integer in canonical decimal within [low, high], or None (the one
    reading of integers the HTTP edge applies too)."""
    value = canonical_int(raw)
    return value if value is not None and low <= value <= high else None


def parse_max_users(raw: str | None, *, default: int, cap: int) -> int:
    if raw is None:
        return default
    value = _integer(raw, 1, cap)
    if value is None:
        raise BadParameter(f"max_users must be an integer from 1 to {cap}")
    return value


MAX_CHANGE_ID = 2**63 - 1  # change ids are PostgreSQL BIGINTs
MAX_ROW_ID = 2**31 - 1  # brand and product ids are PostgreSQL INTs


def parse_row_id(name: str, raw: str) -> int:
    """A brand or product id (`name` says which) in canonical decimal."""
    value = _integer(raw, 1, MAX_ROW_ID)
    if value is None:
        raise BadParameter(f"{name} must be an integer from 1 to {MAX_ROW_ID}")
    return value


def parse_product_id(raw: str) -> int:
    """/ws/products/{product_id}/viewers: a product id in canonical decimal."""
    return parse_row_id("product_id", raw)


def parse_catalog_filter(
    brand_id: str | None, product_id: str | None
) -> tuple[int | None, int | None]:
    """/ws/catalog's filter, (brand_id, product_id): neither (every change) or one of them,
    a row id in canonical decimal; both together are refused."""
    if brand_id is not None and product_id is not None:
        raise BadParameter("brand_id and product_id cannot be combined; give one of them")
    return (
        None if brand_id is None else parse_row_id("brand_id", brand_id),
        None if product_id is None else parse_row_id("product_id", product_id),
    )


def parse_after(raw: str | None) -> int | None:
    """/ws/catalog's `after`: absent (live only) or a change id, 0 meaning "from the start"."""
    if raw is None:
        return None
    value = _integer(raw, 0, MAX_CHANGE_ID)
    if value is None:
        raise BadParameter(f"after must be a change id: an integer from 0 to {MAX_CHANGE_ID}")
    return value


def full_reason(users: int, capacity: int) -> str:
    return f"session full ({users}/{capacity})"
