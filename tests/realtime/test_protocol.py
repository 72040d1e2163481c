"""Parameter rules and message shapes of the WebSocket protocol."""

import msgspec
import pytest

from src.realtime.protocol import (
    BadParameter,
    Count,
    Welcome,
    encode,
    full_reason,
    parse_after,
    parse_catalog_filter,
    parse_max_users,
    parse_session_id,
)


@pytest.mark.parametrize("raw", ["a", "A-b_9", "x" * 64])
def test_session_id_accepts_the_documented_alphabet(raw: str) -> None:
    """1-64 characters of A-Z a-z 0-9 _ - are valid session ids."""
    assert parse_session_id(raw) == raw


@pytest.mark.parametrize("raw", ["", "x" * 65, "a b", "é", "a/b", "a.b", "a%20"])
def test_session_id_rejects_anything_else(raw: str) -> None:
    """Anything else is a BadParameter naming session_id."""
    with pytest.raises(BadParameter, match="session_id"):
        parse_session_id(raw)


def test_max_users_defaults_and_bounds() -> None:
    """Absent means the default; 1..cap is accepted."""
    assert parse_max_users(None, default=10, cap=1000) == 10
    assert parse_max_users("1", default=10, cap=1000) == 1
    assert parse_max_users("1000", default=10, cap=1000) == 1000


@pytest.mark.parametrize("raw", ["0", "1001", "-1", "five", "", "1.5", "٣", " 3", "9" * 5000])
def test_max_users_rejects_out_of_range_or_non_integers(raw: str) -> None:
    """The reason names max_users and its range."""
    with pytest.raises(BadParameter, match="max_users must be an integer from 1 to 1000"):
        parse_max_users(raw, default=10, cap=1000)


def test_after_is_absent_or_a_change_id() -> None:
    """Absent means live only; 0 means from the start."""
    assert parse_after(None) is None
    assert parse_after("0") == 0
    assert parse_after("42") == 42
    assert parse_after(str(2**63 - 1)) == 2**63 - 1


@pytest.mark.parametrize(
    "raw", ["-1", "x", "", "1e3", str(2**63), "1" * 5000, "٣", "05", "0042", "0" * 5000 + "7"]
)
def test_after_rejects_anything_else(raw: str) -> None:
    """The reason names after and its range (a 5,000-digit value included: int() itself
    would raise a ValueError of its own there). /ws/catalog?after=05 was accepted: integers
    are canonical decimal everywhere, as on HTTP."""
    with pytest.raises(BadParameter, match="after must be a change id"):
        parse_after(raw)


def test_the_catalog_filter_is_a_brand_or_a_product_or_nothing() -> None:
    """(brand_id, product_id): neither, or one row id in canonical decimal, 1..2**31-1."""
    assert parse_catalog_filter(None, None) == (None, None)
    assert parse_catalog_filter("7", None) == (7, None)
    assert parse_catalog_filter(None, "2147483647") == (None, 2**31 - 1)


@pytest.mark.parametrize(
    ("brand_id", "product_id", "reason"),
    [
        ("1", "1", "brand_id and product_id cannot be combined"),
        ("0", None, "brand_id must be an integer from 1 to 2147483647"),
        (None, "2147483648", "product_id must be an integer from 1 to 2147483647"),
        (None, "07", "product_id must be an integer"),
        ("", None, "brand_id must be an integer"),
    ],
)
def test_the_catalog_filter_rejects_anything_else(
    brand_id: str | None, product_id: str | None, reason: str
) -> None:
    with pytest.raises(BadParameter, match=reason):
        parse_catalog_filter(brand_id, product_id)


def test_messages_carry_their_type_tag() -> None:
    """Welcome and count frames are JSON objects with a `type` member."""
    welcome = msgspec.json.decode(encode(Welcome("s", "m-1", 1, 5)))
    assert welcome == {
        "type": "welcome",
        "session_id": "s",
        "member_id": "m-1",
        "users": 1,
        "max_users": 5,
    }
    assert msgspec.json.decode(encode(Count("s", 2, 5)))["type"] == "count"
    assert full_reason(5, 5) == "session full (5/5)"
