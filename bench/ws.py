"""The WebSocket half of `make bench`: ours against the bare ASGI loop, the tutorial's naive
counter and a picows ceiling, at N = 1,000, 5,000 and 10,000 clients.

Servers (one at a time; the machine has 2 cores: one for the server, one for the client):

- ours: `src.main:app` by `bench.common.serve` (one uvicorn worker, uvloop, httptools, no
  access log) with OUR_FLAGS, the flags scripts/run.py serves with (permessage-deflate
  off), COUNTER_WINDOW_MS=50; for the permessage-deflate comparison also with uvicorn's
  default (deflate accepted when offered);
- bare: `bench.references.bare_asgi_ws:app`, same uvicorn flags: the floor for handshakes
  (/ws/echo), for fan-out time and frames per CPU-second (/ws/broadcast: `await send` for
  each socket in turn) and a direct counter (a frame to every socket on every change);
- naive: `bench.references.naive_counter:app`, the tutorial's Starlette counter;
- picows: `python -m bench.references.picows_broadcast`: one pre-framed bytes object
  written straight to every transport (the ceiling).

The load is `bench.loadclient` (picows on uvloop, its own process, at most 100 handshakes
in flight); every wait in it and here has a cap, and a server that does not converge
within it is reported as such (and its target as not met). What each figure means is
written above its table in the report (see `_method`).
"""

from __future__ import annotations

import http.client
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    PROJECT_ROOT,
    Proc,
    Section,
    Target,
    cpu_seconds,
    free_port,
    raise_file_limit,
    rss_kib,
    serve,
    uvicorn_args,
    wait_port,
)
from bench.loadclient import (
    Await,
    AwaitReply,
    Broadcast,
    BroadcastReply,
    Close,
    CloseReply,
    Connect,
    ConnectReply,
    Join,
    JoinReply,
    LoadClient,
    LoadClientError,
    Snapshot,
    Stats,
    percentile,
)

# The uvicorn flags ours is served with, as scripts/run.py serves it
# (ws_per_message_deflate=False): change both together.
NO_DEFLATE = ("--ws-per-message-deflate", "false")
OUR_FLAGS: tuple[str, ...] = NO_DEFLATE
WARMUP = 20  # connections opened and closed before the idle-RSS baseline is read


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    connect_cap: float  # s to open N connections (ours, bare, picows)
    converge_cap: float  # s after the last handshake until every client shows N
    naive_max: int  # largest N for the O(N²) counters (the naive one and the bare one)
    naive_cap: float  # s for them, for the handshakes and for convergence each, N <= 1,000
    naive_cap_large: float  # the same above N = 1,000 (they cannot make it: a bounded look)
    join_probes: int
    join_cap: float  # s per probe
    quiet: float  # s without changes before each join probe
    rounds: int  # broadcast bursts per server, the servers taking turns
    broadcast_frames: int  # frames per broadcast burst: probes = this // N ...
    min_probes: int  # ... but at least this many
    max_probes: int  # ... and at most this many
    probe_cap: float  # s per broadcast probe
    deflate_at: int  # N of the permessage-deflate broadcast comparison (ours, deflate on)
    variants_at: int  # N of the idle RSS of ours with deflate on and of bare with it off
    close_cap: float = 60.0


FULL = Plan(
    sizes=(1000, 5000, 10000),
    connect_cap=120.0,
    converge_cap=60.0,
    naive_max=5000,
    naive_cap=30.0,
    naive_cap_large=15.0,
    join_probes=10,
    join_cap=15.0,
    quiet=0.2,
    rounds=3,
    broadcast_frames=100_000,
    min_probes=10,
    max_probes=100,
    probe_cap=15.0,
    deflate_at=1000,
    variants_at=10000,
)
SMOKE = Plan(
    sizes=(50,),
    connect_cap=30.0,
    converge_cap=10.0,
    naive_max=50,
    naive_cap=10.0,
    naive_cap_large=10.0,
    join_probes=3,
    join_cap=5.0,
    quiet=0.1,
    rounds=2,
    broadcast_frames=250,
    min_probes=5,
    max_probes=5,
    probe_cap=5.0,
    deflate_at=50,
    variants_at=50,
    close_cap=20.0,
)


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    app: str | None  # a uvicorn import string; None: the picows process
    extra: tuple[str, ...] = ()
    ours: bool = False


OURS = Server("ours", "ours", "src.main:app", OUR_FLAGS, ours=True)
OURS_DEFLATE = Server(
    "ours-deflate", "ours, uvicorn's default (deflate on)", "src.main:app", (), ours=True
)
BARE = Server("bare", "bare ASGI", "bench.references.bare_asgi_ws:app")
BARE_NO_DEFLATE = Server(
    "bare-nd", "bare ASGI, deflate off", "bench.references.bare_asgi_ws:app", NO_DEFLATE
)
NAIVE = Server("naive", "naive (tutorial, Starlette)", "bench.references.naive_counter:app")
PICOWS = Server("picows", "picows ceiling", None)


