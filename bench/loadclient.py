"""The WebSocket load client of `make bench`: its own process, picows on uvloop.

    python -m bench.loadclient        # then one JSON command a line on stdin

Each command gets one JSON reply line on stdout (or `{"client_error": "..."}`), in order; the
client exits on `quit` or when stdin closes (so it never outlives the bench). Every wait
inside it has the cap its command gives. The bench drives it through `LoadClient`.

Commands (`Command` below):

- connect: open `n` connections to `url` with at most `inflight` handshakes in flight,
  optionally offering `Sec-WebSocket-Extensions: permessage-deflate;
  client_max_window_bits` (what Chrome sends). Replies when all are open (or at the cap)
  with the time from the first handshake started to the last one completed.
- await: until every open connection's last text frame equals `value` (the /counter
  count); replies the time from the last handshake completed until that was true (the
  latest arrival of the value among the clients) and the frames received since `connect`.
- join: `probes` times: one more connection joins (after `quiet` seconds without
  changes); the time from starting its handshake until every client (it included) shows
  `joined`; then it leaves and every client shows `base` again.
- broadcast: `probes` times: the first client sends one `size`-byte text frame and waits
  until every client has received it; per-client delivery latencies (p50/p99/max) and the
  time until the last client had it (the fan-out time) of each probe.
- stats, close (all connections; waits until they are gone), quit.

Per connection it keeps only the last text frame, when it arrived and how many arrived;
each frame costs one comparison or two, so the client stays far below the server's CPU.
Frames compressed with permessage-deflate (RSV1) are inflated per connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
import resource
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import uvloop
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"  # as Chrome offers it
READ_BUFFER = 1024  # picows' per-connection read buffer (grows on demand); default 16 KiB
HANDSHAKE_TIMEOUT = 30.0


# --- the line protocol ------------------------------------------------------------------


class Connect(msgspec.Struct, tag="connect", kw_only=True):
    url: str
    n: int
    inflight: int = 100
    deflate: bool = False
    timeout: float = 60.0


class Await(msgspec.Struct, tag="await", kw_only=True):
    value: str
    timeout: float


class Join(msgspec.Struct, tag="join", kw_only=True):
    url: str
    base: str  # what every client shows before and after each probe (the count N)
    joined: str  # what every client must show while the newcomer is there (N + 1)
    probes: int
    quiet: float  # seconds without changes before each join (a join after a quiet spell)
    timeout: float  # per probe, for the join and for the leave each


class Broadcast(msgspec.Struct, tag="broadcast", kw_only=True):
    probes: int
    size: int = 32
    timeout: float = 15.0  # per probe


class Stats(msgspec.Struct, tag="stats"):
    pass


class Close(msgspec.Struct, tag="close", kw_only=True):
    timeout: float


class Quit(msgspec.Struct, tag="quit"):
    pass


Command = Connect | Await | Join | Broadcast | Stats | Close | Quit


class Snapshot(msgspec.Struct, kw_only=True):
    conns: int  # connections opened and not closed by us
    open: int
    dropped: int  # closed by the server or the network, not by us
    frames: int  # text frames received since the last connect command
    wire_bytes: int  # their payload bytes as received (compressed, when deflate is on)
    values: dict[str, int]  # the most common last frames: value -> clients ("-": none yet)
    server_closes: dict[str, int]  # close codes the server sent -> count
    client_cpu: float  # this process's CPU seconds so far


class ConnectReply(msgspec.Struct, kw_only=True):
    connected: int
    failed: int
    errors: list[str]
    elapsed: float | None  # first handshake started -> last one completed, seconds
    timed_out: bool
    deflate_negotiated: int  # connections whose 101 accepted permessage-deflate
    snapshot: Snapshot


class AwaitReply(msgspec.Struct, kw_only=True):
    ok: bool
    after_last_handshake: float | None  # seconds, when ok
    frames: int  # text frames received by all clients since the connect command
    snapshot: Snapshot


class JoinReply(msgspec.Struct, kw_only=True):
    latencies: list[float]  # per probe: handshake start -> every client shows `joined`
    handshakes: list[float]  # per probe: handshake start -> handshake complete
    after_handshake: list[float]  # per probe: handshake complete -> every client shows it
    leaves: list[float]  # per probe: close sent -> every client shows `base` again
    error: str | None
    snapshot: Snapshot


class BroadcastReply(msgspec.Struct, kw_only=True):
    probes: int  # completed probes
    delivered: int  # frames received for the completed probes
    p50: float | None  # per-client delivery latency, seconds
    p99: float | None
    max: float | None
    fanouts: list[float]  # per probe: sent -> the last client received it
    wire_bytes: int  # payload bytes of the probe frames as received
    error: str | None
    snapshot: Snapshot


class CloseReply(msgspec.Struct, kw_only=True):
    closed: int
    remaining: int
    elapsed: float


Reply = ConnectReply | AwaitReply | JoinReply | BroadcastReply | Snapshot | CloseReply


def probe_frame(probe: int, size: int) -> bytes:
    """A unique text frame of `size` bytes: a tag and hex digits (compresses like text
    does, not like a run of one letter)."""
    tag = f"b{probe:07d}".encode()
    digest = hashlib.sha256(tag).hexdigest().encode()
    while len(tag) + len(digest) < size:
        digest += hashlib.sha256(digest).hexdigest().encode()
    return (tag + digest)[:size]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest-rank method; values need not be sorted."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


# --- the client process -----------------------------------------------------------------


class Conn(WSListener):
    """One connection: its last text frame, when it came, how many came."""

    __slots__ = ("frames", "gone", "inflate", "last", "last_at", "leaving", "load", "transport")

    def __init__(self, load: Load) -> None:
        super().__init__()
        self.load = load
        self.transport: WSTransport | None = None
        self.last: bytes | None = None
        self.last_at = 0.0
        self.frames = 0
        self.gone = False  # disconnected
        self.leaving = False  # we closed it
        self.inflate: Any = None  # a zlib decompressor (permessage-deflate), made on demand

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.load.connected(self, transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            wire = len(payload)
            if frame.rsv1:  # permessage-deflate, context takeover: one inflater per socket
                if self.inflate is None:
                    self.inflate = zlib.decompressobj(wbits=-15)
                payload = self.inflate.decompress(payload + b"\x00\x00\xff\xff")
            self.load.text(self, payload, wire)
        elif kind is WSMsgType.CLOSE:
            code = frame.get_close_code()
            if not self.leaving:
                self.load.server_closes[str(code.value)] += 1
            transport.send_close(code)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.load.disconnected(self)


class Load:
    """Every connection of this client and what the current command waits for."""

    def __init__(self) -> None:
        self.conns: list[Conn] = []
        self.open = 0
        self.dropped = 0
        self.frames = 0
        self.wire_bytes = 0
        self.negotiated = 0
        self.live_n = 0  # open and not being closed by us
        self.server_closes: Counter[str] = Counter()
        self.last_handshake = 0.0
        # await: every live connection's last frame equals `target`
        self.target: bytes | None = None
        self.matching = 0
        self.expected = 0
        self.converged: asyncio.Future[float] | None = None
        # broadcast: who got the probe frame, and when
        self.probe: bytes | None = None
        self.probe_sent = 0.0
        self.probe_got = 0
        self.probe_need = 0
        self.probe_wire = 0
        self.latencies: list[float] = []
        self.probe_done: asyncio.Future[float] | None = None
        self.all_closed: asyncio.Future[None] | None = None

    # callbacks from the connections

    def connected(self, conn: Conn, transport: WSTransport) -> None:
        self.conns.append(conn)
        self.open += 1
        self.live_n += 1
        self.last_handshake = time.monotonic()
        if "permessage-deflate" in transport.response.headers.get("Sec-WebSocket-Extensions", ""):
            self.negotiated += 1

    def text(self, conn: Conn, payload: bytes, wire: int) -> None:
        now = time.monotonic()
        self.frames += 1
        self.wire_bytes += wire
        conn.frames += 1
        if payload == self.probe:
            self.latencies.append(now - self.probe_sent)
            self.probe_wire += wire
            self.probe_got += 1
            if self.probe_got >= self.probe_need and self.probe_done is not None:
                if not self.probe_done.done():
                    self.probe_done.set_result(now)
        old, conn.last, conn.last_at = conn.last, payload, now
        target = self.target
        if target is not None and not conn.gone and not conn.leaving:
            if old == target:
                self.matching -= 1
            if payload == target:
                self.matching += 1
                self._check()

    def disconnected(self, conn: Conn) -> None:
        if conn.gone:
            return
        conn.gone = True
        self.open -= 1
        if not conn.leaving:
            self.dropped += 1
            self.live_n -= 1
            if self.target is not None and conn.last == self.target:
                self.matching -= 1
        if self.open == 0 and self.all_closed is not None and not self.all_closed.done():
            self.all_closed.set_result(None)

    # waiting for every client to show a value

    def live(self) -> list[Conn]:
        return [c for c in self.conns if not c.gone and not c.leaving]

    def leave(self, conn: Conn) -> None:
        """We are closing `conn`: it no longer counts as a member."""
        if not conn.leaving and not conn.gone:
            self.live_n -= 1
            if self.target is not None and conn.last == self.target:
                self.matching -= 1
        conn.leaving = True

    def expect(self, value: str | None, expected: int) -> asyncio.Future[float]:
        """A future resolved (with the time it became true) once `expected` connections
        are open and every one of them shows `value` as its last frame."""
        self.target = None if value is None else value.encode()
        self.expected = expected
        self.matching = sum(1 for c in self.live() if c.last == self.target)
        self.converged = asyncio.get_running_loop().create_future()
        self._check()
        return self.converged

    def _check(self) -> None:
        waiter = self.converged
        if waiter is None or waiter.done():
            return
        if self.matching != self.expected or self.live_n != self.expected:
            return
        # the moment it became true: the latest arrival of the value among the clients
        waiter.set_result(max((c.last_at for c in self.live()), default=time.monotonic()))

    def snapshot(self) -> Snapshot:
        values = Counter(
            "-" if c.last is None else c.last.decode(errors="replace")[:40] for c in self.live()
        )
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return Snapshot(
            conns=len(self.live()),
            open=self.open,
            dropped=self.dropped,
            frames=self.frames,
            wire_bytes=self.wire_bytes,
            values=dict(values.most_common(5)),
            server_closes=dict(self.server_closes),
            client_cpu=usage.ru_utime + usage.ru_stime,
        )


async def _open(load: Load, url: str, headers: dict[str, str] | None) -> Conn:
    _, listener = await ws_connect(
        lambda: Conn(load),
        url,
        websocket_handshake_timeout=HANDSHAKE_TIMEOUT,
        extra_headers=headers,
        read_buffer_init_size=READ_BUFFER,
        max_redirects=0,
    )
    assert isinstance(listener, Conn)
    return listener


async def do_connect(load: Load, cmd: Connect) -> ConnectReply:
    load.frames = load.wire_bytes = load.negotiated = 0
    headers = {"Sec-WebSocket-Extensions": DEFLATE_OFFER} if cmd.deflate else None
    before = len(load.conns)
    left, failed, errors = cmd.n, 0, list[str]()

    async def worker() -> None:
        nonlocal left, failed
        while left > 0:
            left -= 1
            try:
                await _open(load, cmd.url, headers)
            except Exception as exc:  # counted and reported; the others go on
                failed += 1
                if len(errors) < 3:
                    errors.append(repr(exc)[:200])

    started = time.monotonic()
    workers = [asyncio.ensure_future(worker()) for _ in range(max(1, min(cmd.inflight, cmd.n)))]
    _, pending = await asyncio.wait(workers, timeout=cmd.timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=10)
    connected = len(load.conns) - before
    return ConnectReply(
        connected=connected,
        failed=failed,
        errors=errors,
        elapsed=load.last_handshake - started if connected else None,
        timed_out=bool(pending),
        deflate_negotiated=load.negotiated,
        snapshot=load.snapshot(),
    )


async def do_await(load: Load, cmd: Await) -> AwaitReply:
    waiter = load.expect(cmd.value, len(load.live()))
    try:
        at = await asyncio.wait_for(waiter, cmd.timeout)
    except TimeoutError:
        return AwaitReply(
            ok=False, after_last_handshake=None, frames=load.frames, snapshot=load.snapshot()
        )
    finally:
        load.target = None
    return AwaitReply(
        ok=True,
        after_last_handshake=at - load.last_handshake,
        frames=load.frames,
        snapshot=load.snapshot(),
    )


async def do_join(load: Load, cmd: Join) -> JoinReply:
    latencies, handshakes, leaves = list[float](), list[float](), list[float]()
    after_handshake = list[float]()
    error: str | None = None

    def reply() -> JoinReply:
        return JoinReply(
            latencies=latencies,
            handshakes=handshakes,
            after_handshake=after_handshake,
            leaves=leaves,
            error=error,
            snapshot=load.snapshot(),
        )

    try:
        for probe in range(cmd.probes):
            await asyncio.sleep(cmd.quiet)  # a quiet spell: the join is the first change
            members = len(load.live())
            started = time.monotonic()
            waiter = load.expect(cmd.joined, members + 1)
            try:
                newcomer = await asyncio.wait_for(_open(load, cmd.url, None), cmd.timeout)
                shook = load.last_handshake  # when its 101 arrived (on_ws_connected)
                handshakes.append(shook - started)
                done = await asyncio.wait_for(waiter, cmd.timeout)
                latencies.append(done - started)
                after_handshake.append(done - shook)
            except TimeoutError:
                error = f"probe {probe + 1}: not every client showed {cmd.joined} within "
                error += f"{cmd.timeout:g} s ({load.matching} of {members + 1} did)"
                return reply()
            load.leave(newcomer)
            waiter = load.expect(cmd.base, members)
            started = time.monotonic()
            assert newcomer.transport is not None
            newcomer.transport.send_close(WSCloseCode.OK)
            newcomer.transport.disconnect()
            try:
                leaves.append(await asyncio.wait_for(waiter, cmd.timeout) - started)
            except TimeoutError:
                error = f"probe {probe + 1}: after the leave, not every client showed "
                error += f"{cmd.base} within {cmd.timeout:g} s"
                break
            finally:
                load.conns.remove(newcomer)
    finally:
        load.target = None
    return reply()


async def do_broadcast(load: Load, cmd: Broadcast) -> BroadcastReply:
    members = load.live()
    load.latencies, load.probe_wire = [], 0
    fanouts, error, delivered = list[float](), None, 0
    loop = asyncio.get_running_loop()
    if not members or members[0].transport is None:
        error = "no connection to send from"
    else:
        sender = members[0].transport
        for probe in range(cmd.probes):
            load.probe = probe_frame(probe, cmd.size)
            load.probe_got, load.probe_need = 0, len(members)
            load.probe_done = loop.create_future()
            load.probe_sent = sent = time.monotonic()
            sender.send(WSMsgType.TEXT, load.probe)
            try:
                fanouts.append(await asyncio.wait_for(load.probe_done, cmd.timeout) - sent)
            except TimeoutError:
                error = f"probe {probe + 1}: {load.probe_got} of {load.probe_need} clients got "
                error += f"it within {cmd.timeout:g} s"
                break
            delivered = len(load.latencies)
    load.probe = load.probe_done = None
    latencies = load.latencies[:delivered]
    return BroadcastReply(
        probes=len(fanouts),
        delivered=delivered,
        p50=percentile(latencies, 50) if latencies else None,
        p99=percentile(latencies, 99) if latencies else None,
        max=max(latencies) if latencies else None,
        fanouts=fanouts,
        wire_bytes=load.probe_wire,
        error=error,
        snapshot=load.snapshot(),
    )


async def do_close(load: Load, cmd: Close) -> CloseReply:
    started = time.monotonic()
    members = load.live()
    load.all_closed = asyncio.get_running_loop().create_future()
    if load.open == 0:
        load.all_closed.set_result(None)
    for conn in members:
        load.leave(conn)
        if conn.transport is not None:
            conn.transport.send_close(WSCloseCode.OK)
            conn.transport.disconnect()
    for conn in load.conns:  # connections the server dropped: make sure they are shut
        if not conn.gone and conn.transport is not None:
            conn.transport.disconnect()
    try:
        await asyncio.wait_for(load.all_closed, cmd.timeout)
    except TimeoutError:
        for conn in load.conns:
            if not conn.gone and conn.transport is not None:
                conn.transport.disconnect(graceful=False)
    remaining = load.open
    load.conns = [c for c in load.conns if not c.gone]
    return CloseReply(
        closed=len(members) - remaining, remaining=remaining, elapsed=time.monotonic() - started
    )


async def serve_commands() -> None:
    load = Load()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    decoder = msgspec.json.Decoder(Command)
    encoder = msgspec.json.Encoder()
    while line := await reader.readline():
        reply: Reply | dict[str, str]
        try:
            cmd = decoder.decode(line)
            if isinstance(cmd, Quit):
                break
            reply = await _dispatch(load, cmd)
        except Exception as exc:  # the bench gets the error instead of a reply
            reply = {"client_error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.buffer.write(encoder.encode(reply) + b"\n")
        sys.stdout.buffer.flush()
    for conn in load.conns:
        if not conn.gone and conn.transport is not None:
            conn.transport.disconnect(graceful=False)


async def _dispatch(load: Load, cmd: Command) -> Reply:
    if isinstance(cmd, Connect):
        return await do_connect(load, cmd)
    if isinstance(cmd, Await):
        return await do_await(load, cmd)
    if isinstance(cmd, Join):
        return await do_join(load, cmd)
    if isinstance(cmd, Broadcast):
        return await do_broadcast(load, cmd)
    if isinstance(cmd, Close):
        return await do_close(load, cmd)
    return load.snapshot()


def raise_file_limit(wanted: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main() -> None:
    raise_file_limit()
    uvloop.run(serve_commands())


# --- the bench side ---------------------------------------------------------------------

R = TypeVar("R", bound=msgspec.Struct)


class LoadClientError(RuntimeError):
    """The load client answered a command with an error, died, or did not answer in time."""


class LoadClient:
    """Drives one `python -m bench.loadclient` process; stopped by its pid."""

    def __init__(self, *, log: Path, cwd: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bench.loadclient"],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._out,
            start_new_session=True,
        )
        self.pid = self.popen.pid
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, name=f"loadclient-{self.pid}", daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line)
        self._lines.put(b"")  # end of output: the process is gone

    def call(self, command: Command, reply: type[R], *, timeout: float) -> R:
        """Send one command; its reply, or LoadClientError if none comes within `timeout`."""
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(msgspec.json.encode(command) + b"\n")
            self.popen.stdin.flush()
            line = self._lines.get(timeout=timeout)
        except (BrokenPipeError, queue.Empty) as exc:
            raise LoadClientError(f"no answer to {command!r} within {timeout:g} s") from exc
        if not line:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise LoadClientError(f"the load client exited:\n{tail}")
        raw = msgspec.json.decode(line)
        if isinstance(raw, dict) and "client_error" in raw:
            raise LoadClientError(str(raw["client_error"]))
        return msgspec.convert(raw, reply)

    def stop(self, timeout: float = 10) -> None:
        """Ask it to quit; SIGKILL by pid if it has not within `timeout`."""
        if self.popen.poll() is None:
            try:
                assert self.popen.stdin is not None
                self.popen.stdin.write(msgspec.json.encode(Quit()) + b"\n")
                self.popen.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        self._out.close()

    def __enter__(self) -> LoadClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
