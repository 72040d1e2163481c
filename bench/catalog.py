"""The catalog section of `make bench`: a generated catalog of 1,000,000 products and
5,000,000 SKUs (issue 15's performance targets), its filters, SKUs and stock under load,
and the plans PostgreSQL runs for the server's own queries.

The catalog is generated, not the demo: a database of its own on the same PostgreSQL, with
the schema of the project's migrations (`prepare_database(dsn, seed=False)`, so the real
indexes the migrations make), filled by `INSERT ... SELECT generate_series` with the tables'
triggers off (the feed's, and the foreign keys' checks: the rows are valid by
construction) and their secondary indexes dropped and re-created after (the same
definitions, read back from pg_index), then vacuumed and analysed, as autovacuum would
leave it. Every value is a function of its row's id (bytes of md5 of it), so every run
builds the same catalog: names of two words of 2..4 syllables (the demo's syllables, so a
3-letter string hits a realistic share of names), a few hundred brands, five SKUs a product
(one per size), prices in minor units spread log-uniformly over 99..99,999, about one SKU
in eight out of stock.

Ours is served as the HTTP section serves it (`bench.http.OURS`: `src.main:app` with
`--http src.server:HttpProtocol`, one uvicorn worker, a pool of 6), with a JWT_SECRET of
the run's own and no write rate limit to speak of. Each round loads, by wrk with a Lua
script that cycles a list of requests: GET /products?limit=20 (the reference), the filters
(`q`, a price range, `in_stock=true&brand_id=`), GET /products/{id} and
GET /products/{id}/skus, under -c50 and then from one client (its p99); then the writes
under -c200: POST /skus/{id}/stock (delta -1) on one SKU and spread over 1,000, and
PUT /products/{id} on distinct products. In the last round the stock decrements run once
more with the SKU table's triggers off: what the feed's one-commit-at-a-time lock costs.

Plans: before the load, a server whose database sessions load auto_explain (log_analyze,
buffers, JSON) answers each read row's requests; the plans are the ones PostgreSQL ran for
the server's own SQL (custom or generic, as asyncpg's prepared statements got them), read
back from the embedded server's log. A `Seq Scan` on product or sku in a filter's plan
fails a target.

A row whose endpoint this build does not serve (absent from /openapi, or answered with an
error) is skipped, and the report says so.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.common import Section, Target, serve
from bench.http import OURS, Load, Run, errors_cell, run_wrk, server_env
from bench.http import _median as median
from src.auth import mint
from src.db.embedded import EmbeddedPostgres
from src.db.setup import _SYLLABLES as SYLLABLES  # the demo's syllables, shared on purpose
from src.db.setup import prepare_database

BENCH_DATABASE = "catalog_bench"
SIZES = ("XS", "S", "M", "L", "XL")  # five SKUs a product: one of each size
COLORS = ("Black", "White", "Navy", "Red", "Green", "Grey", "Olive", "Sand")
MIN_PRICE, MAX_PRICE = 99, 99_999
STOCKED = 10_000_000  # the stock of the SKUs the writes decrement: never runs out
AUDIENCE = "catalog-bench"


# -- the generated catalog ------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    products: int
    brands: int

    @property
    def skus(self) -> int:
        return self.products * len(SIZES)


def _byte(k: int) -> str:
    """Byte k (0..15) of the row's hash `h`: 0..255."""
    return f"get_byte(h, {k})"


def _word(at: int) -> str:
    """SQL for a word of 2..4 syllables from the hash bytes at..at+4."""
    n = len(SYLLABLES)
    syl = [f"(s.syl)[1 + {_byte(at + 1 + j)} % {n}]" for j in range(4)]
    return (
        f"{syl[0]} || {syl[1]}"
        f" || CASE WHEN {_byte(at)} % 3 >= 1 THEN {syl[2]} ELSE '' END"
        f" || CASE WHEN {_byte(at)} % 3 = 2 THEN {syl[3]} ELSE '' END"
    )


def _unit(at: int) -> str:
    """SQL for a float8 in [0, 1) from the hash bytes at, at+1 (numeric would cost 10x)."""
    return f"(({_byte(at)} * 256 + {_byte(at + 1)}) / 65536.0::float8)"


# Each row is a function of its id alone: h = md5 of it, as 16 bytes.
GENERATE_BRANDS = f"""
INSERT INTO brand (brand_id, brand_name)
SELECT i, initcap({_word(0)})
FROM generate_series(1, $1::int) i,
     LATERAL (SELECT decode(md5('brand' || i), 'hex') AS h) x,
     (SELECT $2::text[] AS syl) s
"""

GENERATE_PRODUCTS = f"""
INSERT INTO product (product_id, product_name, brand_id)
SELECT i, initcap({_word(0)} || ' ' || {_word(5)}), 1 + ({_byte(10)} * 256 + {_byte(11)}) % $2
FROM generate_series(1, $1::int) i,
     LATERAL (SELECT decode(md5('product' || i), 'hex') AS h) x,
     (SELECT $3::text[] AS syl) s
"""

