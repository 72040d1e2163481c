"""The response cache section of `make bench` (issue 16; reported, no targets): what 10,000
cached answers cost in memory, and how long a read that names a write's position takes on
another worker. Its throughput targets are the HTTP section's (bench.http: ours as served,
cache on, against the floor in the same run).

Memory. Ours is started twice, as served (`bench.http.OURS`) and with `CACHE=off`
(`bench.http.OURS_OFF`), each with CACHE_MAX_ENTRIES = the entries measured; each answers
the same distinct cacheable GETs over the demo catalog (`memory_paths`: product pages, a
product's first page of SKUs, pages of products, brands, SKUs, interleaved), 4 clients at
a time. The first tenth (at most 100) warm the server up; its resident memory (VmRSS,
/proc) is read after them and after the rest. What the cache keeps is the growth with the
cache less the growth without it (the same requests served, nothing kept), per entry; the
entries held are read from ours' /metrics.

A write read back on another worker. Two servers as served (A and B) on the one database,
no broker: B learns of a change through its own catalog feed (LISTEN/NOTIFY, then a read of
the outbox). For each pair, sequentially: B reads a product (so B holds it), A renames it
with PUT /products/{id}, then at once B reads it again sending the PUT's
`Catalog-Position`; B's feed reads the database for that change (it does not wait for
the NOTIFY), then B answers (or, if its feed cannot within CACHE_WAIT_MS, from
PostgreSQL). Timed from this process (http.client, one keep-alive connection per server).
The same pairs without the header show what it prevents (answers older than the write),
and plain hits on B the client's own share of a read. Every name changed is put back at
the end.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import secrets
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice, zip_longest
from pathlib import Path

import asyncpg

from bench.common import Section, rss_kib, serve
from bench.http import OURS, OURS_OFF, RESTORE, Server, cache_counters, counted, server_env
from bench.loadclient import percentile
from src.auth import mint

AUDIENCE = "catalog-bench"
CLIENTS = 4  # concurrent clients filling the cache


@dataclass(frozen=True)
class Scale:
    entries: int  # distinct answers the memory measurement fills
    pairs: int  # write-then-read pairs of each kind


FULL = Scale(entries=10_000, pairs=300)
SMOKE = Scale(entries=200, pairs=20)


# -- what the client sends ----------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection to a server on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(
        self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        sent = dict(headers or {})
        raw = None
        if body is not None:
            raw = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        self.connection.request(method, path, body=raw, headers=sent)
        response = self.connection.getresponse()
        return response.status, response.headers, response.read()

    def close(self) -> None:
        self.connection.close()


def memory_paths(n: int, *, products: int = 1000, brands: int = 100) -> list[str]:
    """`n` distinct cacheable GETs over the demo catalog, the kinds interleaved: a product,
    its first page of SKUs, a page of products, a brand, a SKU (SKUs once the others run
    out: the demo has 1,000 products, 100 brands, 100,000 SKUs)."""
    kinds: list[Iterator[str]] = [
        (f"/products/{i}" for i in range(1, products + 1)),
        (f"/products/{i}/skus" for i in range(1, products + 1)),
        (f"/products?limit=20&after={i}" for i in range(products)),
        (f"/brands/{i}" for i in range(1, brands + 1)),
        (f"/skus/{i}" for i in range(1, 100_001)),
    ]
    mixed = (path for row in zip_longest(*kinds) for path in row if path is not None)
    return list(islice(mixed, n))


def fill(port: int, paths: Sequence[str]) -> int:
    """GET every path, CLIENTS at a time; the bytes of the bodies. Any answer but 200
    fails the run (the paths are chosen to exist)."""

    def one_client(chunk: Sequence[str]) -> int:
        client = Client(port)
        try:
            total = 0
            for path in chunk:
                status, _, body = client.call("GET", path)
                if status != 200:
                    raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
                total += len(body)
            return total
        finally:
            client.close()

    chunks = [paths[k::CLIENTS] for k in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        return sum(pool.map(one_client, chunks))


def wait_serving(port: int, timeout: float = 30) -> None:
    """Until ours' cache answers (its feed has connected): a GET twice, the second a hit."""
    deadline = time.monotonic() + timeout
    client = Client(port)
    try:
        while time.monotonic() < deadline:
            before = cache_counters(port) or {}
            for _ in range(2):
                client.call("GET", "/brands")
            if counted(before, cache_counters(port)).get("hit", 0) > 0:
                return
            time.sleep(0.05)  # polling another process's state: there is no event to wait on
    finally:
        client.close()
    raise TimeoutError(f"the cache of the server on {port} did not serve within {timeout}s")


# -- memory ---------------------------------------------------------------------------------


@dataclass
class Memory:
    server: Server
    start_kib: int
    warm_kib: int
    full_kib: int
    entries: float | None  # held after filling (ours' /metrics); None without a cache
    body_bytes: int  # of the answers filled after warming up

    @property
    def growth_kib(self) -> int:
        return self.full_kib - self.warm_kib


