"""GET /products' filters (q, min_price and max_price, in_stock, with brand_id): every page
walked to the end and compared with the answer Python computes from the rows plain SQL
reads; and each bad value refused with a 422 naming its parameter."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from lihil.vendors import TestClient

from src.catalog.models import MAX_PRICE
from src.catalog.queries import like_pattern, trigram_searchable
from src.edge.checks import INTEGER_MESSAGE
from tests.catalog.test_routes import assert_problem

Filters = dict[str, Any]  # GET /products' query parameters, as the test names them


@dataclass
class Catalog:
    """The catalog as plain SQL reads it, and the products each filter keeps, by brute force."""

    products: list[dict[str, Any]]
    skus: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # (price, stock)

    @classmethod
    async def read(cls, sql: asyncpg.Connection) -> "Catalog":
        rows = await sql.fetch(
            "SELECT product_id, product_name, brand_id FROM product ORDER BY product_id"
        )
        catalog = cls([dict(r) for r in rows])
        for product_id, price, stock in await sql.fetch("SELECT product_id, price, stock FROM sku"):
            catalog.skus.setdefault(product_id, []).append((price, stock))
        return catalog

    def matching(self, filters: Filters) -> list[dict[str, Any]]:
        q = filters.get("q")
        low, high = filters.get("min_price"), filters.get("max_price")
        priced = low is not None or high is not None
        low, high = low or 0, MAX_PRICE if high is None else high
        in_stock = filters.get("in_stock") == "true"
        brand_id = filters.get("brand_id")
        kept = []
        for product in self.products:
            skus = self.skus.get(product["product_id"], [])
            if brand_id is not None and product["brand_id"] != brand_id:
                continue
            if q is not None and q.lower() not in product["product_name"].lower():
                continue
            if priced and not any(
                low <= price <= high and (stock > 0 or not in_stock) for price, stock in skus
            ):
                continue
            if in_stock and not any(stock > 0 for _, stock in skus):
                continue
            kept.append(product)
        return kept


def walk(client: TestClient, filters: Filters, limit: int) -> Iterator[dict[str, Any]]:
    """Every product of every page, following next_after to the end; each page but the last
    is full and names its last product as next_after."""
    after = 0
    while True:
        response = client.get("/products", params={**filters, "limit": limit, "after": after})
        assert response.status_code == 200, response.text
        page = response.json()
        yield from page["items"]
        if page["next_after"] is None:
            return
        assert len(page["items"]) == limit
        after = page["items"][-1]["product_id"]
        assert page["next_after"] == after


def assert_pages(client: TestClient, catalog: Catalog, filters: Filters, limit: int) -> int:
    """The pages of `filters` list exactly the matching products, each once, in id order;
    and a page as long as the whole answer is the last (next_after null). Returns how
    many products matched."""
    expected = catalog.matching(filters)
    assert list(walk(client, filters, limit)) == expected, (filters, limit)
    whole = client.get("/products", params={**filters, "limit": max(1, min(len(expected), 100))})
    assert whole.json()["next_after"] is None or len(expected) > 100, filters
    return len(expected)


@pytest.fixture
async def catalog(sql: asyncpg.Connection) -> Catalog:
    """The demo catalog made selective for the SKU filters: products whose id is a multiple
    of 3 have no SKU in stock, others every second SKU; some have none at all; and names
    with the characters LIKE gives a meaning to. (Triggers off: a test's own database, and
    its feed is not under test.)"""
    await sql.execute("ALTER TABLE sku DISABLE TRIGGER USER")
    await sql.execute("ALTER TABLE product DISABLE TRIGGER USER")
    await sql.execute("UPDATE sku SET stock = 0 WHERE product_id % 3 = 0 OR sku_id % 2 = 0")
    await sql.execute("DELETE FROM sku WHERE product_id % 50 = 7")
    await sql.executemany(
        "UPDATE product SET product_name = $2 WHERE product_id = $1",
        [
            (11, "Half 50% off"),
            (12, "50 percent"),
            (13, "snake_case kettle"),
            (14, "snakeXcase kettle"),
            (15, "back\\slash"),
            (16, "back slash"),
            (17, "A" * 100),
            (18, "%_\\"),
        ],
    )
    await sql.execute("ALTER TABLE sku ENABLE TRIGGER USER")
    await sql.execute("ALTER TABLE product ENABLE TRIGGER USER")
    return await Catalog.read(sql)


async def some_price(sql: asyncpg.Connection, rank: int) -> int:
    """A price SKUs have: the `rank`-th most common, so a narrow range still matches some."""
    price: int = await sql.fetchval(
        "SELECT price FROM sku GROUP BY price ORDER BY count(*) DESC, price LIMIT 1 OFFSET $1",
        rank,
    )
    return price


async def test_q_keeps_names_containing_it_in_any_case(
    client: TestClient, catalog: Catalog
) -> None:
    """q: a case-insensitive substring of the name, short or long, common or rare."""
    name = catalog.products[41]["product_name"]
    counts = {}
    for q in ["ka", "KA", "kA", "k", "Z", "ri ", " Ra", "a M", name, name.upper(), "zzzq"]:
        counts[q] = assert_pages(client, catalog, {"q": q}, limit=50)
    assert counts["ka"] == counts["KA"] == counts["kA"] > 50  # several pages
    assert counts[name] >= 1 and counts["zzzq"] == 0


async def test_q_treats_percent_underscore_and_backslash_as_plain_characters(
    client: TestClient, catalog: Catalog
) -> None:
    """`%`, `_` and `\\` in q are the characters themselves, not LIKE's wildcards."""
    names = {
        q: [p["product_name"] for p in walk(client, {"q": q}, limit=100)]
        for q in ["%", "_", "\\", "0%", "e_c", "k\\s", "%_\\", "%%"]
    }
    assert names == {
        "%": ["Half 50% off", "%_\\"],
        "_": ["snake_case kettle", "%_\\"],
        "\\": ["back\\slash", "%_\\"],
        "0%": ["Half 50% off"],
        "e_c": ["snake_case kettle"],
        "k\\s": ["back\\slash"],
        "%_\\": ["%_\\"],
        "%%": [],
    }