# SKU i: product (i - 1) / 5 + 1, size (i - 1) % 5 + 1; a price log-uniform over
# MIN_PRICE..MAX_PRICE; stock 0 for one in eight, else 1..200.
GENERATE_SKUS = f"""
INSERT INTO sku (sku_id, product_id, product_size_id, product_color_id, price, currency, stock)
SELECT i, (i - 1) / $2 + 1, (i - 1) % $2 + 1, 1 + {_byte(0)} % $3,
       least({MAX_PRICE}, floor({MIN_PRICE} * power({MAX_PRICE / MIN_PRICE}::float8,
                                                   {_unit(1)})))::int,
       'EUR',
       CASE WHEN {_byte(3)} % 8 = 0 THEN 0 ELSE 1 + {_byte(4)} % 200 END
FROM generate_series(1, $1::int) i,
     LATERAL (SELECT decode(md5('sku' || i), 'hex') AS h) x
"""

TABLES = ("brand", "product", "sku")
SECONDARY_INDEXES = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
FROM pg_index i
WHERE i.indrelid = any($1::regclass[])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
"""


@dataclass
class Generated:
    seconds: dict[str, float]  # step -> wall seconds
    database_bytes: int
    out_of_stock: float  # share of SKUs with stock 0
    indexes: list[str]  # the secondary indexes of brand, product and sku (re-created)


async def generate(dsn: str, size: Size, *, stocked: Sequence[int] = ()) -> Generated:
    """Fill the empty catalog at `dsn` (its schema applied); the SKUs `stocked` get a
    stock of STOCKED."""
    seconds: dict[str, float] = {}
    conn = await asyncpg.connect(dsn)
    try:

        async def step(name: str, sql: str, *args: object) -> None:
            started = time.monotonic()
            await conn.execute(sql, *args)
            seconds[name] = time.monotonic() - started

        for table in TABLES:  # the feed's triggers and the foreign keys' checks
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
        indexes = await conn.fetch(SECONDARY_INDEXES, list(TABLES))
        for index in indexes:
            await conn.execute(f"DROP INDEX {index['name']}")
        await conn.executemany(
            "INSERT INTO product_size (product_size_id, product_size_name) VALUES ($1, $2)",
            list(enumerate(SIZES, 1)),
        )
        await conn.executemany(
            "INSERT INTO product_color (product_color_id, product_color_name) VALUES ($1, $2)",
            list(enumerate(COLORS, 1)),
        )
        syllables = list(SYLLABLES)
        await step("brands", GENERATE_BRANDS, size.brands, syllables)
        await step("products", GENERATE_PRODUCTS, size.products, size.brands, syllables)
        await step("SKUs", GENERATE_SKUS, size.skus, len(SIZES), len(COLORS))
        await conn.execute(
            "UPDATE sku SET stock = $2 WHERE sku_id = any($1::int[])", list(stocked), STOCKED
        )
        started = time.monotonic()
        for index in indexes:
            await conn.execute(index["def"])
        seconds["indexes"] = time.monotonic() - started
        for table in TABLES:
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        for table in (*TABLES, "product_size", "product_color"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{table}_id'), max({table}_id))"
                f" FROM {table}"
            )
        await step("vacuum, analyze", "VACUUM (ANALYZE)")
        database_bytes: int = await conn.fetchval("SELECT pg_database_size(current_database())")
        out_of_stock: float = await conn.fetchval("SELECT avg((stock = 0)::int)::float8 FROM sku")
    finally:
        await conn.close()
    return Generated(seconds, database_bytes, out_of_stock, [i["name"] for i in indexes])


# What the filters are given, cycled: 3-letter strings from the syllables, hitting from
# ~19% of names down to ~0.4%; price ranges from 11 minor units wide to 80,000; every 7th
# brand.
QUERIES = ("shi", "ona", "kar", "zul", "vex")
PRICE_RANGES = ((1000, 1010), (45_000, 45_500), (5000, 5999), (99, 199), (20_000, 99_999))

MATCHING = {
    "q": "SELECT count(*) FROM product WHERE product_name ILIKE '%' || $1 || '%'",
    "price": "SELECT count(*) FROM product p WHERE EXISTS (SELECT 1 FROM sku s"
    " WHERE s.product_id = p.product_id AND s.price BETWEEN $1 AND $2)",
    "stock": "SELECT count(*) FROM product p WHERE p.brand_id = $1 AND EXISTS (SELECT 1"
    " FROM sku s WHERE s.product_id = p.product_id AND s.stock > 0)",
}


def brand_ids(size: Size) -> list[int]:
    return [1 + (k * 7) % size.brands for k in range(min(40, size.brands))]


def product_ids(size: Size, n: int = 1000, offset: int = 0) -> list[int]:
    """n distinct product ids spread over the catalog."""
    return [1 + (offset + k * 7919) % size.products for k in range(min(n, size.products))]


def spread_skus(size: Size) -> list[int]:
    return [1 + (k * 4999) % size.skus for k in range(min(1000, size.skus // 2))]


def hot_sku(size: Size) -> int:
    """One SKU that is not among the spread ones."""
    spread = set(spread_skus(size))
    return next(i for i in range(size.skus // 2, size.skus + 1) if i not in spread)


# -- what is loaded -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    method: str
    route: str  # its path as /openapi names it
    requests: tuple[tuple[str, str | None], ...]  # (path, body); `%s` in a body: a fresh tag
    param: str | None = None  # the query parameter a filter needs in /openapi
    cycled: str = ""  # what its requests cycle through, as the report says it
    matching: str = ""  # the share of products its requests match, as the report says it

    @property
    def write(self) -> bool:
        return self.method != "GET"


REFERENCE, PRODUCT, SKUS = "reference", "product", "skus"
FILTERS = ("q", "price", "stock")
STOCK_ONE, STOCK_SPREAD, PUT = "stock-one", "stock-spread", "put"


def read_rows(size: Size, matching: dict[str, str]) -> list[Row]:
    products = product_ids(size)
    return [
        Row(
            REFERENCE, "GET /products?limit=20", "GET", "/products", (("/products?limit=20", None),)
        ),
        Row(
            "q",
            "GET /products?q=&limit=20",
            "GET",
            "/products",
            tuple((f"/products?q={q}&limit=20", None) for q in QUERIES),
            param="q",
            cycled=", ".join(QUERIES),
            matching=matching.get("q", ""),
        ),
        Row(
            "price",
            "GET /products?min_price=&max_price=&limit=20",
            "GET",
            "/products",
            tuple(
                (f"/products?min_price={lo}&max_price={hi}&limit=20", None)
                for lo, hi in PRICE_RANGES
            ),
            param="min_price",
            cycled=", ".join(f"{lo}..{hi}" for lo, hi in PRICE_RANGES),
            matching=matching.get("price", ""),
        ),
        Row(
            "stock",
            "GET /products?in_stock=true&brand_id=&limit=20",
            "GET",
            "/products",
            tuple(
                (f"/products?in_stock=true&brand_id={b}&limit=20", None) for b in brand_ids(size)
            ),
            param="in_stock",
            cycled=f"{len(brand_ids(size))} brands",
            matching=matching.get("stock", ""),
        ),
        Row(
            PRODUCT,
            "GET /products/{id}",
            "GET",
            "/products/{product_id}",
            tuple((f"/products/{i}", None) for i in products),
            cycled=f"{len(products):,} ids",
        ),
        Row(
            SKUS,
            "GET /products/{id}/skus",
            "GET",
            "/products/{product_id}/skus",
            tuple((f"/products/{i}/skus", None) for i in products),
            cycled=f"{len(products):,} ids",
        ),
    ]


DECREMENT = '{"delta": -1}'


def write_rows(size: Size, brands_of: dict[int, int]) -> list[Row]:
    spread = spread_skus(size)
    return [
        Row(
            STOCK_ONE,
            "POST /skus/{id}/stock, one SKU",
            "POST",
            "/skus/{sku_id}/stock",
            ((f"/skus/{hot_sku(size)}/stock", DECREMENT),),
        ),
        Row(
            STOCK_SPREAD,
            f"POST /skus/{{id}}/stock, {len(spread):,} SKUs",
            "POST",
            "/skus/{sku_id}/stock",
            tuple((f"/skus/{i}/stock", DECREMENT) for i in spread),
        ),
        Row(
            PUT,
            f"PUT /products/{{id}}, {len(brands_of):,} products",
            "PUT",
            "/products/{product_id}",
            tuple(
                (f"/products/{i}", json.dumps({"product_name": "Bench %s", "brand_id": b}))
                for i, b in brands_of.items()
            ),
        ),
    ]


def lua_script(row: Row, *, threads: int, headers: dict[str, str], tag: str) -> str:
    """A wrk script that cycles the row's requests; thread t of n sends requests t, t + n,
    t + 2n, ... so no two connections send the same one at once. A body's `%s` becomes the
    tag and the request's number: every write changes its row."""

    def text(s: str) -> str:
        return json.dumps(s)  # ASCII only: a JSON string is a Lua string

    paths = ",\n  ".join(text(path) for path, _ in row.requests)
    bodies = ",\n  ".join(text(body) for _, body in row.requests if body is not None)
    head = ", ".join(f"[{text(k)}] = {text(v)}" for k, v in headers.items())
    return f"""\
local paths = {{
  {paths}
}}
local bodies = {{
  {bodies}
}}
local headers = {{{head}}}
local threads, tag, started, n = {threads}, {text(tag)}, 0, 0

function setup(thread)
  thread:set("first", started)
  started = started + 1
end

request = function()
  local number = first + n * threads
  local k = number % #paths + 1
  n = n + 1
  local body = bodies[k]
  if body then body = string.format(body, tag .. "-" .. number) end
  return wrk.format({text(row.method)}, paths[k], headers, body)
end
"""