def measure_memory(dsn: str, logs: Path, server: Server, paths: Sequence[str]) -> Memory:
    warm = min(100, len(paths) // 10)
    env = {**server_env(dsn), **dict(server.env), "CACHE_MAX_ENTRIES": str(len(paths))}
    with serve(server.app, log_dir=logs, env=env, extra=server.extra) as (proc, port):
        start = rss_kib(proc.pid)
        if server is OURS:
            wait_serving(port)
        fill(port, paths[:warm])
        warm_kib = rss_kib(proc.pid)
        body_bytes = fill(port, paths[warm:])
        full_kib = rss_kib(proc.pid)
        counters = cache_counters(port)
        return Memory(
            server,
            start,
            warm_kib,
            full_kib,
            counters.get("entries") if counters else None,
            body_bytes,
        )


# -- a write read back on another worker --------------------------------------------------


@dataclass
class Pairs:
    """Latencies (seconds) and outcomes of the write-then-read pairs."""

    put: list[float] = field(default_factory=list)
    with_position: list[float] = field(default_factory=list)
    without: list[float] = field(default_factory=list)
    without_current: int = 0
    hit: list[float] = field(default_factory=list)  # a plain read of a held product on B
    b_cache: dict[str, float] = field(default_factory=dict)  # B's counters, with-position pairs
    changed: dict[int, str] = field(default_factory=dict)  # product id -> its original name


def write_then_read(port_a: int, port_b: int, secret: str, count: int) -> Pairs:
    """`count` pairs with the header, `count` without, then `count` plain hits on B."""
    a, b = Client(port_a), Client(port_b)
    token = {"Authorization": f"Bearer {mint(secret, audience=AUDIENCE, ttl_s=3600)}"}
    found = Pairs()
    try:

        def pair(product_id: int, n: int, send_position: bool) -> None:
            status, _, raw = b.call("GET", f"/products/{product_id}")  # B holds it now
            if status != 200:
                raise RuntimeError(f"GET /products/{product_id} on B answered {status}")
            product = json.loads(raw)
            found.changed.setdefault(product_id, product["product_name"])
            name = f"{found.changed[product_id]} {n}"
            body = {"product_name": name, "brand_id": product["brand_id"]}
            started = time.perf_counter()
            status, headers, raw = a.call("PUT", f"/products/{product_id}", body, token)
            written = time.perf_counter()
            if status != 200:
                raise RuntimeError(f"PUT /products/{product_id} on A answered {status}: {raw!r}")
            position = headers["Catalog-Position"]
            sent = {"Catalog-Position": position} if send_position else {}
            status, headers, raw = b.call("GET", f"/products/{product_id}", headers=sent)
            read = time.perf_counter()
            if status != 200:
                raise RuntimeError(f"GET /products/{product_id} on B answered {status}: {raw!r}")
            current = json.loads(raw)["product_name"] == name
            if send_position:
                if not current or int(headers["Catalog-Position"]) < int(position):
                    raise RuntimeError(
                        f"B answered product {product_id} older than the write it named "
                        f"(Catalog-Position {position}): {raw!r}"
                    )
                found.with_position.append(read - written)  # checked: it reflected the write
            else:
                found.without.append(read - written)
                found.without_current += current
            found.put.append(written - started)

        before = cache_counters(port_b)
        for n in range(count):
            pair(1 + (n * 7) % 1000, n, send_position=True)
        found.b_cache = counted(before, cache_counters(port_b))
        for n in range(count):
            pair(1 + (n * 7 + 3) % 1000, n, send_position=False)
        for n in range(count):
            path = f"/products/{1 + (n * 7 + 5) % 1000}"
            b.call("GET", path)  # held from now on: no write follows
            started = time.perf_counter()
            status, _, _ = b.call("GET", path)
            found.hit.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"GET {path} on B answered {status}")
    finally:
        a.close()
        b.close()
    return found


async def restore(dsn: str, names: dict[int, str]) -> None:
    """Put back the names the pairs changed (the sections after this one see the demo)."""
    conn = await asyncpg.connect(dsn)
    try:
        ids = sorted(names)
        await conn.execute(RESTORE, ids, [names[i] for i in ids])
    finally:
        await conn.close()


# -- the run ------------------------------------------------------------------------------


@dataclass
class Results:
    memory: list[Memory]
    pairs: Pairs
    paths: list[str]


def run(dsn: str, work: Path, *, smoke: bool = False) -> Section:
    """Measure the response cache against the demo catalog at `dsn`."""
    scale = SMOKE if smoke else FULL
    logs = work / "cache-logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    paths = memory_paths(scale.entries)
    memory = [measure_memory(dsn, logs, server, paths) for server in (OURS, OURS_OFF)]
    secret = secrets.token_urlsafe(48)
    env = {
        **server_env(dsn),
        "JWT_SECRET": secret,
        "JWT_AUDIENCE": AUDIENCE,
        "WRITE_RATE_PER_MIN": "1000000000",
    }
    pairs = Pairs()
    try:
        with ExitStack() as stack:
            ports = []
            for name in ("a", "b"):  # a log directory each: the log is named by the app
                (logs / name).mkdir(exist_ok=True)
                served = serve(OURS.app, log_dir=logs / name, env=env, extra=OURS.extra)
                ports.append(stack.enter_context(served)[1])
            for port in ports:
                wait_serving(port)
            pairs = write_then_read(ports[0], ports[1], secret, scale.pairs)
    finally:
        if pairs.changed:
            asyncio.run(restore(dsn, pairs.changed))
    results = Results(memory, pairs, paths)
    return Section(
        title="Response cache",
        markdown=report(results, scale, time.monotonic() - started),
        targets=[],
    )