async def test_q_of_one_and_of_a_hundred_characters(client: TestClient, catalog: Catalog) -> None:
    """The shortest and the longest q are searched; one character more is a 422."""
    assert_pages(client, catalog, {"q": "x"}, limit=100)
    assert [p["product_id"] for p in walk(client, {"q": "a" * 100}, limit=5)] == [17]
    body = assert_problem(client.get("/products", params={"q": "a" * 101}), 422, "invalid-request")
    assert [(e["location"], e["field"]) for e in body["errors"]] == [("query", "q")]


@pytest.mark.parametrize("limit", [1, 7, 100])
async def test_price_ranges_keep_products_with_a_sku_priced_in_them(
    client: TestClient, catalog: Catalog, sql: asyncpg.Connection, limit: int
) -> None:
    """min_price and max_price, alone or together, ends included; a range no SKU is in."""
    price = await some_price(sql, 0)
    other = await some_price(sql, 5)
    cases: list[Filters] = [
        {"min_price": price, "max_price": price},
        {"min_price": min(price, other), "max_price": max(price, other) + 1},
        {"min_price": price + 1, "max_price": price + 1},  # prices end in 9: no SKU
        {"min_price": 19_999},
        {"max_price": 499},
    ]
    if limit == 100:  # the wide ranges match most products: pages of 100 are enough
        cases += [{"min_price": 0}, {"max_price": MAX_PRICE}, {"min_price": 5000}]
    counts = [assert_pages(client, catalog, filters, limit) for filters in cases]
    assert counts[0] > 10 and counts[2] == 0


@pytest.mark.parametrize("limit", [3, 100])
async def test_in_stock_keeps_products_with_a_sku_in_stock(
    client: TestClient, catalog: Catalog, limit: int
) -> None:
    """in_stock=true: a SKU with stock; in_stock=false is no filter at all."""
    in_stock = assert_pages(client, catalog, {"in_stock": "true"}, limit)
    assert 0 < in_stock < len(catalog.products)
    everything = list(walk(client, {}, limit=100))
    assert list(walk(client, {"in_stock": "false"}, limit=100)) == everything


async def test_price_and_in_stock_ask_for_one_sku_both_in_range_and_in_stock(
    client: TestClient, sql: asyncpg.Connection
) -> None:
    """A product whose SKU in the range is sold out and whose SKU in stock is outside it is
    not kept; keep it in range and in stock, and it is."""
    await sql.execute("DELETE FROM sku WHERE product_id = 5")
    await sql.execute(
        "INSERT INTO sku (product_id, product_size_id, product_color_id, price, currency, stock)"
        " VALUES (5, 1, 1, 7, 'EUR', 0), (5, 1, 2, 9, 'EUR', 3)"
    )
    seven = {"min_price": 7, "max_price": 7}

    def ids(filters: Filters) -> list[int]:
        return [p["product_id"] for p in walk(client, filters, limit=100)]

    assert ids(seven) == [5]
    assert 5 in ids({"in_stock": "true", "max_price": 100})
    assert ids({**seven, "in_stock": "true"}) == []
    await sql.execute("UPDATE sku SET stock = 1 WHERE product_id = 5 AND price = 7")
    assert ids({**seven, "in_stock": "true"}) == [5]