# -- the database and the server ------------------------------------------------------------


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def bench_database(dsn: str) -> Iterator[str]:
    """A database of its own beside `dsn`'s, dropped after."""

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"))
    asyncio.run(admin(f"CREATE DATABASE {BENCH_DATABASE}"))
    try:
        yield _with_database(dsn, BENCH_DATABASE)
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"))


async def _sql(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class Built:
    generated: Generated
    matching: dict[str, str]  # filter -> "a..b%" of products its cycled values match
    brands_of: dict[int, int]  # products the PUTs rewrite -> their brand


async def build(dsn: str, size: Size) -> Built:
    await prepare_database(dsn, seed=False)
    generated = await generate(dsn, size, stocked=[hot_sku(size), *spread_skus(size)])
    conn = await asyncpg.connect(dsn)
    try:
        counts = {
            "q": [await conn.fetchval(MATCHING["q"], q) for q in QUERIES],
            "price": [await conn.fetchval(MATCHING["price"], lo, hi) for lo, hi in PRICE_RANGES],
        }
        counts["stock"] = [await conn.fetchval(MATCHING["stock"], b) for b in brand_ids(size)]
        rows = await conn.fetch(
            "SELECT product_id, brand_id FROM product WHERE product_id = any($1::int[])",
            product_ids(size, 10_000, offset=size.products // 2),
        )
    finally:
        await conn.close()
    matching = {key: _share_range(c, size.products) for key, c in counts.items()}
    return Built(generated, matching, {r["product_id"]: r["brand_id"] for r in rows})


def _pct(x: float) -> str:
    return f"{100 * x:.2g}%" if x < 0.1 else f"{100 * x:.0f}%"


def _share_range(counts: Sequence[int], total: int) -> str:
    return f"{_pct(min(counts) / total)}..{_pct(max(counts) / total)}"


def our_env(dsn: str, secret: str) -> dict[str, str]:
    env = {
        **server_env(dsn),
        "JWT_SECRET": secret,
        "JWT_AUDIENCE": AUDIENCE,
        "WRITE_RATE_PER_MIN": "1000000000",
    }
    env["CACHE"] = "off"  # the response cache (issue 16): this section measures PostgreSQL
    return env


def _call(
    port: int,
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body.encode() if body is not None else None,
        method=method,
        headers=headers or {},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def not_served(port: int, rows: Sequence[Row], headers: dict[str, str]) -> dict[str, str]:
    """row key -> why it is skipped, for the rows this server does not serve: its route,
    method or parameter absent from /openapi, or its first request answered with an error
    (a filter the server ignored would answer 200 unfiltered: hence /openapi)."""
    status, raw = _call(port, "GET", "/openapi")
    paths: dict[str, Any] = json.loads(raw)["paths"] if status == 200 else {}
    skipped: dict[str, str] = {}
    for row in rows:
        operation = paths.get(row.route, {}).get(row.method.lower())
        names = {p.get("name") for p in (operation or {}).get("parameters", [])}
        if operation is None:
            skipped[row.key] = f"endpoint not served: no {row.method} {row.route} in /openapi"
            continue
        if row.param is not None and row.param not in names:
            skipped[row.key] = f"endpoint not served: {row.route} has no `{row.param}` parameter"
            continue
        path, body = row.requests[0]
        if body is not None:
            body = body.replace("%s", "probe")
        status, raw = _call(port, row.method, path, body, headers if row.write else None)
        if not 200 <= status < 300:
            skipped[row.key] = f"endpoint not served: {row.method} {path} answered {status}"
    return skipped


# -- plans ----------------------------------------------------------------------------------


AUTO_EXPLAIN = (
    "session_preload_libraries = 'auto_explain'",
    "auto_explain.log_min_duration = 0",
    "auto_explain.log_analyze = on",
    "auto_explain.log_buffers = on",
    "auto_explain.log_format = json",
)


@contextmanager
def auto_explain(dsn: str) -> Iterator[None]:
    """Sessions opened on the database meanwhile log every plan they run, with its actual
    rows, times and buffers."""
    database = urlsplit(dsn).path.lstrip("/")
    asyncio.run(_sql(dsn, *(f"ALTER DATABASE {database} SET {s}" for s in AUTO_EXPLAIN)))
    try:
        yield
    finally:
        asyncio.run(_sql(dsn, f"ALTER DATABASE {database} RESET ALL"))


@dataclass
class Explained:
    """One plan auto_explain logged."""

    duration_ms: float
    query: str
    parameters: str
    plan: dict[str, Any]

    def nodes(self) -> Iterator[dict[str, Any]]:
        stack = [self.plan]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.get("Plans", [])))

    def relations(self) -> set[str]:
        return {n["Relation Name"] for n in self.nodes() if "Relation Name" in n}

    def seq_scans(self) -> list[str]:
        return [
            n["Relation Name"]
            for n in self.nodes()
            if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in ("product", "sku")
        ]

    @property
    def generic(self) -> bool:
        """A generic plan names the parameters ($1), a custom one their values."""
        conditions = " ".join(str(n.get(k, "")) for n in self.nodes() for k in CONDITIONS)
        return "$" in conditions

    def shape(self) -> str:
        return " > ".join(_node_name(n) for n in self.nodes())


CONDITIONS = ("Index Cond", "Recheck Cond", "Filter", "Join Filter", "Merge Cond", "Hash Cond")


def _node_name(node: dict[str, Any]) -> str:
    name: str = node["Node Type"]
    join = node.get("Join Type", "Inner")
    if join != "Inner" and node.get("Parent Relationship") != "InitPlan":
        name = f"{name.removesuffix(' Join')} {join} Join"
    if "Index Name" in node:
        name += f" using {node['Index Name']}"
    if "Relation Name" in node:
        name += f" on {node['Relation Name']}"
    return name


def plan_lines(plan: dict[str, Any], depth: int = 0) -> list[str]:
    """The plan as indented lines, like EXPLAIN's text: node, actual rows and time, buffers,
    conditions."""
    parts = [f"rows={plan.get('Actual Rows', 0):g}"]
    if plan.get("Actual Loops", 1) != 1:
        parts.append(f"loops={plan['Actual Loops']}")
    parts.append(f"time={plan.get('Actual Total Time', 0):.3f} ms")
    hit, read = plan.get("Shared Hit Blocks", 0), plan.get("Shared Read Blocks", 0)
    if hit or read:
        parts.append(f"buffers hit={hit}" + (f" read={read}" if read else ""))
    line = "  " * depth + ("-> " if depth else "") + f"{_node_name(plan)} ({', '.join(parts)})"
    lines = [line]
    for key in (*CONDITIONS, "Rows Removed by Filter", "Heap Fetches", "Sort Method"):
        if key in plan and plan[key] not in (0, None):
            lines.append("  " * depth + ("   " if depth else "") + f"  {key}: {plan[key]}")
    for child in plan.get("Plans", []):
        lines += plan_lines(child, depth + 1)
    return lines


def read_plans(text: str) -> list[Explained]:
    """The plans in a piece of PostgreSQL's log (auto_explain, log_format json)."""
    marker = "plan:\n"
    decoder = json.JSONDecoder()
    found = []
    at = text.find(marker)
    while at != -1:
        head = text.rfind("duration: ", 0, at)
        body = text[at + len(marker) :]
        try:
            document, _ = decoder.raw_decode(body.lstrip())
        except json.JSONDecodeError:
            at = text.find(marker, at + 1)
            continue
        duration = float(text[head + len("duration: ") : at].split()[0])
        found.append(
            Explained(
                duration_ms=duration,
                query=" ".join(document.get("Query Text", "").split()),
                parameters=document.get("Query Parameters", ""),
                plan=document["Plan"],
            )
        )
        at = text.find(marker, at + 1)
    return found


def capture_plans(
    port: int, rows: Sequence[Row], log: Path, per_row: int
) -> dict[str, list[Explained]]:
    """row key -> the plans of its queries (those that read product or sku) while `per_row`
    of its requests, cycled, are answered one after another."""
    plans: dict[str, list[Explained]] = {}
    for row in rows:
        offset = log.stat().st_size
        for k in range(per_row):
            path, _ = row.requests[k % len(row.requests)]
            status, _ = _call(port, "GET", path)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status} while its plans were read")
        # Each backend writes its plan to the log before it answers (auto_explain logs at
        # the end of the executor), so the requests' plans are all there by now.
        with log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        plans[row.key] = [p for p in read_plans(text) if p.relations() & {"product", "sku"}]
    return plans


