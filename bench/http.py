"""The HTTP half of `make bench`: ours against three references, loaded by wrk.

Servers (each by `bench.common.serve`: one uvicorn worker, uvloop, httptools, no access
log, a pool of 6 connections to the same PostgreSQL):

- ours: `src.main:app`, served as `make run` serves it (`--http src.server:HttpProtocol`),
  so with its response cache on (issue 16: catalog GETs answered from memory)
- ours, CACHE=off: the same with the cache off (explanatory rows: every read goes to
  PostgreSQL, as before issue 16)
- floor: `bench.references.bare_asgi:app` (bare ASGI + asyncpg + msgspec: the practical floor)
- starlette: `bench.references.starlette_app:app` (the tutorial's app)
- fastapi: `bench.references.fastapi_app:app`

Method. The machine has 2 cores, so only one server runs at a time: each round starts
every server in turn (the order rotated by one each round, so no server always goes
first or last), checks that it answers exactly what ours answers, warms it up (1 s of
wrk per endpoint), then loads /brands, /products/{id} (a Lua script cycling ids
1..1000, the same for every server), /health (/ping for the floor) and, for ours (both
ways) and the floor, /products/{id} again while a writer changes 100 products a second
(`ProductWriter`: plain SQL UPDATEs from a connection of its own), one after the other,
and stops it. During each load window the CPU seconds of the server process and
of PostgreSQL (the postmaster and all its backends) are read from /proc, and the client's
(wrk's) from its rusage; ours' cache counters are read from its /metrics before and after.
Reported: medians over rounds, and ratios taken within a round (ours / reference, same
round) and then their median, so a slow round affects both sides.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import resource
import shutil
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import asyncpg

from bench.common import Section, Target, serve, tree_cpu_seconds
from src.db.embedded import EmbeddedPostgres

WRK = shutil.which("wrk") or "/usr/bin/wrk"

# Ids 1..1000 all exist in the demo catalog (src.db.setup.PRODUCTS); each wrk thread has
# its own Lua state and walks them in turn, so no single row is hot.
PRODUCTS_LUA = """\
local i = 0
request = function()
  i = i % 1000 + 1
  return wrk.format("GET", "/products/" .. i)
end
"""


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    app: str
    health: str  # its liveness path: /health, or /ping for the floor
    extra: tuple[str, ...] = ()  # uvicorn arguments besides the shared ones
    env: tuple[tuple[str, str], ...] = ()  # settings besides `server_env`'s


# Ours as `make run` serves it: its HTTP protocol (head and body timers, bounded heads,
# framing), which costs something per request that the references do not pay.
OURS = Server(
    "ours", "ours (lihil)", "src.main:app", "/health", ("--http", "src.server:HttpProtocol")
)
# The same with its response cache off: what the cache brings (no target).
OURS_OFF = Server(
    "ours-off", "ours, CACHE=off", OURS.app, OURS.health, OURS.extra, (("CACHE", "off"),)
)
FLOOR = Server("floor", "bare ASGI floor", "bench.references.bare_asgi:app", "/ping")
STARLETTE = Server("starlette", "Starlette", "bench.references.starlette_app:app", "/health")
FASTAPI = Server("fastapi", "FastAPI", "bench.references.fastapi_app:app", "/health")
SERVERS = (OURS, OURS_OFF, FLOOR, STARLETTE, FASTAPI)
ALL = tuple(server.key for server in SERVERS)


WRITES_PER_S = 100  # products the writer changes a second, during the "writes" endpoint


@dataclass(frozen=True)
class Endpoint:
    key: str
    title: str
    path: Callable[[Server], str]
    script: bool = False  # load it through PRODUCTS_LUA
    servers: tuple[str, ...] = ALL  # the servers loaded on it
    writes: int = 0  # products changed a second meanwhile (ProductWriter), 0: none


ENDPOINTS = (
    Endpoint("brands", "GET /brands", lambda s: "/brands"),
    Endpoint("product", "GET /products/{id}", lambda s: "/products/1", script=True),
    Endpoint(  # no catalog read: the cache changes nothing, so ours is loaded once
        "health",
        "GET /health (the floor: GET /ping)",
        lambda s: s.health,
        servers=tuple(key for key in ALL if key != OURS_OFF.key),
    ),
    Endpoint(
        "writes",
        f"GET /products/{{id}} while {WRITES_PER_S} products change a second",
        lambda s: "/products/1",
        script=True,
        servers=(OURS.key, OURS_OFF.key, FLOOR.key),
        writes=WRITES_PER_S,
    ),
)


@dataclass(frozen=True)
class Load:
    threads: int
    connections: int
    seconds: float
    rounds: int
    warmup: float  # seconds of wrk per endpoint before the measured runs; 0: none


FULL = Load(threads=2, connections=200, seconds=6, rounds=3, warmup=1)
SMOKE = Load(threads=1, connections=10, seconds=1, rounds=1, warmup=0)


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: dict[str, int]  # connect, read, write, timeout (over wrk's 2 s: not in p99)


@dataclass
class Run:
    """One measured load window: wrk's numbers and the CPU each side used."""

    wrk: WrkResult
    server_cpu: float  # percent of one core
    pg_cpu: float | None
    client_cpu: float
    cache: dict[str, float] | None = None  # ours' cache counters over the window (deltas)
    writes_per_s: float | None = None  # what the writer achieved meanwhile