async def test_filters_combine_with_each_other_and_with_brand(
    client: TestClient, catalog: Catalog, sql: asyncpg.Connection
) -> None:
    """Every combination of q, a price range, in_stock and brand_id keeps what all keep."""
    price = await some_price(sql, 1)
    brand_id = catalog.products[99]["brand_id"]
    cases: list[tuple[Filters, int]] = [
        ({"q": "a", "in_stock": "true"}, 100),
        ({"q": "ka", "min_price": price, "max_price": price + 2000}, 5),
        ({"q": "ri", "min_price": price, "max_price": price, "in_stock": "true"}, 2),
        ({"min_price": price, "max_price": price, "in_stock": "true"}, 4),
        ({"max_price": 3000, "in_stock": "true"}, 100),
        ({"brand_id": brand_id, "q": "a"}, 2),
        ({"brand_id": brand_id, "in_stock": "true"}, 3),
        ({"brand_id": brand_id, "min_price": 1000, "max_price": 5000}, 3),
        ({"brand_id": brand_id, "q": "e", "max_price": 9000, "in_stock": "true"}, 1),
        ({"brand_id": brand_id, "q": "no such name"}, 20),
    ]
    for filters, limit in cases:
        assert_pages(client, catalog, filters, limit)


async def test_a_sku_change_changes_the_filtered_pages_at_once(
    client: TestClient, sql: asyncpg.Connection
) -> None:
    """A price or stock changed with plain SQL is what the very next page filters by (and
    the statements PostgreSQL has cached for these pages still answer right)."""
    sku_id = await sql.fetchval("SELECT min(sku_id) FROM sku WHERE product_id = 9")
    await sql.execute("UPDATE sku SET price = 123456, stock = 0 WHERE sku_id = $1", sku_id)
    priced = {"min_price": 123456, "max_price": 123456}

    def ids(filters: Filters) -> list[int]:
        return [p["product_id"] for p in walk(client, filters, limit=10)]

    for _ in range(7):  # past the five executions after which a statement may go generic
        assert ids(priced) == [9]
        assert ids({**priced, "in_stock": "true"}) == []
    await sql.execute("UPDATE sku SET stock = 4 WHERE sku_id = $1", sku_id)
    assert ids({**priced, "in_stock": "true"}) == [9]
    await sql.execute("UPDATE sku SET price = 654321 WHERE sku_id = $1", sku_id)
    assert ids(priced) == []
    assert ids({"min_price": 654321}) == [9]
    await sql.execute("UPDATE sku SET stock = 0 WHERE product_id = 9")
    assert ids({"min_price": 654321, "in_stock": "true"}) == []


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ({"q": ""}, "q", "length"),
        ({"q": "a" * 101}, "q", "length"),
        ({"q": "a\x00b"}, "q", ""),
        ({"min_price": -1}, "min_price", ""),
        ({"max_price": MAX_PRICE + 1}, "max_price", ""),
        ({"min_price": "1e2"}, "min_price", INTEGER_MESSAGE),
        ({"max_price": "1.0"}, "max_price", INTEGER_MESSAGE),
        ({"min_price": "05"}, "min_price", INTEGER_MESSAGE),
        ({"max_price": "+5"}, "max_price", INTEGER_MESSAGE),
        ({"min_price": "null"}, "min_price", INTEGER_MESSAGE),
        ({"max_price": ""}, "max_price", INTEGER_MESSAGE),
        ({"in_stock": "maybe"}, "in_stock", "true or false"),
        ({"in_stock": "True"}, "in_stock", "true or false"),
        ({"in_stock": "1"}, "in_stock", "true or false"),
        ({"in_stock": ""}, "in_stock", "true or false"),
        ({"min_price": 5, "max_price": 4}, "min_price", "greater than max_price"),
    ],
)
def test_bad_filter_values_are_422_naming_the_parameter(
    client: TestClient, query: Filters, field: str, says: str
) -> None:
    """Each bad value is a problem+json 422 whose one error names the parameter."""
    body = assert_problem(client.get("/products", params=query), 422, "invalid-request")
    assert [(e["location"], e["field"]) for e in body["errors"]] == [("query", field)]
    assert says in body["errors"][0]["message"]


def test_equal_bounds_and_the_extremes_are_accepted(client: TestClient) -> None:
    """min_price = max_price is a range of one price; 0 and 2,147,483,647 are prices."""
    for query in [
        {"min_price": 5, "max_price": 5},
        {"min_price": 0, "max_price": MAX_PRICE},
        {"min_price": MAX_PRICE},
        {"max_price": 0},
    ]:
        assert client.get("/products", params=query).status_code == 200, query


@pytest.mark.parametrize(
    ("text", "searchable"),
    [
        ("kar", True),
        ("ka", False),
        ("k", False),
        (" ka", True),  # pg_trgm knows where the word starts: "  k", " ka"
        ("ka ", True),  # ... and where it ends: "ka "
        ("a ", False),
        ("a b", True),
        ("%%%", False),
        ("a_b", True),
        ("ééé", True),
    ],
)
def test_which_q_the_trigram_index_can_serve(text: str, searchable: bool) -> None:
    """The other q are served by the index of characters and pairs (version 0004)."""
    assert trigram_searchable(text) is searchable


def test_like_pattern_escapes_what_like_reads_as_wildcards() -> None:
    assert like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"