# -- the run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    size: Size
    reads: Load  # under load (-c50); its rounds and warm-up are the section's
    single: Load  # one client: its p99
    writes: Load  # -c200
    plan_requests: int  # requests per read row while plans are logged


FULL = Scale(
    Size(products=1_000_000, brands=300),
    reads=Load(threads=2, connections=50, seconds=4, rounds=3, warmup=1),
    single=Load(threads=1, connections=1, seconds=4, rounds=3, warmup=0),
    writes=Load(threads=2, connections=200, seconds=4, rounds=3, warmup=0),
    plan_requests=30,
)
SMOKE = Scale(
    Size(products=2_000, brands=20),
    reads=Load(threads=1, connections=10, seconds=1, rounds=1, warmup=0),
    single=Load(threads=1, connections=1, seconds=1, rounds=1, warmup=0),
    writes=Load(threads=1, connections=20, seconds=1, rounds=1, warmup=0),
    plan_requests=8,
)


@dataclass
class Results:
    reads: dict[str, list[Run]] = field(default_factory=dict)  # -c50, one per round
    single: dict[str, list[Run]] = field(default_factory=dict)  # one client
    writes: dict[str, list[Run]] = field(default_factory=dict)  # -c200
    reference_after: list[Run] = field(default_factory=list)  # last in each round's reads
    untriggered: dict[str, Run] = field(default_factory=dict)  # writes, SKU triggers off
    skipped: dict[str, str] = field(default_factory=dict)  # row key -> why
    plans: dict[str, list[Explained]] = field(default_factory=dict)
    plans_note: str = ""