# --- results ----------------------------------------------------------------------------


@dataclass
class Health:
    probes: int = 0
    failures: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None

    def cell(self) -> str:
        if self.p99_ms is None:
            return "-"
        failed = f", {self.failures} failed" if self.failures else ""
        return f"{self.p99_ms:.1f} ({self.probes} probes{failed})"


@dataclass
class Storm:
    label: str
    n: int
    connected: int = 0
    connect_s: float | None = None  # None: not all N connected within the cap
    converge_s: float | None = None  # None: not measured, or did not converge
    converge_cap: float = 0.0
    counts: bool = True  # a counter (it converges), not /ws/echo
    frames: int | None = None
    health: Health = field(default_factory=Health)
    server_cpu: float = 0.0  # CPU seconds of the server process over the storm
    client_cpu: float = 0.0  # and of the load client
    note: str = ""  # why it has no convergence time

    @property
    def converged(self) -> bool:
        return self.converge_s is not None

    def row(self) -> str:
        rate = f"{self.connected / self.connect_s:,.0f}" if self.connect_s else "-"
        if self.connect_s is not None:
            connect = f"{self.connect_s:.2f}"
        else:
            connect = f"{self.connected:,} of {self.n:,} connected"
        if not self.counts:
            converge, frames = "(echo)", "-"
        else:
            converge = "-" if self.converge_s is None else f"{self.converge_s * 1000:.0f} ms"
            if self.frames is None:
                frames = "-"
            else:
                frames = f"{self.frames:,} ({self.frames / self.n:.2f}×N)"
        if self.note:
            converge = self.note if converge == "-" else f"{converge}; {self.note}"
        return (
            f"| {self.label} | {connect} | {rate} | {converge} | {frames} | "
            f"{self.health.cell()} | {self.server_cpu:.2f} / {self.client_cpu:.2f} |"
        )


@dataclass
class Burst:
    """One burst of broadcast probes against one server (one round)."""

    probes: int
    frames: int
    cpu_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    fanout_median_ms: float
    fanout_p99_ms: float
    wire_bytes: float  # payload bytes per frame as received

    @property
    def per_cpu_s(self) -> float | None:
        return self.frames / self.cpu_s if self.cpu_s > 0 else None


@dataclass
class Fanout:
    """A server's broadcast bursts, one per round; figures are medians over rounds."""

    label: str
    n: int
    bursts: list[Burst | None] = field(default_factory=list)  # None: that round failed
    deflate: int = 0  # connections that negotiated permessage-deflate
    error: str = ""

    def _median(self, values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    def median(self, attr: str) -> float | None:
        return self._median([getattr(b, attr) for b in self.bursts if b is not None])

    @property
    def per_cpu_s(self) -> float | None:
        return self._median([b.per_cpu_s for b in self.bursts if b is not None])

    def row(self) -> str:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        done = [b for b in self.bursts if b is not None]
        rates = [r for r in (b.per_cpu_s for b in done) if r is not None]
        per_cpu = "-"
        if rates:
            per_cpu = f"{statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f})"
        wire = self.median("wire_bytes")
        probes = f"{len(done)} × {done[0].probes}" if done else "0"
        return (
            f"| {self.label} | {probes} | {ms(self.median('p50_ms'))} | "
            f"{ms(self.median('p99_ms'))} | {ms(self.median('max_ms'))} | "
            f"{ms(self.median('fanout_median_ms'))} | {ms(self.median('fanout_p99_ms'))} | "
            f"{sum(b.frames for b in done):,} | {sum(b.cpu_s for b in done):.2f} | {per_cpu} | "
            f"{'-' if wire is None else f'{wire:.1f}'} |"
        )


def round_ratio(a: Fanout | None, b: Fanout | None, what: Callable[[Burst], float | None]) -> float:
    """The median over rounds of what(a's burst) / what(b's burst) within each round (so a
    slow round affects both sides); inf when there is no round with both."""
    if a is None or b is None:
        return math.inf
    ratios = []
    for x, y in zip(a.bursts, b.bursts, strict=False):
        if x is not None and y is not None:
            vx, vy = what(x), what(y)
            if vx is not None and vy:
                ratios.append(vx / vy)
    return statistics.median(ratios) if ratios else math.inf


@dataclass
class Memory:
    label: str
    flags: str
    n: int
    negotiated: int = 0
    rss0: int = 0
    rss_n: int = 0
    error: str = ""

    @property
    def per_conn(self) -> float | None:
        return (self.rss_n - self.rss0) / self.n if self.rss_n and not self.error else None

    def row(self) -> str:
        per = self.per_conn
        per_cell = "-" if per is None else f"{per:.1f}"
        return (
            f"| {self.label} | `{self.flags or '(defaults)'}` | {self.negotiated:,} of "
            f"{self.n:,} | {self.rss0 / 1024:.1f} | {self.rss_n / 1024:.1f} | {per_cell} |"
        )


@dataclass
class Joins:
    n: int
    latencies_ms: list[float] = field(default_factory=list)
    handshakes_ms: list[float] = field(default_factory=list)
    after_handshake_ms: list[float] = field(default_factory=list)
    leaves_ms: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def p99_ms(self) -> float | None:
        """From its handshake completed (the server has accepted and joined it) until every
        client shows N+1: what the target compares with the bare loop's fan-out."""
        return percentile(self.after_handshake_ms, 99) if self.after_handshake_ms else None

    def summary(self) -> str:
        def stats(values: list[float]) -> str:
            return (
                f"p50 {statistics.median(values):.1f}, p99 {percentile(values, 99):.1f}, "
                f"max {max(values):.1f} ms"
            )

        text = (
            f"One more join at N={self.n:,} ({len(self.latencies_ms)} probes): from its "
            f"handshake completed until every client shows N+1: "
            f"**{stats(self.after_handshake_ms)}**; from starting its handshake: "
            f"{stats(self.latencies_ms)} (the handshake alone: {stats(self.handshakes_ms)})"
        )
        if self.leaves_ms:
            text += f"; after it leaves, until all show N again: {stats(self.leaves_ms)}"
        return text + "." + (f" {self.error}" if self.error else "")


@dataclass
class AtN:
    n: int
    storms: list[Storm] = field(default_factory=list)
    fanouts: list[Fanout] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)
    joins: Joins | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def storm(self, label: str) -> Storm | None:
        return next((s for s in self.storms if s.label == label), None)

    def fanout(self, label: str) -> Fanout | None:
        return next((f for f in self.fanouts if f.label == label), None)

    def mem(self, label: str) -> Memory | None:
        return next((m for m in self.memory if m.label == label), None)


