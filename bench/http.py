"""The HTTP half of `make bench`: ours against three references, loaded by wrk.

Servers (each by `bench.common.serve`: one uvicorn worker, uvloop, httptools, no access
log, a pool of 6 connections to the same PostgreSQL):

- ours: `src.main:app`, served as `make run` serves it (`--http src.server:HttpProtocol`)
- floor: `bench.references.bare_asgi:app` (bare ASGI + asyncpg + msgspec: the practical floor)
- starlette: `bench.references.starlette_app:app` (the tutorial's app)
- fastapi: `bench.references.fastapi_app:app`

Method. The machine has 2 cores, so only one server runs at a time: each round starts
every server in turn (the order rotated by one each round, so no server always goes
first or last), checks that it answers exactly what ours answers, warms it up (1 s of
wrk per endpoint), then loads /brands, /products/{id} (a Lua script cycling ids
1..1000, the same for every server) and /health (/ping for the floor) one after the
other, and stops it. During each load window the CPU seconds of the server process and
of PostgreSQL (the postmaster and all its backends) are read from /proc, and the client's
(wrk's) from its rusage. Reported: medians over rounds, and ratios taken within a round
(ours / reference, same round) and then their median, so a slow round affects both sides.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


# Ours as `make run` serves it: its HTTP protocol (head and body timers, bounded heads,
# framing), which costs something per request that the references do not pay.
OURS = Server(
    "ours", "ours (lihil)", "src.main:app", "/health", ("--http", "src.server:HttpProtocol")
)
FLOOR = Server("floor", "bare ASGI floor", "bench.references.bare_asgi:app", "/ping")
STARLETTE = Server("starlette", "Starlette", "bench.references.starlette_app:app", "/health")
FASTAPI = Server("fastapi", "FastAPI", "bench.references.fastapi_app:app", "/health")
SERVERS = (OURS, FLOOR, STARLETTE, FASTAPI)


@dataclass(frozen=True)
class Endpoint:
    key: str
    title: str
    path: Callable[[Server], str]
    script: bool = False  # load it through PRODUCTS_LUA


ENDPOINTS = (
    Endpoint("brands", "GET /brands", lambda s: "/brands"),
    Endpoint("product", "GET /products/{id}", lambda s: "/products/1", script=True),
    Endpoint("health", "GET /health (the floor: GET /ping)", lambda s: s.health),
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
            with serve(server.app, log_dir=logs, env=env, extra=server.extra) as (proc, port):
                got = answers(port, server.health)
                if server is OURS:
                    want = dict(got)
                check_same(server, got, want)
                base = f"http://127.0.0.1:{port}"
                for endpoint in ENDPOINTS:
                    lua = script if endpoint.script else None
                    url = base + endpoint.path(server)
                    if load.warmup:
                        run_wrk(load, url, lua, load.warmup, proc.pid, pg_pid)
                for endpoint in ENDPOINTS:
                    lua = script if endpoint.script else None
                    url = base + endpoint.path(server)
                    measured = run_wrk(load, url, lua, load.seconds, proc.pid, pg_pid)
                    results.add(endpoint.key, server.key, measured)
    return Section(
        title="HTTP",
        markdown=report(results, load, time.monotonic() - started),
        targets=targets(results),
    )


# -- the report ---------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratios(results: Results, endpoint: str, reference: str, metric: str = "rps") -> list[float]:
    """ours / reference for `metric`, one per round (both measured in that round)."""
    ours = results.runs[endpoint][OURS.key]
    other = results.runs[endpoint][reference]
    out = []
    for a, b in zip(ours, other, strict=True):
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
    for server in SERVERS:
        runs = results.runs[endpoint.key][server.key]
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
    return [*lines, ""]


def report(results: Results, load: Load, elapsed: float) -> str:
    lines = [
        "Four servers, one at a time, each under uvicorn with the same flags "
        "(1 worker, uvloop, httptools, no access log) and a pool of 6 connections to the "
        "same PostgreSQL: ours (`src.main:app`, with its own HTTP protocol as `make run` "
        "serves it: `--http src.server:HttpProtocol`, httptools underneath), the bare ASGI floor "
        "(`bench/references/bare_asgi.py`), the tutorial's Starlette app "
        "(`bench/references/starlette_app.py`) and FastAPI "
        "(`bench/references/fastapi_app.py`). Every server is first checked to answer "
        "exactly what ours answers.",
        "",
        f"wrk command: `{wrk_command(load)}` — {load.rounds} round(s), server order "
        f"rotated each round, {load.warmup:g} s of warm-up per endpoint after each start; "
        "`/products/{id}` runs `products.lua`, which cycles ids 1..1000.",
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
    lines += [
        f"/health (ours) vs the floor's /ping: {health:.2f}x the requests/s (no target: "
        "it measures the framework's per-request cost with no database).",
        "",
        f"HTTP section: {elapsed:.0f} s.",
    ]
    return "\n".join(lines)