def run(
    dsn: str,
    work: Path,
    *,
    smoke: bool = False,
    pg: EmbeddedPostgres | None = None,
) -> Section:
    """Generate the catalog beside `dsn`'s database, read its plans, load it.

    `pg` is the embedded PostgreSQL behind `dsn`: its log holds the plans, and its CPU is
    reported. Without it (BENCH_DATABASE_URL) the plans are not read ("-" in the report).
    """
    scale = SMOKE if smoke else FULL
    logs = work / "catalog-logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = Results()
    with bench_database(dsn) as url:
        print(f"bench: catalog: generating {scale.size.products:,} products…", flush=True)
        built = asyncio.run(build(url, scale.size))
        reads = read_rows(scale.size, built.matching)
        writes = write_rows(scale.size, built.brands_of)
        secret = secrets.token_urlsafe(48)
        env = our_env(url, secret)
        headers = {
            "Authorization": f"Bearer {mint(secret, audience=AUDIENCE, ttl_s=24 * 3600)}",
            "Content-Type": "application/json",
        }
        if pg is None:
            results.plans_note = "not read: the database is not the embedded one (its log)"
        else:
            with (
                auto_explain(url),
                serve(OURS.app, log_dir=logs, env=env, extra=OURS.extra) as (
                    _,
                    port,
                ),
            ):
                results.skipped = not_served(port, [*reads, *writes], headers)
                served = [r for r in reads if r.key not in results.skipped]
                results.plans = capture_plans(
                    port, served, pg.data_dir / "log", scale.plan_requests
                )
        with serve(OURS.app, log_dir=logs, env=env, extra=OURS.extra) as (proc, port):
            if pg is None:
                results.skipped = not_served(port, [*reads, *writes], headers)
            load(results, scale, work, proc.pid, port, pg, url, reads, writes, headers)
    elapsed = time.monotonic() - started
    return Section(
        title="Catalog (1,000,000 products)" if not smoke else "Catalog",
        markdown=report(results, scale, built, reads, writes, elapsed),
        targets=targets(results),
    )