# --- running servers and probes ---------------------------------------------------------


@contextmanager
def running(server: Server, log_dir: Path, dsn: str) -> Iterator[tuple[Proc, int]]:
    """The server on a free port (uvicorn by bench.common.serve, or the picows process)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    if server.app is None:
        port = free_port()
        args = [sys.executable, "-m", "bench.references.picows_broadcast", "--port", str(port)]
        with Proc(args, log=log_dir / "picows.log") as proc:
            wait_port(port, proc)
            yield proc, port
        return
    env = our_env(dsn) if server.ours else None
    with serve(server.app, log_dir=log_dir, env=env, extra=server.extra) as (proc, port):
        yield proc, port


def our_env(dsn: str) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "SEED_DEMO_DATA": "false",
        "LOG_LEVEL": "warning",
        "COUNTER_WINDOW_MS": "50",
        # The load client's senders burst far past the per-socket frame limit (1008).
        "WS_MAX_MESSAGES_PER_S": "1000000",
    }


def kill(proc: Proc) -> None:
    """SIGKILL by pid: a server stuck in O(N²) work would take minutes to shut down."""
    if proc.popen.poll() is None:
        proc.popen.kill()
        proc.popen.wait(timeout=15)


class HealthProbe:
    """GET /health every `every` seconds on a new connection, from a thread of the bench
    process, while the block runs; latency includes connecting."""

    def __init__(self, port: int, *, every: float = 0.05, timeout: float = 1.0) -> None:
        self.port, self.every, self.timeout = port, every, timeout
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            ok = False
            try:
                conn.request("GET", "/health")
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            self.latencies.append(time.perf_counter() - started)
            self.failures += not ok
            due = max(due + self.every, time.monotonic())  # no burst to catch up
            self._stop.wait(due - time.monotonic())  # the pace; set() ends it at once

    def result(self) -> Health:
        ms = [x * 1000 for x in self.latencies]
        if not ms:
            return Health()
        return Health(
            probes=len(ms),
            failures=self.failures,
            p50_ms=percentile(ms, 50),
            p99_ms=percentile(ms, 99),
            max_ms=max(ms),
        )


def _url(port: int, path: str) -> str:
    return f"ws://127.0.0.1:{port}{path}"


def _client(log_dir: Path) -> LoadClient:
    log_dir.mkdir(parents=True, exist_ok=True)
    return LoadClient(log=log_dir / "loadclient.log", cwd=PROJECT_ROOT)


def _close(client: LoadClient, plan: Plan) -> CloseReply:
    return client.call(Close(timeout=plan.close_cap), CloseReply, timeout=plan.close_cap + 30)


# --- the measurements -------------------------------------------------------------------


def measure_memory(client: LoadClient, proc: Proc, port: int, m: Memory, plan: Plan) -> None:
    """Idle /ws/echo connections offering permessage-deflate as browsers do:
    (RSS with N open - RSS before) / N, on a server that has only been warmed up."""
    url = _url(port, "/ws/echo")
    client.call(Connect(url=url, n=WARMUP, deflate=True), ConnectReply, timeout=60)
    _close(client, plan)
    m.rss0 = rss_kib(proc.pid)
    reply = client.call(
        Connect(url=url, n=m.n, deflate=True, timeout=plan.connect_cap),
        ConnectReply,
        timeout=plan.connect_cap + 30,
    )
    m.rss_n = rss_kib(proc.pid)
    m.negotiated = reply.deflate_negotiated
    if reply.connected != m.n:
        m.error = f"only {reply.connected:,} of {m.n:,} connected {reply.errors[:1]}"
    _close(client, plan)


def measure_storm(
    client: LoadClient,
    proc: Proc,
    port: int,
    storm: Storm,
    path: str,
    *,
    connect_cap: float,
    converge_cap: float,
) -> None:
    """Connect N clients (at most 100 handshakes in flight) while /health is probed every
    50 ms; for a counter, then wait until every client shows N."""
    storm.converge_cap = converge_cap
    client_cpu = client.call(Stats(), Snapshot, timeout=30).client_cpu
    server_cpu = cpu_seconds(proc.pid)
    with HealthProbe(port) as probe:
        reply = client.call(
            Connect(url=_url(port, path), n=storm.n, timeout=connect_cap),
            ConnectReply,
            timeout=connect_cap + 30,
        )
        storm.connected = reply.connected
        if reply.connected == storm.n and not reply.timed_out:
            storm.connect_s = reply.elapsed
        elif reply.timed_out:
            storm.note = f"not all connected within the cap ({connect_cap:g} s)"
        else:
            storm.note = f"{reply.failed:,} handshakes failed: {reply.errors[:1]}"
        snapshot = reply.snapshot
        if storm.counts and storm.connect_s is not None:
            waited = client.call(
                Await(value=str(storm.n), timeout=converge_cap),
                AwaitReply,
                timeout=converge_cap + 30,
            )
            storm.frames, snapshot = waited.frames, waited.snapshot
            if waited.ok:
                storm.converge_s = max(0.0, waited.after_last_handshake or 0.0)
            else:
                shown = ", ".join(f"{v}: {c:,}" for v, c in waited.snapshot.values.items())
                storm.note = f"did not converge within {converge_cap:g} s (clients showed "
                storm.note += f"{shown})"
        elif storm.counts:
            storm.frames = reply.snapshot.frames
        if snapshot.dropped:
            storm.note += f" ({snapshot.dropped:,} dropped by the server)"
    storm.server_cpu = cpu_seconds(proc.pid) - server_cpu
    storm.client_cpu = snapshot.client_cpu - client_cpu
    storm.health = probe.result()


def measure_joins(client: LoadClient, port: int, joins: Joins, plan: Plan) -> None:
    """One more /counter client at N, `join_probes` times, each after a quiet spell: from
    starting its handshake until every client (it included) shows N+1; then it leaves."""
    n = joins.n
    reply = client.call(
        Join(
            url=_url(port, "/counter"),
            base=str(n),
            joined=str(n + 1),
            probes=plan.join_probes,
            quiet=plan.quiet,
            timeout=plan.join_cap,
        ),
        JoinReply,
        timeout=plan.join_probes * (2 * plan.join_cap + plan.quiet) + 30,
    )
    joins.latencies_ms = [x * 1000 for x in reply.latencies]
    joins.handshakes_ms = [x * 1000 for x in reply.handshakes]
    joins.after_handshake_ms = [x * 1000 for x in reply.after_handshake]
    joins.leaves_ms = [x * 1000 for x in reply.leaves]
    joins.error = reply.error or ""


def listen(client: LoadClient, port: int, fan: Fanout, plan: Plan, *, deflate: bool) -> bool:
    """N /ws/broadcast listeners, and 2 unmeasured probes; False if not all connected."""
    reply = client.call(
        Connect(
            url=_url(port, "/ws/broadcast"), n=fan.n, deflate=deflate, timeout=plan.connect_cap
        ),
        ConnectReply,
        timeout=plan.connect_cap + 30,
    )
    fan.deflate = reply.deflate_negotiated
    if reply.connected != fan.n:
        fan.error = f"only {reply.connected:,} of {fan.n:,} connected {reply.errors[:1]}"
        return False
    cap = 2 * plan.probe_cap + 30
    client.call(Broadcast(probes=2, timeout=plan.probe_cap), BroadcastReply, timeout=cap)
    return True


def burst(client: LoadClient, proc: Proc, fan: Fanout, plan: Plan) -> None:
    """One of the N listeners sends a 32-byte text frame and waits until all N (itself
    included) have it, `probes` times in a row; the server process's CPU seconds over the
    burst, delivery latency per client and the fan-out time per probe."""
    probes = max(plan.min_probes, min(plan.max_probes, plan.broadcast_frames // fan.n))
    before = cpu_seconds(proc.pid)
    reply = client.call(
        Broadcast(probes=probes, timeout=plan.probe_cap),
        BroadcastReply,
        timeout=probes * plan.probe_cap + 30,
    )
    cpu = cpu_seconds(proc.pid) - before
    if reply.error or reply.p50 is None or reply.p99 is None or reply.max is None:
        fan.bursts.append(None)
        fan.error = reply.error or "no frame arrived"
        return
    fan.bursts.append(
        Burst(
            probes=reply.probes,
            frames=reply.delivered,
            cpu_s=cpu,
            p50_ms=reply.p50 * 1000,
            p99_ms=reply.p99 * 1000,
            max_ms=reply.max * 1000,
            fanout_median_ms=statistics.median(reply.fanouts) * 1000,
            fanout_p99_ms=percentile(reply.fanouts, 99) * 1000,
            wire_bytes=reply.wire_bytes / reply.delivered,
        )
    )


def _attempt(at: AtN, what: str, step: Callable[[], None]) -> None:
    """Run one measurement; a failure is noted in the report and the run goes on."""
    print(f"bench ws: {time.strftime('%H:%M:%S')} N={at.n:,}: {what}", flush=True)
    try:
        step()
    except (LoadClientError, OSError, RuntimeError, TimeoutError) as exc:
        at.notes.append(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")


def run_size(n: int, plan: Plan, dsn: str, logs: Path) -> AtN:
    at, started = AtN(n), time.monotonic()
    counter_cap = plan.naive_cap if n <= 1000 else plan.naive_cap_large

    def ours_storms() -> None:
        log = logs / f"{n}-ours-storms"
        with running(OURS, log, dsn) as (proc, port), _client(log) as client:
            memory = Memory(OURS.label, " ".join(OURS.extra), n)
            at.memory.append(memory)
            measure_memory(client, proc, port, memory, plan)
            echo = Storm("ours /ws/echo", n, counts=False)
            at.storms.append(echo)
            measure_storm(
                client, proc, port, echo, "/ws/echo", connect_cap=plan.connect_cap, converge_cap=0
            )
            _close(client, plan)
            storm = Storm("ours /counter", n)
            at.storms.append(storm)
            measure_storm(
                client,
                proc,
                port,
                storm,
                "/counter",
                connect_cap=plan.connect_cap,
                converge_cap=plan.converge_cap,
            )
            if storm.converged:
                at.joins = Joins(n)
                measure_joins(client, port, at.joins, plan)
            else:
                at.joins = Joins(n, error="not measured: the storm did not converge")
            closed = _close(client, plan)
            if closed.remaining:
                at.notes.append(f"ours: {closed.remaining:,} connections still open at the cap")

    def broadcasts() -> None:
        """Ours, the bare loop and picows each hold N listeners at once (each with its own
        load client); the rounds take turns, the order rotated by one each round."""
        with ExitStack() as stack:
            runs: list[tuple[Proc, int, LoadClient, Fanout]] = []
            for server, label in [(OURS, "ours"), (BARE, "bare"), (PICOWS, "picows")]:
                log = logs / f"{n}-{server.key}-broadcast"
                proc, port = stack.enter_context(running(server, log, dsn))
                client = stack.enter_context(_client(log))
                fan = Fanout(f"{label} /ws/broadcast", n)
                at.fanouts.append(fan)
                if listen(client, port, fan, plan, deflate=False):
                    runs.append((proc, port, client, fan))
            for turn in range(plan.rounds):
                for proc, _, client, fan in runs[turn % len(runs) :] + runs[: turn % len(runs)]:
                    burst(client, proc, fan, plan)
            for _, _, client, _ in runs:
                _close(client, plan)

    def deflate() -> None:
        """Ours accepting permessage-deflate: one burst with clients that do not offer it,
        one with clients that offer it (and get it), same server."""
        log = logs / f"{n}-{OURS_DEFLATE.key}-broadcast"
        with running(OURS_DEFLATE, log, dsn) as (proc, port), _client(log) as client:
            for offer, label in [(False, "not offered"), (True, "negotiated")]:
                fan = Fanout(f"ours, deflate on, /ws/broadcast, deflate {label}", n)
                at.fanouts.append(fan)
                if listen(client, port, fan, plan, deflate=offer):
                    burst(client, proc, fan, plan)
                _close(client, plan)

    def memory_only(server: Server) -> None:
        log = logs / f"{n}-{server.key}-memory"
        with running(server, log, dsn) as (proc, port), _client(log) as client:
            memory = Memory(server.label, " ".join(server.extra), n)
            at.memory.append(memory)
            measure_memory(client, proc, port, memory, plan)

    def reference(server: Server, label: str) -> None:
        log = logs / f"{n}-{server.key}"
        with running(server, log, dsn) as (proc, port), _client(log) as client:
            memory = Memory(server.label, " ".join(server.extra), n)
            at.memory.append(memory)
            measure_memory(client, proc, port, memory, plan)
            echo = Storm(f"{label} /ws/echo", n, counts=False)
            at.storms.append(echo)
            measure_storm(
                client, proc, port, echo, "/ws/echo", connect_cap=plan.connect_cap, converge_cap=0
            )
            _close(client, plan)

    def quadratic(server: Server, label: str) -> None:
        log = logs / f"{n}-{server.key}-counter"
        with running(server, log, dsn) as (proc, port), _client(log) as client:
            storm = Storm(f"{label} /counter", n)
            at.storms.append(storm)
            try:
                measure_storm(
                    client,
                    proc,
                    port,
                    storm,
                    "/counter",
                    connect_cap=counter_cap,
                    converge_cap=counter_cap,
                )
            finally:
                kill(proc)  # its clean-up is O(N²) too
                _close(client, plan)

    _attempt(at, "ours storms", ours_storms)
    _attempt(at, "broadcast: ours, bare loop, picows", broadcasts)
    if n == plan.deflate_at:
        _attempt(at, "ours, deflate on: broadcast", deflate)
    if n == plan.variants_at:
        _attempt(at, "ours memory, deflate on", lambda: memory_only(OURS_DEFLATE))
    _attempt(at, "bare ASGI", lambda: reference(BARE, "bare"))
    if n == plan.variants_at:
        _attempt(at, "bare memory, deflate off", lambda: memory_only(BARE_NO_DEFLATE))
    if n <= plan.naive_max:
        _attempt(at, "bare counter", lambda: quadratic(BARE, "bare direct"))
        _attempt(at, "naive counter", lambda: quadratic(NAIVE, "naive"))
    else:
        at.notes.append(
            f"The naive and the bare direct counters are not run at N={n:,}: both send "
            f"N²/2 frames ({n * n // 2:,}) for a storm; at N={plan.naive_max:,} they are "
            f"capped at {plan.naive_cap_large:g} s."
        )
    _attempt(at, "picows", lambda: reference(PICOWS, "picows"))
    at.seconds = time.monotonic() - started
    return at


# --- targets and the report -------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float:
    return a / b if a is not None and b else math.inf


def targets(at: AtN) -> list[Target]:
    n = at.n
    out: list[Target] = []
    counter, echo = at.storm("ours /counter"), at.storm("ours /ws/echo")
    connect = _ratio(counter.connect_s if counter else None, echo.connect_s if echo else None)
    out.append(
        Target(
            f"WS /counter storm N={n}: connect time ours /counter ÷ ours /ws/echo",
            connect,
            1.3,
            higher_is_better=False,
        )
    )
    if counter is not None and counter.converged and counter.converge_s is not None:
        name, converge = "s after the last handshake until every client shows N", counter.converge_s
    else:
        cap = counter.converge_cap if counter else 0
        name, converge = f"every client shows N (did not converge within {cap:g} s)", math.inf
    out.append(Target(f"WS /counter storm N={n}: {name}", converge, 1.0, higher_is_better=False))
    frames = counter.frames / n if counter and counter.frames is not None else math.inf
    out.append(
        Target(f"WS /counter storm N={n}: frames received ÷ N", frames, 3.0, higher_is_better=False)
    )
    health = counter.health.p99_ms if counter and counter.health.p99_ms is not None else math.inf
    out.append(
        Target(
            f"WS /counter storm N={n}: /health p99 ms during the storm",
            health,
            100.0,
            higher_is_better=False,
        )
    )
    bare = at.fanout("bare /ws/broadcast")
    join = at.joins.p99_ms if at.joins else None
    out.append(
        Target(
            f"WS one more join at N={n}: p99 after its handshake ÷ bare loop fan-out (median)",
            _ratio(join, bare.median("fanout_median_ms") if bare else None),
            1.5,
            higher_is_better=False,
        )
    )
    ours = at.fanout("ours /ws/broadcast")
    per_cpu = round_ratio(ours, bare, lambda b: b.per_cpu_s)
    out.append(
        Target(
            f"WS /ws/broadcast N={n}: frames per CPU-s ours ÷ bare loop (median of rounds)",
            0.0 if math.isinf(per_cpu) else per_cpu,
            0.8,
            higher_is_better=True,
        )
    )
    out.append(
        Target(
            f"WS /ws/broadcast N={n}: p99 delivery ours ÷ bare loop (median of rounds)",
            round_ratio(ours, bare, lambda b: b.p99_ms),
            1.5,
            higher_is_better=False,
        )
    )
    ours_mem, bare_mem = at.mem(OURS.label), at.mem(BARE.label)
    out.append(
        Target(
            f"WS idle connection N={n}: RSS per connection ours ÷ bare uvicorn "
            "(client offers permessage-deflate)",
            _ratio(
                ours_mem.per_conn if ours_mem else None, bare_mem.per_conn if bare_mem else None
            ),
            1.2,
            higher_is_better=False,
        )
    )
    return out


def _method(plan: Plan, smoke: bool) -> list[str]:
    flags = " ".join(uvicorn_args("APP", 0)[1:]).replace(sys.executable, "python")
    sizes = ", ".join(f"{n:,}" for n in plan.sizes)
    return [
        f"N = {sizes}. Smoke run: tiny loads, not a measurement." if smoke else f"N = {sizes}.",
        "",
        "How it was run:",
        "",
        f"- every uvicorn server: `python {flags}` (port free, chosen per start; "
        "bench.common.serve); ours as `src.main:app` with "
        "`DATABASE_URL=… SEED_DEMO_DATA=false LOG_LEVEL=warning COUNTER_WINDOW_MS=50`"
        + (f" and `{' '.join(OUR_FLAGS)}`" if OUR_FLAGS else "")
        + "; the bare ASGI floor `bench.references.bare_asgi_ws:app`; the tutorial's counter "
        "`bench.references.naive_counter:app`; uvicorn's WebSocket implementation is its "
        "default (websockets-sansio), permessage-deflate accepted unless "
        "`--ws-per-message-deflate false`;",
        "- the ceiling: `python -m bench.references.picows_broadcast --port PORT` (picows on "
        "uvloop, no ASGI);",
        "- the load: `python -m bench.loadclient` (picows on uvloop, its own process, JSON "
        "commands on stdin), at most 100 handshakes in flight, no extension offered except "
        "where permessage-deflate is said to be (`Sec-WebSocket-Extensions: "
        "permessage-deflate; client_max_window_bits`, as Chrome sends it);",
        "- each server starts fresh for each group of measurements below and is stopped by "
        "its pid; the O(N²) counters are killed (SIGKILL) after their storm.",
        "",
        "What each figure is:",
        "",
        "- **storm**: N clients connect; *connect* = from the first handshake started to the "
        "last one completed (client clock); *converged* = from the last handshake completed "
        "until the last client received the frame N (the latest arrival among clients); "
        "*frames* = text frames all clients received from the first handshake until then; "
        "*/health p99* = GET /health on a new connection every 50 ms from the bench process "
        "(1 s timeout; a timeout counts as failed and as 1 s) from the first handshake until "
        "convergence; *CPU s* = CPU seconds of the server process and of the load client "
        "over the storm (the client must stay below the server). Caps: handshakes "
        f"{plan.connect_cap:g} s, convergence "
        f"{plan.converge_cap:g} s; the O(N²) counters {plan.naive_cap:g} s each up to "
        f"N = 1,000 and {plan.naive_cap_large:g} s each above, up to "
        f"N = {plan.naive_max:,}.",
        "- **join**: at N, after a quiet spell of "
        f"{plan.quiet * 1000:.0f} ms, one more /counter client connects; from its handshake "
        "completed (the server accepts, then joins it and publishes the count) until every "
        "client (it included) shows N+1, and also from starting its handshake; then it "
        f"leaves and all show N again. {plan.join_probes} probes; p99 by nearest rank (of "
        f"{plan.join_probes}: the largest). The target compares the p99 from the handshake "
        "completed with the median fan-out time of the bare loop (below), same N, same run.",
        "- **broadcast**: ours, the bare loop and picows run at the same time, each with N "
        "/ws/broadcast listeners from its own load client; in a burst, one listener sends a "
        "32-byte text frame (a tag and hex digits) and waits until all N (itself included) "
        "received it, probes in a row: "
        f"{plan.broadcast_frames:,} ÷ N, at least {plan.min_probes} and at most "
        f"{plan.max_probes} (after 2 unmeasured). {plan.rounds} rounds; in each, every server "
        "has one burst, the order rotated by one each round. *delivery* = per client, send "
        "to receipt (p50/p99/max over all clients of a burst); *fan-out* = per probe, send "
        "to the last receipt (median and p99 of a burst); *frames per CPU-s* = frames "
        "received ÷ CPU seconds (user+system, /proc) of the server process over the burst; "
        "*wire B* = payload bytes per frame as received. The table gives the median over "
        "rounds (frames per CPU-s also its range); the targets take ours ÷ bare within each "
        "round, then the median of those ratios.",
        "- **idle RSS**: on a fresh server, "
        f"{WARMUP} connections opened and closed (warm-up), RSS read (/proc VmRSS), N idle "
        "/ws/echo connections opened offering permessage-deflate, RSS read again: "
        "(RSS with N − RSS before) ÷ N. The target compares ours (its flags) with bare "
        "uvicorn at uvicorn's defaults.",
        "",
        "All timestamps of a measurement come from one clock in one process (the load client, "
        "or the bench for /health). The load client and the server share a 2-core machine "
        "(with whatever else runs on it): numbers are noisy.",
    ]


def _tables(at: AtN) -> list[str]:
    n = at.n
    lines = [
        f"### N = {n:,}",
        "",
        "Storms (connect N clients; a counter must then show N on every client):",
        "",
        "| server, endpoint | connect s | handshakes/s | converged after last handshake "
        "| frames received | /health p99 ms | CPU s server / client |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(s.row() for s in at.storms),
        "",
    ]
    if at.joins is not None:
        j = at.joins
        if j.latencies_ms:
            lines.append(j.summary())
        else:
            lines.append(f"One more join at N={n:,}: {j.error or 'not measured'}.")
        lines.append("")
    lines += [
        "Broadcast (latencies in ms):",
        "",
        "| server | rounds × probes | delivery p50 | p99 | max | fan-out median "
        "| fan-out p99 | frames | server CPU s | frames per CPU-s | wire B |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(f.row() for f in at.fanouts),
        "",
        "Idle connections (RSS in MiB; per connection in KiB):",
        "",
        "| server | flags | deflate negotiated | RSS before | RSS with N | per connection |",
        "| --- | --- | --- | --- | --- | --- |",
        *(m.row() for m in at.memory),
        "",
    ]
    same_flags = [
        (at.mem(OURS.label), at.mem(BARE_NO_DEFLATE.label), "deflate off"),
        (at.mem(OURS_DEFLATE.label), at.mem(BARE.label), "uvicorn's default, deflate on"),
    ]
    notes = [
        f"Idle RSS at the same flags ({flags}): ours ÷ bare "
        f"{ours_m.per_conn / bare_m.per_conn:.2f}× ({ours_m.per_conn - bare_m.per_conn:+.1f} KiB "
        "per connection)."
        for ours_m, bare_m, flags in same_flags
        if ours_m and bare_m and ours_m.per_conn and bare_m.per_conn
    ]
    notes += [
        *(f"{f.label}: {f.error}" for f in at.fanouts if f.error),
        *(f"{m.label} idle RSS: {m.error}" for m in at.memory if m.error),
        *at.notes,
    ]
    lines += [*(f"- {note}" for note in notes), f"- N={n:,} took {at.seconds:.0f} s.", ""]
    return lines


def _deflate_note(results: list[AtN]) -> list[str]:
    """What the measurement says about permessage-deflate, from this run's numbers."""
    lines = ["### permessage-deflate", ""]
    for at in results:
        plain, packed = (
            at.fanout("ours, deflate on, /ws/broadcast, deflate not offered"),
            at.fanout("ours, deflate on, /ws/broadcast, deflate negotiated"),
        )
        if plain and packed and plain.per_cpu_s and packed.per_cpu_s:
            lines.append(
                f"At N={at.n:,}, with deflate negotiated ours delivered "
                f"{packed.per_cpu_s:,.0f} frames per CPU-s against {plain.per_cpu_s:,.0f} "
                f"without ({packed.per_cpu_s / plain.per_cpu_s:.2f}×: each socket compresses "
                f"the frame again in its own context, so the frame is no longer encoded once), "
                f"and a 32-byte frame took {packed.median('wire_bytes') or 0:.1f} payload bytes "
                f"instead of {plain.median('wire_bytes') or 0:.1f}."
            )
    for at in results:
        mems = {m.label: m.per_conn for m in at.memory}
        if mems.get(OURS_DEFLATE.label) is not None and mems.get(OURS.label) is not None:
            parts = [
                f"{label} {value:.1f} KiB" for label, value in mems.items() if value is not None
            ]
            lines.append(
                f"Idle memory per connection at N={at.n:,} with a browser-like offer: "
                + ", ".join(parts)
                + "."
            )
    lines += [
        "",
        "Tiny frames (counts, short chat lines) gain a few bytes at most from compression, "
        "while every connection that negotiates it keeps a compressor and a decompressor "
        "(the idle RSS difference above) and every frame is compressed once per socket "
        "(same server, same frames: the frames per CPU-s above). So ours is served with "
        "permessage-deflate off (scripts/run.py: `ws_per_message_deflate=False`; here "
        f"OUR_FLAGS = `{' '.join(OUR_FLAGS) or '(none)'}`); a browser that offers it gets a "
        "plain connection.",
        "",
    ]
    return lines


def run(dsn: str, work: Path, *, smoke: bool = False) -> Section:
    plan = SMOKE if smoke else FULL
    raise_file_limit()
    started = time.monotonic()
    logs = work / "ws"
    results = [run_size(n, plan, dsn, logs) for n in plan.sizes]
    elapsed = time.monotonic() - started
    lines = [*_method(plan, smoke), ""]
    for at in results:
        lines += _tables(at)
    lines += _deflate_note(results)
    lines.append(f"The WebSocket section took {elapsed:.0f} s.")
    return Section(title="WebSocket", markdown="\n".join(lines), targets=targets(results[-1]))