@dataclass
class Results:
    # runs[endpoint][server] = one Run per round, in round order
    runs: dict[str, dict[str, list[Run]]] = field(default_factory=dict)

    def add(self, endpoint: str, server: str, run: Run) -> None:
        self.runs.setdefault(endpoint, {}).setdefault(server, []).append(run)


# -- wrk ----------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS_MS[match[2]]


def parse_wrk(output: str) -> WrkResult:
    """Requests/s, the 50% and 99% latencies, and every error wrk counted."""

    def find(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    rps, p50, p99 = find(r"^Requests/sec:\s+([\d.]+)"), find(r"^\s+50%\s+(\S+)"), None
    p99 = find(r"^\s+99%\s+(\S+)")
    total = find(r"^\s+(\d+) requests in ")
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    non_2xx = find(r"Non-2xx or 3xx responses:\s+(\d+)")
    sockets = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    return WrkResult(
        rps=float(rps[1]),
        p50_ms=_ms(p50[1]),
        p99_ms=_ms(p99[1]),
        requests=int(total[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors={
            kind: int(n)
            for kind, n in zip(
                ("connect", "read", "write", "timeout"), sockets.groups(), strict=True
            )
            if int(n)
        }
        if sockets
        else {},
    )


def wrk_args(load: Load, url: str, script: Path | None, seconds: float) -> list[str]:
    args = [WRK, f"-t{load.threads}", f"-c{load.connections}", f"-d{seconds:g}s", "--latency"]
    if script is not None:
        args += ["-s", str(script)]
    return [*args, url]


def wrk_command(load: Load) -> str:
    """The invocation, as the report prints it."""
    return (
        f"wrk -t{load.threads} -c{load.connections} -d{load.seconds:g}s --latency "
        "[-s products.lua] http://127.0.0.1:PORT/PATH"
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    load: Load, url: str, script: Path | None, seconds: float, server_pid: int, pg_pid: int | None
) -> Run:
    """One load window; CPU read from /proc before and after (wrk's from its rusage)."""
    args = wrk_args(load, url, script, seconds)
    server0 = tree_cpu_seconds(server_pid)
    pg0 = tree_cpu_seconds(pg_pid) if pg_pid else 0.0
    client0 = _children_cpu()
    start = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    wall = time.monotonic() - start
    server1 = tree_cpu_seconds(server_pid)
    pg1 = tree_cpu_seconds(pg_pid) if pg_pid else 0.0
    client1 = _children_cpu()
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return Run(
        wrk=parse_wrk(done.stdout),
        server_cpu=100 * (server1 - server0) / wall,
        pg_cpu=100 * (pg1 - pg0) / wall if pg_pid else None,
        client_cpu=100 * (client1 - client0) / wall,
    )


# -- ours' response cache, and a writer that changes it ------------------------------------

CACHE_COUNTER = re.compile(
    r'^catalog_cache_(?:requests_total\{result="(\w+)"\}|(invalidations)_total|(entries)) (\S+)$',
    re.MULTILINE,
)


def cache_counters(port: int) -> dict[str, float] | None:
    """Ours' response cache counters from its /metrics (hit, miss, bypass, invalidations,
    and the entries held), or None when it has no cache (CACHE=off, or another server)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except urllib.error.HTTPError:
        return None
    found = {m[1] or m[2] or m[3]: float(m[4]) for m in CACHE_COUNTER.finditer(text)}
    return found or None


def counted(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float]:
    """What the counters counted between two readings (empty when there is no cache)."""
    if before is None or after is None:
        return {}
    return {name: after[name] - before.get(name, 0.0) for name in after}


def hit_rate(counts: dict[str, float]) -> float | None:
    """Hits over every cacheable read (hits, misses and bypasses); None if there were none."""
    reads = sum(counts.get(k, 0.0) for k in ("hit", "miss", "bypass"))
    return counts.get("hit", 0.0) / reads if reads else None


RENAME = "UPDATE product SET product_name = $2 WHERE product_id = $1"
RESTORE = """
UPDATE product p SET product_name = r.name
FROM unnest($1::int[], $2::text[]) AS r(id, name)
WHERE p.product_id = r.id
"""


class ProductWriter:
    """Changes `rate` products a second, each a random one of ids 1..`products` (seeded:
    every run writes the same sequence), by a plain SQL UPDATE of its name from a
    connection of its own, in a thread of its own; the changes reach ours through the
    catalog feed like any other. Steady: the n-th UPDATE is due n / rate seconds after the
    start (one running late is followed at once by the next). On leaving, every name it
    changed is put back, so the servers started after still answer what ours answered.

        with ProductWriter(dsn, 100) as writer:
            ...  # load the servers
        writer.changes, writer.seconds
    """

    def __init__(self, dsn: str, rate: float, *, products: int = 1000, seed: int = 16) -> None:
        self.dsn, self.rate, self.products, self.seed = dsn, rate, products, seed
        self.changes = 0
        self.seconds = 0.0
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="product-writer", daemon=True)

    @property
    def per_second(self) -> float:
        return self.changes / self.seconds if self.seconds else 0.0

    def __enter__(self) -> ProductWriter:
        self._thread.start()
        if not self._ready.wait(timeout=60):
            self._stop.set()
            raise TimeoutError("the product writer did not connect within 60 s")
        if self._error is not None:
            raise RuntimeError("the product writer failed") from self._error
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            raise TimeoutError("the product writer did not stop within 60 s")
        if self._error is not None and kind is None:
            raise RuntimeError("the product writer failed") from self._error

    def _main(self) -> None:
        try:
            asyncio.run(self._write())
        except BaseException as exc:  # handed to the bench's thread, which raises it
            self._error = exc
        finally:
            self._ready.set()

    async def _write(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT product_id, product_name FROM product WHERE product_id <= $1",
                self.products,
            )
            names: dict[int, str] = {r["product_id"]: r["product_name"] for r in rows}
            ids = sorted(names)
            draw = random.Random(self.seed)
            touched: set[int] = set()
            self._ready.set()
            started = time.monotonic()
            try:
                while not self._stop.is_set():
                    delay = started + self.changes / self.rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    product_id = draw.choice(ids)
                    await conn.execute(RENAME, product_id, f"{names[product_id]} {self.changes}")
                    touched.add(product_id)
                    self.changes += 1
            finally:
                self.seconds = time.monotonic() - started
                back = sorted(touched)
                await conn.execute(RESTORE, back, [names[i] for i in back])
        finally:
            await conn.close()


# -- what every server must answer ----------------------------------------------------------


def _get(port: int, path: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def answers(port: int, health: str) -> dict[str, tuple[int, object]]:
    """What a server answers to the benchmark's requests (and to a missing product)."""
    return {
        "/brands": _get(port, "/brands"),
        "/products/1": _get(port, "/products/1"),
        "/products/1000": _get(port, "/products/1000"),
        "/products/999999": (_get(port, "/products/999999")[0], None),
        "health": _get(port, health),
    }


def check_same(server: Server, got: dict[str, tuple[int, object]], want: dict[str, object]) -> None:
    if server is not OURS and got != want:
        diff = {k: (got[k], want.get(k)) for k in got if got[k] != want.get(k)}
        raise RuntimeError(f"{server.label} does not answer what ours does: {diff}")


# -- the run ------------------------------------------------------------------------------


def server_env(dsn: str) -> dict[str, str]:
    """The servers' settings: ours reads them all (a pool of 6 connections, no demo load,
    quiet logs); the references read DATABASE_URL and make a pool of 6 themselves."""
    return {
        "DATABASE_URL": dsn,
        "DB_POOL_MIN": "6",
        "DB_POOL_MAX": "6",
        "SEED_DEMO_DATA": "false",
        "LOG_LEVEL": "warning",
    }


def run(
    dsn: str,
    work: Path,
    *,
    smoke: bool = False,
    pg: EmbeddedPostgres | None = None,
    load: Load | None = None,
) -> Section:
    """Benchmark the four servers against the database at `dsn`.

    `pg` (keyword-only, optional) is the embedded PostgreSQL behind `dsn`: with it, the
    report gives PostgreSQL's CPU during each load window (from its postmaster's pid);
    without it (e.g. BENCH_DATABASE_URL) that column says "-".
    """
    load = load or (SMOKE if smoke else FULL)
    if not Path(WRK).exists():
        raise RuntimeError(f"wrk is not installed ({WRK}): `apt-get install wrk`")
    logs = work / "http-logs"
    logs.mkdir(parents=True, exist_ok=True)
    script = work / "products.lua"
    script.write_text(PRODUCTS_LUA)
    pg_pid = pg.pid if pg is not None else None
    env = server_env(dsn)
    results = Results()
    want: dict[str, object] = {}
    started = time.monotonic()
    for round_no in range(load.rounds):
        # Rotated by one each round; round 0 starts with ours, whose answers the others
        # must give too.
        order = SERVERS[round_no % len(SERVERS) :] + SERVERS[: round_no % len(SERVERS)]
        for server in order:
            with serve(
                server.app, log_dir=logs, env={**env, **dict(server.env)}, extra=server.extra
            ) as (proc, port):
                got = answers(port, server.health)
                if server is OURS:
                    want = dict(got)
                check_same(server, got, want)
                base = f"http://127.0.0.1:{port}"
                endpoints = [e for e in ENDPOINTS if server.key in e.servers]
                warmed: set[tuple[str, Path | None]] = set()  # (url, script)
                for endpoint in endpoints:
                    lua = script if endpoint.script else None
                    url = base + endpoint.path(server)
                    if load.warmup and (url, lua) not in warmed:
                        warmed.add((url, lua))
                        run_wrk(load, url, lua, load.warmup, proc.pid, pg_pid)
                for endpoint in endpoints:
                    lua = script if endpoint.script else None
                    url = base + endpoint.path(server)
                    writer = ProductWriter(dsn, endpoint.writes) if endpoint.writes else None
                    with writer or nullcontext():
                        before = cache_counters(port) if server is OURS else None
                        measured = run_wrk(load, url, lua, load.seconds, proc.pid, pg_pid)
                        if before is not None:  # read before the writer puts names back
                            measured.cache = counted(before, cache_counters(port))
                    if writer is not None:
                        measured.writes_per_s = writer.per_second
                    results.add(endpoint.key, server.key, measured)
    return Section(
        title="HTTP",
        markdown=report(results, load, time.monotonic() - started),
        targets=targets(results),
    )


# -- the report ---------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratios(
    results: Results,
    endpoint: str,
    reference: str,
    metric: str = "rps",
    *,
    reference_endpoint: str | None = None,
) -> list[float]:
    """ours / reference for `metric`, one per round (both measured in that round); the
    reference on `reference_endpoint` when given (e.g. a hit against the floor's /ping)."""
    mine = results.runs[endpoint][OURS.key]
    other = results.runs[reference_endpoint or endpoint][reference]
    out = []
    for a, b in zip(mine, other, strict=True):
        x, y = getattr(a.wrk, metric), getattr(b.wrk, metric)
        out.append(x / y if y else float("nan"))
    return out


def targets(results: Results) -> list[Target]:
    found = []
    for key, title in (("brands", "/brands"), ("product", "/products/{id}")):
        found += [
            Target(
                f"HTTP {title}: req/s ours / bare ASGI floor",
                _median(ratios(results, key, FLOOR.key)),
                1.0,
                higher_is_better=True,
            ),
            Target(
                f"HTTP {title}: req/s ours / Starlette",
                _median(ratios(results, key, STARLETTE.key)),
                1.3,
                higher_is_better=True,
            ),
            Target(
                f"HTTP {title}: p99 ours / Starlette",
                _median(ratios(results, key, STARLETTE.key, "p99_ms")),
                1.0,
                higher_is_better=False,
            ),
        ]
    # The cost of the framework and the edge alone: no database on either side.
    found.append(
        Target(
            "HTTP /health: req/s ours / bare ASGI floor's /ping",
            _median(ratios(results, "health", FLOOR.key)),
            0.6,
            higher_is_better=True,
        )
    )
    # Issue 16: reads at memory speed (ours as served: its response cache on).
    found += [
        Target(
            f"HTTP {title}, cached: req/s ours / bare ASGI floor",
            _median(ratios(results, key, FLOOR.key)),
            3.0,
            higher_is_better=True,
        )
        for key, title in (("product", "/products/{id}"), ("brands", "/brands"))
    ]
    found += [
        Target(
            "HTTP /products/{id}, a cache hit: req/s ours / bare ASGI floor's /ping",
            _median(ratios(results, "product", FLOOR.key, reference_endpoint="health")),
            0.6,
            higher_is_better=True,
        ),
        Target(
            f"HTTP /products/{{id}}, cached, {WRITES_PER_S} products changed a second: "
            "req/s ours / bare ASGI floor (the same writes)",
            _median(ratios(results, "writes", FLOOR.key)),
            2.0,
            higher_is_better=True,
        ),
    ]
    return found


def errors_cell(runs: Sequence[Run]) -> str:
    """wrk's non-2xx responses and socket errors over `runs`, of all their requests."""
    sockets: dict[str, int] = {}
    for r in runs:
        for kind, n in r.wrk.socket_errors.items():
            sockets[kind] = sockets.get(kind, 0) + n
    non_2xx = sum(r.wrk.non_2xx for r in runs)
    kinds = [f"{non_2xx} non-2xx"] if non_2xx else []
    kinds += [f"{n} {kind}" for kind, n in sockets.items()]
    errors = f"**{', '.join(kinds)}**" if kinds else "none"
    return f"{errors} (of {sum(r.wrk.requests for r in runs):,})"


def _table(results: Results, endpoint: Endpoint) -> list[str]:
    lines = [
        f"### {endpoint.title}",
        "",
        "| server | req/s | req/s per round | p50 ms | p99 ms | server CPU % | PG CPU % "
        "| wrk CPU % | ours / it (req/s) | errors |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    measured = results.runs[endpoint.key]
    for server in (s for s in SERVERS if s.key in measured):
        runs = measured[server.key]
        pg = [r.pg_cpu for r in runs if r.pg_cpu is not None]
        ratio = (
            "-" if server is OURS else f"{_median(ratios(results, endpoint.key, server.key)):.2f}x"
        )
        name = server.label + (f" (`{server.health}`)" if endpoint.key == "health" else "")
        lines.append(
            f"| {name} | {_median([r.wrk.rps for r in runs]):,.0f} "
            f"| {' / '.join(f'{r.wrk.rps:,.0f}' for r in runs)} "
            f"| {_median([r.wrk.p50_ms for r in runs]):.2f} "
            f"| {_median([r.wrk.p99_ms for r in runs]):.2f} "
            f"| {_median([r.server_cpu for r in runs]):.0f} "
            f"| {f'{_median(pg):.0f}' if pg else '-'} "
            f"| {_median([r.client_cpu for r in runs]):.0f} "
            f"| {ratio} | {errors_cell(runs)} |"
        )
    lines.append("")
    ours = measured[OURS.key]
    if endpoint.writes:
        writes = [r.writes_per_s or 0.0 for r in ours]
        lines += [
            f"The writer (`ProductWriter`: plain SQL `UPDATE product SET product_name = ...` of "
            f"a random id of 1..1000, from a connection of its own, {endpoint.writes} a second) "
            f"achieved {' / '.join(f'{w:.0f}' for w in writes)} changes/s during ours' rounds.",
            "",
        ]
    if any(hit_rate(r.cache or {}) is not None for r in ours):
        lines += [_cache_line(ours), ""]
    return lines


def _cache_line(runs: Sequence[Run]) -> str:
    """Ours' response cache over the windows of `runs`: its hit rate, from /metrics."""
    total: dict[str, float] = {}
    for r in runs:
        for name, n in (r.cache or {}).items():
            total[name] = total.get(name, 0.0) + n
    rate = hit_rate(total)
    per_round = " / ".join(
        f"{100 * h:.2f} %" for r in runs if (h := hit_rate(r.cache or {})) is not None
    )
    shown = f"{100 * rate:.2f} %" if rate is not None else "-"
    return (
        f"Ours' response cache (its /metrics before and after each window): hits {shown} of "
        f"cacheable reads (per round {per_round}); {total.get('hit', 0):,.0f} hits, "
        f"{total.get('miss', 0):,.0f} misses, {total.get('bypass', 0):,.0f} bypasses, "
        f"{total.get('invalidations', 0):,.0f} entries invalidated."
    )


def report(results: Results, load: Load, elapsed: float) -> str:
    lines = [
        "Five servers, one at a time, each under uvicorn with the same flags "
        "(1 worker, uvloop, httptools, no access log) and a pool of 6 connections to the "
        "same PostgreSQL: ours (`src.main:app`, with its own HTTP protocol as `make run` "
        "serves it: `--http src.server:HttpProtocol`, httptools underneath; its response "
        "cache on, as served), ours with `CACHE=off` (every read from PostgreSQL: what the "
        "cache brings; no target), the bare ASGI floor "
        "(`bench/references/bare_asgi.py`), the tutorial's Starlette app "
        "(`bench/references/starlette_app.py`) and FastAPI "
        "(`bench/references/fastapi_app.py`). Every server is first checked to answer "
        "exactly what ours answers.",
        "",
        f"wrk command: `{wrk_command(load)}` — {load.rounds} round(s), server order "
        f"rotated each round, {load.warmup:g} s of warm-up per endpoint after each start; "
        "`/products/{id}` runs `products.lua`, which cycles ids 1..1000 (so ours, once "
        "warm, answers them from its cache).",
        "",
        "Medians over rounds; `ours / it` is the median of per-round ratios. CPU % is of "
        "one core over the load window (PG: the postmaster and its backends; wrk: the load "
        "client, on the same 2 cores). `errors` counts wrk's non-2xx responses and socket "
        "errors over all rounds; a `timeout` is a request unanswered after wrk's 2 s, which "
        "wrk leaves out of its latencies (so p99 is then optimistic).",
        "",
    ]
    for endpoint in ENDPOINTS:
        lines += _table(results, endpoint)
    health = _median(ratios(results, "health", FLOOR.key))
    hit = _median(ratios(results, "product", FLOOR.key, reference_endpoint="health"))
    lines += [
        f"/health (ours) vs the floor's /ping: {health:.2f}x the requests/s (it measures "
        "the framework's per-request cost with no database). A cache hit (ours' "
        f"GET /products/{{id}}) vs the floor's /ping: {hit:.2f}x (same round).",
        "",
        f"HTTP section: {elapsed:.0f} s.",
    ]
    return "\n".join(lines)