def load(
    results: Results,
    scale: Scale,
    work: Path,
    server_pid: int,
    port: int,
    pg: EmbeddedPostgres | None,
    url: str,
    reads: Sequence[Row],
    writes: Sequence[Row],
    headers: dict[str, str],
) -> None:
    pg_pid = pg.pid if pg is not None else None
    base = f"http://127.0.0.1:{port}"
    runs = 0

    def measure(row: Row, load_: Load, seconds: float) -> Run:
        nonlocal runs
        runs += 1
        script = work / f"catalog-{row.key}-{runs}.lua"
        script.write_text(
            lua_script(
                row, threads=load_.threads, headers=headers if row.write else {}, tag=f"r{runs}"
            )
        )
        return run_wrk(load_, base + row.requests[0][0], script, seconds, server_pid, pg_pid)

    served_reads = [r for r in reads if r.key not in results.skipped]
    served_writes = [r for r in writes if r.key not in results.skipped]
    for round_no in range(scale.reads.rounds):
        for row in served_reads:
            if round_no == 0 and scale.reads.warmup:
                measure(row, scale.reads, scale.reads.warmup)
            results.reads.setdefault(row.key, []).append(
                measure(row, scale.reads, scale.reads.seconds)
            )
        if REFERENCE in results.reads:  # the reference again: its mean spans the round
            reference = next(r for r in served_reads if r.key == REFERENCE)
            results.reference_after.append(measure(reference, scale.reads, scale.reads.seconds))
        for row in served_reads:
            results.single.setdefault(row.key, []).append(
                measure(row, scale.single, scale.single.seconds)
            )
        for row in served_writes:
            results.writes.setdefault(row.key, []).append(
                measure(row, scale.writes, scale.writes.seconds)
            )
    # Once: the same decrements with the SKU table's feed triggers off.
    stock_rows = [r for r in served_writes if r.key in (STOCK_ONE, STOCK_SPREAD)]
    if stock_rows:
        asyncio.run(_sql(url, "ALTER TABLE sku DISABLE TRIGGER USER"))
        try:
            for row in stock_rows:
                results.untriggered[row.key] = measure(row, scale.writes, scale.writes.seconds)
        finally:
            asyncio.run(_sql(url, "ALTER TABLE sku ENABLE TRIGGER USER"))


# -- the report ---------------------------------------------------------------------------

P99_LIMIT_MS = 50.0
FILTER_RATIO = 0.5
SKUS_RATIO = 0.8


def rps(runs: Sequence[Run]) -> list[float]:
    return [r.wrk.rps for r in runs]