# -- the report ---------------------------------------------------------------------------


def _ms(values: Sequence[float], q: float) -> str:
    """The q-quantile (0..1) of `values` (seconds) in ms, nearest rank."""
    return f"{1000 * percentile(list(values), 100 * q):.2f}" if values else "-"


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def report(results: Results, scale: Scale, elapsed: float) -> str:
    on, off = results.memory
    filled = len(results.paths) - min(100, len(results.paths) // 10)
    per_entry = (on.growth_kib - off.growth_kib) * 1024 / filled if filled else float("nan")
    body = on.body_bytes / filled if filled else float("nan")
    kinds = ", ".join(
        f"{sum(p.startswith(prefix) and p.count('/') == slashes for p in results.paths):,} {what}"
        for prefix, slashes, what in (
            ("/products/", 2, "products"),
            ("/products/", 3, "first pages of a product's SKUs"),
            ("/products?", 1, "pages of 20 products"),
            ("/brands/", 2, "brands"),
            ("/skus/", 2, "SKUs"),
        )
    )
    lines = [
        f"### Memory of {scale.entries:,} entries",
        "",
        f"{scale.entries:,} distinct cacheable GETs ({kinds}), {CLIENTS} clients at a time, "
        f"to ours as served and to ours with `CACHE=off` (CACHE_MAX_ENTRIES={scale.entries}); "
        f"resident memory (VmRSS) after start, after the first {len(results.paths) - filled} "
        "(warm-up) and after the rest.",
        "",
        "| server | RSS at start MiB | after warm-up MiB | after all MiB | growth over the rest "
        "MiB | entries held |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in results.memory:
        held = f"{m.entries:,.0f}" if m.entries is not None else "-"
        lines.append(
            f"| {m.server.label} | {_mib(m.start_kib)} | {_mib(m.warm_kib)} | "
            f"{_mib(m.full_kib)} | {_mib(m.growth_kib)} | {held} |"
        )
    lines += [
        "",
        f"Kept by the cache: {_mib(on.growth_kib - off.growth_kib)} MiB for {filled:,} entries "
        f"(growth with the cache less without), {per_entry:,.0f} bytes an entry, of which the "
        f"body is {body:,.0f} bytes on average; so {scale.entries:,} such entries take about "
        f"{per_entry * scale.entries / 2**20:.1f} MiB.",
        "",
    ]
    p = results.pairs
    n = scale.pairs
    b = p.b_cache
    lines += [
        "### A write read back on another worker",
        "",
        f"Two servers as served (A, B) on one database, no broker; {n} sequential pairs of "
        "each kind, timed from the bench's process (one keep-alive connection per server): B "
        "reads a product (so holds it), A renames it (PUT /products/{id}), then at once B "
        "reads it again.",
        "",
        "| what | n | p50 ms | p99 ms | max ms | answers reflecting the write |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| GET on B sending the PUT's `Catalog-Position` | {len(p.with_position)} "
        f"| {_ms(p.with_position, 0.5)} | {_ms(p.with_position, 0.99)} "
        # every one reflected the write: the run stops at the first that does not
        f"| {_ms(p.with_position, 1)} | {len(p.with_position)} of {len(p.with_position)} |",
        f"| GET on B without it | {len(p.without)} | {_ms(p.without, 0.5)} "
        f"| {_ms(p.without, 0.99)} | {_ms(p.without, 1)} "
        f"| {p.without_current} of {len(p.without)} |",
        f"| GET on B, a cache hit (no write before: the client's own share) | {len(p.hit)} "
        f"| {_ms(p.hit, 0.5)} | {_ms(p.hit, 0.99)} | {_ms(p.hit, 1)} | - |",
        f"| the PUT on A | {len(p.put)} | {_ms(p.put, 0.5)} | {_ms(p.put, 0.99)} "
        f"| {_ms(p.put, 1)} | - |",
        "",
        "B's cache over the pairs with the header (its /metrics): "
        f"{b.get('hit', 0):,.0f} hits, {b.get('miss', 0):,.0f} misses, "
        f"{b.get('bypass', 0):,.0f} bypasses (a read whose feed could not read the database "
        "within CACHE_WAIT_MS, 1,000 ms by default, or was disconnected), "
        f"{b.get('invalidations', 0):,.0f} entries invalidated. With the header B answers once "
        "its feed has applied the change (which drops the product's entry), so from "
        "PostgreSQL (a miss); without it B answers with what it holds, older than the write "
        "whenever its feed has not yet applied it.",
        "",
        f"Response cache section: {elapsed:.0f} s.",
    ]
    return "\n".join(lines)