def divide(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """a / b, one per round (both measured in that round)."""
    return [x / y if y else float("nan") for x, y in zip(a, b, strict=True)]


def read_runs(results: Results, key: str) -> list[Run]:
    """Every -c50 run of a read row (the reference's before and after each round's)."""
    runs = results.reads.get(key, [])
    return [*runs, *results.reference_after] if key == REFERENCE else runs


def read_rps(results: Results, key: str) -> list[float] | None:
    """A read row's req/s per round under -c50; the reference's is the mean of its runs
    first and last in the round."""
    if key not in results.reads:
        return None
    runs = rps(results.reads[key])
    if key == REFERENCE:
        return [(x + y) / 2 for x, y in zip(runs, rps(results.reference_after), strict=True)]
    return runs


def _ratio(results: Results, key: str, reference: str) -> float | None:
    a, b = read_rps(results, key), read_rps(results, reference)
    return None if a is None or b is None else median(divide(a, b))


FILTER_NAMES = {"q": "?q=", "price": "?min_price=&max_price=", "stock": "?in_stock=true&brand_id="}


def targets(results: Results) -> list[Target]:
    found = []
    for key in FILTERS:
        name = f"Catalog /products{FILTER_NAMES[key]}"
        if key in results.single:
            p99 = median([r.wrk.p99_ms for r in results.single[key]])
            found.append(
                Target(f"{name}: p99 one client, ms", p99, P99_LIMIT_MS, higher_is_better=False)
            )
        if (ratio := _ratio(results, key, REFERENCE)) is not None:
            found.append(
                Target(
                    f"{name}: req/s / GET /products?limit=20",
                    ratio,
                    FILTER_RATIO,
                    higher_is_better=True,
                )
            )
    if (ratio := _ratio(results, SKUS, PRODUCT)) is not None:
        found.append(
            Target(
                "Catalog /products/{id}/skus: req/s / /products/{id}",
                ratio,
                SKUS_RATIO,
                higher_is_better=True,
            )
        )
    filter_plans = [p for key in FILTERS for p in results.plans.get(key, [])]
    if filter_plans:
        found.append(
            Target(
                "Catalog filter plans: Seq Scans on product or sku",
                sum(len(p.seq_scans()) for p in filter_plans),
                0,
                higher_is_better=False,
            )
        )
    return found


def _cpu(runs: Sequence[Run]) -> str:
    pg = [r.pg_cpu for r in runs if r.pg_cpu is not None]
    return f"{median([r.server_cpu for r in runs]):.0f} | {f'{median(pg):.0f}' if pg else '-'}"


def _reads_table(results: Results, reads: Sequence[Row]) -> list[str]:
    lines = [
        "| endpoint | cycles | products matching | req/s | req/s per round | p50 ms "
        "| p99 ms | p99 ms, 1 client | / reference (req/s) | server CPU % | PG CPU % | errors |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in reads:
        if row.key in results.skipped:
            lines.append(
                f"| {row.title} | {row.cycled} | {row.matching} | {results.skipped[row.key]} |"
            )
            continue
        runs, single = read_runs(results, row.key), results.single[row.key]
        per_round = read_rps(results, row.key) or []
        against = "-"
        if row.key == SKUS and (ratio := _ratio(results, SKUS, PRODUCT)) is not None:
            against = f"{ratio:.2f}x of /products/{{id}}"
        elif row.key in FILTERS and (ratio := _ratio(results, row.key, REFERENCE)) is not None:
            against = f"{ratio:.2f}x"
        lines.append(
            f"| {row.title} | {row.cycled} | {row.matching} "
            f"| {median(per_round):,.0f} "
            f"| {' / '.join(f'{x:,.0f}' for x in per_round)} "
            f"| {median([r.wrk.p50_ms for r in runs]):.2f} "
            f"| {median([r.wrk.p99_ms for r in runs]):.2f} "
            f"| {median([r.wrk.p99_ms for r in single]):.2f} "
            f"| {against} | {_cpu(runs)} | {errors_cell([*runs, *single])} |"
        )
    return lines


def _writes_table(results: Results, writes: Sequence[Row], load: Load) -> list[str]:
    lines = [
        f"| writes (-c{load.connections}) | changes/s | per round | p50 ms | p99 ms "
        "| / PUT (changes/s) | server CPU % | PG CPU % | errors |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def line(title: str, runs: Sequence[Run], ratio: str) -> str:
        return (
            f"| {title} | {median([r.wrk.rps for r in runs]):,.0f} "
            f"| {' / '.join(f'{r.wrk.rps:,.0f}' for r in runs)} "
            f"| {median([r.wrk.p50_ms for r in runs]):.2f} "
            f"| {median([r.wrk.p99_ms for r in runs]):.2f} | {ratio} | {_cpu(runs)} "
            f"| {errors_cell(runs)} |"
        )

    put = results.writes.get(PUT)
    for row in writes:
        if row.key in results.skipped:
            lines.append(f"| {row.title} | {results.skipped[row.key]} |")
            continue
        runs = results.writes[row.key]
        ratio = (
            "-" if row.key == PUT or put is None else f"{median(divide(rps(runs), rps(put))):.2f}x"
        )
        lines.append(line(row.title, runs, ratio))
    for row in writes:
        if row.key in results.untriggered:
            lines.append(
                line(f"{row.title}, SKU triggers off (once)", [results.untriggered[row.key]], "-")
            )
    return lines


def _lock_note(results: Results) -> list[str]:
    notes = []
    for key, what in ((STOCK_ONE, "one SKU"), (STOCK_SPREAD, "1,000 SKUs")):
        off = results.untriggered.get(key)
        on = results.writes.get(key)
        if off is None or not on:
            continue
        last = on[-1]  # the same row in the last round (other rows ran in between)
        notes.append(
            f"{what}: {last.wrk.rps:,.0f} changes/s with the feed's trigger, "
            f"{off.wrk.rps:,.0f} without ({off.wrk.rps / last.wrk.rps:.2f}x); "
            f"p99 {last.wrk.p99_ms:.1f} ms against {off.wrk.p99_ms:.1f} ms"
        )
    if not notes:
        return []
    return [
        "What the feed costs a write: each change takes the feed's advisory lock in its "
        "trigger and holds it until it commits, so catalog writes commit one at a time, "
        "whatever rows they touch. The same decrements, with the SKU table's triggers off "
        "(once, after the last round; no change is recorded then), against that row's last "
        "round: " + "; ".join(notes) + ". One comparison, not rounds side by side: the "
        "triggered rows move between rounds by as much (their per-round figures above).",
        "",
    ]


def _plans(results: Results, reads: Sequence[Row]) -> list[str]:
    if results.plans_note:
        return [f"Plans: {results.plans_note}.", ""]
    lines = [
        "| endpoint | plans read | generic | node types (each shape: how many) "
        "| Seq Scan on product/sku | median ms | max ms |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    details: list[str] = []
    for row in reads:
        plans = results.plans.get(row.key)
        if not plans:
            continue
        shapes = Counter(p.shape() for p in plans)
        seq = sum(len(p.seq_scans()) for p in plans)
        durations = [p.duration_ms for p in plans]
        lines.append(
            f"| {row.title} | {len(plans)} | {sum(p.generic for p in plans)} "
            f"| {'; '.join(f'{s} ({n})' for s, n in shapes.most_common())} "
            f"| {f'**{seq}**' if seq else 0} | {median(durations):.3f} | {max(durations):.3f} |"
        )
        slowest = max(plans, key=lambda p: p.duration_ms)
        details += [
            f"{row.title}, its slowest plan ({slowest.duration_ms:.3f} ms, "
            f"{'generic' if slowest.generic else 'custom'}):",
            "",
            "```text",
            f"SQL: {slowest.query}",
            *([f"Parameters: {slowest.parameters}"] if slowest.parameters else []),
            *plan_lines(slowest.plan),
            "```",
            "",
        ]
    return [*lines, "", *details]


def report(
    results: Results,
    scale: Scale,
    built: Built,
    reads: Sequence[Row],
    writes: Sequence[Row],
    elapsed: float,
) -> str:
    g = built.generated
    size = scale.size
    steps = ", ".join(f"{name} {s:.1f} s" for name, s in g.seconds.items())
    r, w, one = scale.reads, scale.writes, scale.single
    lines = [
        f"A generated catalog (not the demo): {size.brands:,} brands, {size.products:,} products,"
        f" {size.skus:,} SKUs ({len(SIZES)} a product), prices {MIN_PRICE}..{MAX_PRICE:,} minor "
        f"units (log-uniform), {100 * g.out_of_stock:.1f}% of SKUs out of stock; in a database "
        "of its own with the schema of the migrations, so with their indexes (besides the "
        f"primary keys: {', '.join(f'`{name}`' for name in sorted(g.indexes))}). "
        f"Generated in {sum(g.seconds.values()):.0f} s ({steps}); "
        f"{g.database_bytes / 2**20:,.0f} MiB.",
        "",
        "Ours only, served as in the HTTP section (`--http src.server:HttpProtocol`, 1 worker, "
        "a pool of 6). wrk with a Lua script that cycles each row's requests "
        f"(`-t{r.threads} -c{r.connections} -d{r.seconds:g}s`; one client: "
        f"`-t1 -c1 -d{one.seconds:g}s`; writes `-t{w.threads} -c{w.connections} "
        f"-d{w.seconds:g}s`), {r.rounds} round(s), {r.warmup:g} s of warm-up per read row "
        "first. Medians over rounds; ratios are taken within a round, then their median; the "
        "reference runs first and last in each round's -c50 reads, and its req/s in a round "
        "is the mean of the two. "
        "Plans: auto_explain in the server's own sessions (below)."
        + " The response cache is off (`CACHE=off`).",
        "",
        "### Reads",
        "",
        f"Under `-c{r.connections}`, and from one client (its p99); a filter's `products "
        "matching` is the share of all products its values match, least to most.",
        "",
        *_reads_table(results, reads),
        "",
        "### Writes",
        "",
        'Stock decrements (`{"delta": -1}`) on SKUs given a stock of 10,000,000 '
        "(none runs out); PUT rewrites a product's name (a new one each time).",
        "",
        *_writes_table(results, writes, w),
        "",
        *_lock_note(results),
        "### Query plans",
        "",
        f"{scale.plan_requests} requests per row, one at a time, each row's values cycled, "
        "to a server whose sessions load auto_explain (analyze, buffers): the plans "
        "PostgreSQL ran for the server's own SQL, with asyncpg's prepared statements (after "
        "five runs on a connection PostgreSQL may switch to a generic plan: `generic` counts "
        "those). Plans that read neither product nor sku are left out.",
        "",
        *_plans(results, reads),
        f"Catalog section: {elapsed:.0f} s.",
    ]
    return "\n".join(lines)
