"""A bounded WebSocket fuzzer against a real server: paths, parameters, origins, frames.

Every case is drawn from one seed (FUZZ_SEED=<n> replays a run, FUZZ_SEED=random draws a
new one, FUZZ_CASES=<n> changes its
length) and its outcome is checked against the documented contract (README, WebSockets):
a close code from the list, with the reason where the contract names one; an HTTP refusal
of a handshake to an unknown path; or a connection that stays open and answers. A witness
client stays on /ws/echo throughout. Afterwards the server must be alive, healthy, without
tracebacks in its log, and back to exact counts (/counter and every room the run used).
"""

import asyncio
import base64
import json
import os
import random
import string
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.helpers import LiveServer

# A fixed seed keeps `make test` reproducible; FUZZ_SEED=random explores new cases.
_SEED = os.environ.get("FUZZ_SEED", "20261125")
SEED = random.SystemRandom().randrange(2**32) if _SEED == "random" else int(_SEED)
CASES = int(os.environ.get("FUZZ_CASES") or 300)
CONCURRENCY = 20
REPLAY = f"FUZZ_SEED={SEED} .venv/bin/python -m pytest tests/realtime/test_fuzz.py"

MAX_FRAME = 64 * 1024  # bytes of UTF-8 (or raw bytes); anything larger closes 1009
MAX_USERS = 1000  # max_users must be an integer from 1 to this
DEFAULT_USERS = 10  # DEFAULT_SESSION_USERS (.env.example): a room's capacity when not given
TIMEOUT = 5.0  # seconds for any awaited frame, close or answer
QUIET = 0.5  # /counter ignores what it is sent: after this much silence, nothing more comes
CASE_DEADLINE = 30.0
# Round trips the witness must complete while cases still run. It goes again whenever a
# case has finished since its last answer: 300 cases made 77-122 such trips (four runs at once
# on two CPUs included), so a tenth of the cases leaves a wide margin.
WITNESS_ROUNDS = max(1, CASES // 10)

ALPHABET = string.ascii_letters + string.digits + "_-"  # of session ids
UNRESERVED = ALPHABET + ".~"  # may appear in a URL path unencoded
ENDPOINTS = {"counter": "/counter", "echo": "/ws/echo", "broadcast": "/ws/broadcast"}
TEXT_ONLY = {"echo", "broadcast", "room"}  # endpoints where a binary frame closes 1003

# Paths no WebSocket route matches (HTTP routes included): the handshake is refused (404).
UNKNOWN_PATHS = [
    "/",
    "/ws",
    "/ws/",
    "/ws/echo/",
    "/ws/echo/x",
    "/ws//echo",
    "//counter",
    "/counter/",
    "/counter%2F",
    "/COUNTER",
    "/Ws/Echo",
    "/ws/broadcast/1",
    "/web_socket",
    "/web_socket/",
    "/.%2e/counter",
    "/%00",
    "/nope",
    "/health",
    "/ready",
    "/time",
    "/brands",
    "/products",
    "/products/1",
    "/docs",
    "/openapi",
    "/web_sockets.html",
]


def allowed_origins(port: int) -> list[Origin]:
    origins = [
        "http://localhost",
        "http://localhost/",
        "http://localhost:3000",
        f"http://localhost:{port}",
        "https://localhost",
        "http://127.0.0.1",
        f"http://127.0.0.1:{port}",
        "https://127.0.0.1:8443",
        "http://[::1]",
        "http://[::1]:8080",
    ]
    return [Origin(o) for o in origins]


def foreign_origins(port: int) -> list[Origin]:
    origins = [
        "https://evil.example",
        f"http://evil.example:{port}",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "http://localhost@evil.example",
        "http://10.0.0.1",
        "https://[::2]",
        "ws://localhost",
        "wss://127.0.0.1",
        "chrome-extension://abcdefgh",
        "file://",
        "null",
        "http://",
        "http://[::1",
        "localhost",
        f"127.0.0.1:{port}",
        "*",
        "",
    ]
    return [Origin(o) for o in origins]


# -- cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One message a client sends: text or binary (maybe in fragments), or a ping."""

    kind: str  # "text" | "binary" | "ping"
    payload: str | bytes = b""
    pieces: int = 1

    @property
    def text(self) -> str | None:
        return self.payload if isinstance(self.payload, str) and self.kind == "text" else None

    @property
    def size(self) -> int:
        p = self.payload
        return len(p.encode()) if isinstance(p, str) else len(p)

    def __repr__(self) -> str:
        if self.kind == "ping":
            return "ping"
        split = f"/{self.pieces}" if self.pieces > 1 else ""
        return f"{self.kind}{split}({self.size}B)"


@dataclass(frozen=True)
class Rule:
    """One acceptable outcome: stays open (or closes 1000), a close code, an HTTP status."""

    kind: str  # "open" | "close" | "http" | "eof"
    code: int | None = None  # http: None means any 4xx
    reason_has: str | None = None
    reason_is: str | None = None

    def __repr__(self) -> str:
        if self.kind == "open":
            return "open/1000"
        if self.kind == "http":
            return f"HTTP {self.code or '4xx'}"
        if self.kind == "eof":
            return "no response"
        reason = self.reason_is or self.reason_has
        return f"{self.code}" + (f"({reason!r})" if reason else "")


@dataclass(frozen=True)
class Outcome:
    kind: str  # "open" | "close" | "http" | "eof" | "error" | "timeout"
    code: int | None = None
    reason: str = ""

    def __repr__(self) -> str:
        if self.kind == "open":
            return "open, then closed 1000 by the client"
        if self.kind == "close":
            return f"close {self.code} {self.reason!r}"
        if self.kind == "http":
            return f"HTTP {self.code}"
        return f"{self.kind} {self.reason}".strip()


def matches(rule: Rule, outcome: Outcome) -> bool:
    if rule.kind == "open":
        return outcome.kind == "open" or (outcome.kind == "close" and outcome.code == 1000)
    if rule.kind == "http":
        if outcome.kind != "http" or outcome.code is None:
            return False
        return outcome.code == rule.code if rule.code else 400 <= outcome.code < 500
    if rule.kind == "eof":
        return outcome.kind == "eof"
    return (
        outcome.kind == "close"
        and outcome.code == rule.code
        and (rule.reason_has is None or rule.reason_has in outcome.reason)
        and (rule.reason_is is None or rule.reason_is == outcome.reason)
    )


@dataclass
class Case:
    index: int
    endpoint: str  # "counter" | "echo" | "broadcast" | "room" | "unknown" | "raw"
    path: str = ""  # as sent: percent-encoded, with the query
    origin: Origin | None = None
    foreign: bool = False
    frames: list[Frame] = field(default_factory=list)
    session_id: str | None = None  # decoded, when it is a valid one
    session_ok: bool = True
    max_users: list[str] = field(default_factory=list)  # decoded values given for max_users
    holders: int = 0  # members already in the room (its capacity): this join must get 4429
    raw: bytes = b""
    raw_variant: str = ""

    def __repr__(self) -> str:
        if self.endpoint == "raw":
            return f"#{self.index} raw {self.raw_variant} {self.raw[:70]!r}"
        path = self.path if len(self.path) <= 110 else self.path[:110] + "..."
        extra = f" holders={self.holders}" if self.holders else ""
        origin = f"origin={self.origin!r}"
        return f"#{self.index} {self.endpoint} {path} {origin} frames={self.frames}{extra}"


@dataclass
class Expect:
    """What the contract allows for a case, and what an open connection must answer."""

    rules: list[Rule]
    texts: list[str] = field(default_factory=list)  # text frames the server handles
    capacities: set[int] = field(default_factory=set)  # acceptable room capacities

    @property
    def may_stay_open(self) -> bool:
        return any(r.kind == "open" for r in self.rules)


def max_users_ok(value: str) -> bool:
    """Canonical decimal (no leading zero) from 1 to MAX_USERS."""
    canonical = value.isascii() and value.isdigit() and not value.startswith("0")
    return canonical and 1 <= int(value) <= MAX_USERS


def expect(case: Case) -> Expect:
    """The documented outcome(s) of a case, computed from its input alone."""
    if case.endpoint == "raw":
        # A malformed handshake is refused with a 4xx; pure garbage may also just be dropped.
        garbage = [Rule("eof")] if case.raw_variant == "garbage" else []
        return Expect([Rule("http"), *garbage])
    if case.foreign:  # the contract orders nothing between 4403 and 404 for an unknown path
        unknown = [Rule("http", 404)] if case.endpoint == "unknown" else []
        return Expect([Rule("close", 4403), *unknown])
    if case.endpoint == "unknown":
        return Expect([Rule("http", 404)])
    rules: list[Rule] = []
    capacities: set[int] = set()
    if case.endpoint == "room":
        bad_max = [v for v in case.max_users if not max_users_ok(v)]
        max_refusable = bool(bad_max) or len(case.max_users) > 1  # repeated: may be refused
        if not case.session_ok:
            rules.append(Rule("close", 4400, reason_has="session_id"))
            if max_refusable:  # both are wrong: the reason may name either
                rules.append(Rule("close", 4400, reason_has="max_users"))
            return Expect(rules)
        if max_refusable:
            rules.append(Rule("close", 4400, reason_has="max_users"))
        if case.max_users:
            capacities = {int(v) for v in case.max_users if max_users_ok(v)}
        else:
            capacities = {DEFAULT_USERS}
        if not capacities:
            return Expect(rules)
        if case.holders:
            full = f"session full ({case.holders}/{case.holders})"
            return Expect([*rules, Rule("close", 4429, reason_is=full)])
    texts: list[str] = []
    for frame in case.frames:
        if frame.kind == "ping":
            continue
        binary, too_big = frame.kind == "binary", frame.size > MAX_FRAME
        if binary and case.endpoint in TEXT_ONLY:
            codes = [1003, 1009] if too_big else [1003]
        else:
            codes = [1009] if too_big else []
        if codes:
            rules += [Rule("close", code) for code in codes]
            break
        if frame.text is not None:
            texts.append(frame.text)
    else:
        rules.append(Rule("open"))
    return Expect(rules, texts, capacities)


# -- generation ---------------------------------------------------------------------------


def encode_chars(rng: random.Random, decoded: str, rate: float = 0.08) -> str:
    """Percent-encode what must be, and some of what need not be (the same path decoded)."""
    out = []
    for ch in decoded:
        if ch in UNRESERVED and rng.random() >= rate:
            out.append(ch)
        else:
            out.append(
                "".join(f"%{b:02X}" if rng.random() < 0.8 else f"%{b:02x}" for b in ch.encode())
            )
    return "".join(out)


def encode_path(rng: random.Random, path: str) -> str:
    """Some characters of a path percent-encoded; segments already encoded are kept."""
    parts = path.split("/")
    return "/".join(p if "%" in p else encode_chars(rng, p, rate=0.04) for p in parts)


def random_id(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(ALPHABET, k=length))


def unique_session_id(rng: random.Random, used: set[str]) -> str:
    """A valid session id no other case uses (rooms never share members across cases)."""
    length = rng.choice([1, 2, 3, 8, rng.randint(4, 63), 64])
    while (sid := random_id(rng, length)) in used:
        length = min(64, length + 1)
    used.add(sid)
    return sid


# fmt: off
BAD_ID_CHARS = [".", "~", " ", "!", "$", "'", "(", "*", "+", ",", ";", "=", ":", "@", "%",
                "?", "#", '"', "<", "\\", "\x00", "\t", "é", "日", "🎉", "\u202e", "\ufeff"]
# fmt: on
BAD_ID_RAW = ["%zz", "%", "%C3", "%E2%82", "%%41", ".", "..", "%2e%2E"]  # sent as they are


def session_segment(rng: random.Random, used: set[str]) -> tuple[str, str | None, str]:
    """(segment as sent, the valid id or None, verdict: valid | invalid | unrouted)."""
    roll = rng.random()
    if roll < 0.55:
        sid = unique_session_id(rng, used)
        return encode_chars(rng, sid), sid, "valid"
    if roll < 0.65:
        return random_id(rng, rng.randint(65, 100)), None, "invalid"  # too long
    if roll < 0.85:
        chars = list(random_id(rng, rng.randint(0, 12)))
        for _ in range(rng.randint(1, 3)):
            chars.insert(rng.randint(0, len(chars)), rng.choice(BAD_ID_CHARS))
        return encode_chars(rng, "".join(chars)), None, "invalid"
    if roll < 0.93:
        return rng.choice(BAD_ID_RAW), None, "invalid"
    # A slash (even encoded) or nothing: the room route does not match at all.
    return rng.choice(["", "a/b", "a%2Fb", "%2F", "abc/", "x/y/z"]), None, "unrouted"


VALID_MAX = ["1", "2", "3", "10", "999", "1000"]
# fmt: off
BAD_MAX = ["0", "-1", "1001", "abc", "1e3", "1.5", "+5", " 3", "3 ", "٣", "１２", "", "0x10",
           "1_000", "\x00", "NaN", "null", "[]", "3,4", "0000", "9" * 30, "-0", "10000000000",
           "007", "0001000"]
# fmt: on


def query(rng: random.Random) -> tuple[str, list[str]]:
    """(query string, decoded values given for max_users, in order)."""
    if rng.random() < 0.35:
        return "", []
    parts: list[str] = []
    values: list[str] = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        roll = rng.random()
        if roll < 0.75:
            pool = [*VALID_MAX, str(rng.randint(1, MAX_USERS))] if rng.random() < 0.5 else BAD_MAX
            value = rng.choice(pool)
            name = "max_users" if rng.random() < 0.85 else "max%5Fusers"  # the same, encoded
            encoded = quote(value, safe="") if rng.random() < 0.9 else encode_chars(rng, value, 1)
            if value == "" and rng.random() < 0.5:
                parts.append(name)  # no "=" at all
            else:
                parts.append(f"{name}={encoded}")
            values.append(value)
        else:  # parameters nobody reads
            name = rng.choice(["foo", "MAX_USERS", "max-users", "max_users%5B%5D", "session_id"])
            parts.append(f"{name}={quote(rng.choice(BAD_MAX + VALID_MAX), safe='')}")
    return "?" + "&".join(parts), values


TEXT_POOLS = [
    string.ascii_letters + string.digits + string.punctuation + " ",
    "éèàçüß€£",
    "日本語中文한국어",
    "🎉🚀👍🏽💥",
    "\x00\x01\x1f\x7f\u200b\u202e\ufeff\U0010ffff",
]
# fmt: off
JSONISH = ['{"type":"welcome"}', '{"type":"message","text":1}', "{", "[1,2", "null", '"',
           '{"a":' + "x" * 500, "\\u0000", '{"type":"count","users":-1}', "OK!", "1", ""]
# fmt: on


def random_text(rng: random.Random, length: int) -> str:
    pool = "".join(rng.sample(TEXT_POOLS, rng.randint(1, len(TEXT_POOLS))))
    chunk = "".join(rng.choices(pool, k=min(length, 512)))
    return (chunk * (length // max(1, len(chunk)) + 1))[:length]


def text_of_bytes(rng: random.Random, nbytes: int) -> str:
    """A text of exactly `nbytes` UTF-8 bytes, mostly of 1-, 2-, 3- or 4-byte characters."""
    unit = rng.choice(["x", "é", "€", "日", "🎉"])
    width = len(unit.encode())
    return unit * (nbytes // width) + "y" * (nbytes % width)


def random_frame(rng: random.Random) -> Frame:
    roll = rng.random()
    near = [MAX_FRAME - 1, MAX_FRAME, MAX_FRAME + 1, MAX_FRAME + 3]
    if roll < 0.25:
        return Frame("text", random_text(rng, rng.randint(0, 200)))
    if roll < 0.30:
        return Frame("text", "")
    if roll < 0.38:
        return Frame("text", random_text(rng, rng.randint(200, 4000)))
    if roll < 0.46:
        return Frame("text", rng.choice(JSONISH))
    if roll < 0.56:
        return Frame("text", text_of_bytes(rng, rng.choice(near)))
    if roll < 0.60:
        return Frame("text", text_of_bytes(rng, rng.randint(MAX_FRAME + 1, 3 * MAX_FRAME)))
    if roll < 0.70:
        return Frame("binary", rng.randbytes(rng.choice([0, 1, 2, rng.randint(3, 300)])))
    if roll < 0.75:
        return Frame("binary", rng.randbytes(rng.choice([*near, 2 * MAX_FRAME])))
    if roll < 0.84:
        size = rng.choice([rng.randint(2, 300), *near, 2 * MAX_FRAME])
        return Frame("text", text_of_bytes(rng, size), pieces=rng.randint(2, 4))
    if roll < 0.88:
        size = rng.choice([rng.randint(2, 300), *near])
        return Frame("binary", rng.randbytes(size), pieces=rng.randint(2, 4))
    return Frame("ping")


def raw_case(rng: random.Random, index: int) -> Case:
    """Bytes that are no valid WebSocket handshake, on a bare TCP connection."""
    variant = rng.choice(["garbage", "no-key", "bad-key", "bad-version", "two-keys"])
    path = rng.choice([*ENDPOINTS.values(), "/web_socket/raw"])
    key = base64.b64encode(rng.randbytes(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if variant == "no-key":
        del lines[4]
    elif variant == "bad-key":
        lines[4] = "Sec-WebSocket-Key: " + rng.choice(["abc", "!!!!", "", key[:-4]])
    elif variant == "bad-version":
        lines[5] = "Sec-WebSocket-Version: " + rng.choice(["99", "8", "abc", ""])
    elif variant == "two-keys":
        lines.append(f"Sec-WebSocket-Key: {key}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if variant == "garbage":
        raw = rng.randbytes(rng.randint(1, 300)) + b"\r\n\r\n"
    return Case(index, "raw", raw=raw, raw_variant=variant)


def generate(rng: random.Random, count: int, port: int) -> list[Case]:
    used: set[str] = set()
    allowed, foreign = allowed_origins(port), foreign_origins(port)
    cases = []
    for i in range(count):
        endpoint = rng.choices(
            ["counter", "echo", "broadcast", "room", "unknown", "raw"],
            weights=[14, 21, 14, 34, 11, 6],
        )[0]
        if endpoint == "raw":
            cases.append(raw_case(rng, i))
            continue
        case = Case(i, endpoint)
        roll = rng.random()
        if roll < 0.5:
            case.origin = None
        elif roll < 0.85:
            case.origin = rng.choice(allowed)
        else:
            case.origin, case.foreign = rng.choice(foreign), True
        q, values = query(rng)
        if endpoint == "room":
            segment, sid, verdict = session_segment(rng, used)
            if verdict == "unrouted":
                case.endpoint = "unknown"
            case.session_id, case.session_ok, case.max_users = sid, verdict == "valid", values
            if sid is not None and rng.random() < 0.35:
                case.holders = rng.randint(1, 3)
            case.path = f"/web_socket/{segment}{q}"
        elif endpoint == "unknown":
            if rng.random() < 0.8:
                case.path = encode_path(rng, rng.choice(UNKNOWN_PATHS)) + q
            else:
                case.path = "/" + encode_chars(rng, random_text(rng, rng.randint(1, 20))) + q
        else:
            case.path = encode_path(rng, ENDPOINTS[endpoint]) + q
        case.frames = [random_frame(rng) for _ in range(rng.choice([0, 1, 1, 2, 3, 4, 5]))]
        cases.append(case)
    return cases


# -- running one case ---------------------------------------------------------------------


async def send_frame(ws: ClientConnection, frame: Frame) -> None:
    if frame.kind == "ping":
        pong = asyncio.ensure_future(await ws.ping())  # the Future ping() documents
        pong.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved, ignored
    elif frame.pieces > 1:
        p, k = frame.payload, frame.pieces
        await ws.send([p[len(p) * i // k : len(p) * (i + 1) // k] for i in range(k)])
    else:
        await ws.send(frame.payload)


def is_subsequence(wanted: Sequence[str], got: Sequence[str | bytes]) -> bool:
    it = iter(got)
    return all(any(w == g for g in it) for w in wanted)


def room_messages(received: Sequence[str | bytes]) -> list[object]:
    """The texts of the message frames received (whatever their type: checked later)."""
    out: list[object] = []
    for frame in received:
        try:
            data = json.loads(frame)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("type") == "message":
            out.append(data.get("text"))
    return out


def done_reading(case: Case, exp: Expect) -> Callable[[list[str | bytes]], bool]:
    """When an open connection has answered everything it was sent."""
    if not exp.may_stay_open:
        return lambda received: False  # it must close: read until it does
    if case.endpoint == "echo":
        return lambda received: len(received) >= len(exp.texts)
    if case.endpoint == "broadcast":
        return lambda received: is_subsequence(exp.texts, received)
    if case.endpoint == "room":
        return lambda received: (
            len(received) >= 1 and len(room_messages(received)) >= len(exp.texts)
        )
    return lambda received: len(received) >= 1  # counter: the count on connect


async def read(ws: ClientConnection, case: Case, exp: Expect, received: list[str | bytes]) -> str:
    """Read until the server closes or has answered; '' or what went wrong."""
    done = done_reading(case, exp)
    while not done(received):
        try:
            received.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
        except TimeoutError:
            return f"no close and no answer within {TIMEOUT}s"
    if case.endpoint == "counter" and any(f.kind != "ping" for f in case.frames):
        # Nothing answers frames sent to /counter: a short silence shows they were handled.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 4 * QUIET
        while loop.time() < deadline:
            try:
                received.append(await asyncio.wait_for(ws.recv(), QUIET))
            except TimeoutError:
                break
    return ""


async def run_ws_case(
    server: LiveServer, case: Case, exp: Expect
) -> tuple[Outcome, list[str | bytes]]:
    received: list[str | bytes] = []
    try:
        ws = await websockets.connect(
            server.ws + case.path, origin=case.origin, max_size=None, close_timeout=TIMEOUT
        )
    except InvalidStatus as exc:
        return Outcome("http", exc.response.status_code), received
    except Exception as exc:
        return Outcome("error", reason=f"handshake failed: {exc!r}"), received
    async with ws:
        try:
            for frame in case.frames:
                await send_frame(ws, frame)
            if problem := await read(ws, case, exp, received):
                return Outcome("timeout", reason=problem), received
        except websockets.ConnectionClosed:
            pass
    rcvd = ws.protocol.close_rcvd
    if rcvd is None:
        return Outcome("error", reason="closed without a close frame (1006)"), received
    if ws.protocol.close_rcvd_then_sent is False and rcvd.code == 1000:
        return Outcome("open"), received
    return Outcome("close", rcvd.code, rcvd.reason), received


async def run_raw_case(server: LiveServer, case: Case) -> Outcome:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(case.raw)
        writer.write_eof()
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), TIMEOUT)
    except ConnectionResetError:
        return Outcome("eof", reason="connection reset")
    except TimeoutError:
        return Outcome("timeout", reason=f"no answer within {TIMEOUT}s")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    if not response:
        return Outcome("eof")
    status = response.split(b"\r\n", 1)[0].split(b" ")
    if len(status) >= 2 and status[0].startswith(b"HTTP/") and status[1].isdigit():
        return Outcome("http", int(status[1]))
    return Outcome("error", reason=f"not an HTTP response: {response[:60]!r}")


def check_frames(case: Case, exp: Expect, outcome: Outcome, frames: list[str | bytes]) -> list[str]:
    """What the frames a case received break of the contract."""
    received = [f for f in frames if isinstance(f, str)]
    if len(received) != len(frames):
        return ["the server sent a binary frame"]
    if outcome.kind == "close" and outcome.code in (4400, 4403, 4429) and received:
        return [f"closed {outcome.code} after sending {len(received)} frames"]
    stayed_open = outcome.kind == "open" or (outcome.kind == "close" and outcome.code == 1000)
    if case.endpoint == "echo":
        if any(f != "OK!" for f in received):
            return [f"echo answered {received[:3]!r}"]
        if len(received) > len(exp.texts) or (stayed_open and len(received) != len(exp.texts)):
            return [f"echo answered {len(received)} of {len(exp.texts)} text frames with OK!"]
    elif case.endpoint == "counter":
        if not all(f.isdigit() and int(f) >= 1 for f in received):
            return [f"/counter sent {received[:3]!r}"]
        if stayed_open and not received:
            return ["/counter sent no count"]
    elif case.endpoint == "broadcast" and stayed_open:
        if not is_subsequence(exp.texts, received):
            return ["broadcast did not deliver the sender's own texts in order"]
    elif case.endpoint == "room" and received:
        return check_room(case, exp, received, stayed_open)
    elif case.endpoint == "room" and stayed_open:
        return ["the room sent no welcome"]
    return []


def check_room(case: Case, exp: Expect, received: list[str], stayed_open: bool) -> list[str]:
    try:
        frames = [json.loads(f) for f in received]
    except ValueError:
        return [f"the room sent frames that are no JSON: {received[:2]!r}"]
    if not all(isinstance(f, dict) for f in frames):
        return [f"the room sent frames that are no JSON objects: {received[:2]!r}"]
    welcome, rest = frames[0], frames[1:]
    if welcome.get("type") != "welcome":
        return [f"the first frame is no welcome: {received[0][:100]!r}"]
    want = {"session_id": case.session_id, "users": 1}
    if {k: welcome.get(k) for k in want} != want or welcome.get("max_users") not in exp.capacities:
        return [f"welcome {welcome} in a new room, capacity one of {exp.capacities}"]
    texts = []
    for frame in rest:
        if frame.get("type") == "count":
            if frame != {**want, "type": "count", "max_users": welcome["max_users"]}:
                return [f"count {frame} in a room of one"]
        elif frame.get("type") == "message":
            if (frame.get("session_id"), frame.get("member_id")) != (
                case.session_id,
                welcome["member_id"],
            ):
                return [f"message {str(frame)[:100]} is not this member's"]
            texts.append(frame.get("text"))
        else:
            return [f"unexpected frame {str(frame)[:100]}"]
    if texts != exp.texts[: len(texts)] or (stayed_open and len(texts) != len(exp.texts)):
        return [f"relayed {len(texts)} texts, not the {len(exp.texts)} sent in order"]
    return []


async def fill_room(
    server: LiveServer, case: Case, stack: AsyncExitStack
) -> list[ClientConnection]:
    """`case.holders` members in the case's room, its capacity as many; closed by `stack`."""
    url = f"{server.ws}/web_socket/{case.session_id}?max_users={case.holders}"
    holders = []
    for _ in range(case.holders):
        ws = await stack.enter_async_context(websockets.connect(url))
        holders.append(ws)
        welcome = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert welcome["type"] == "welcome", welcome
    return holders


async def run_case(server: LiveServer, case: Case) -> tuple[Outcome, list[str]]:
    """Run one case; its outcome and the ways it broke the contract."""
    exp = expect(case)
    if case.endpoint == "raw":
        outcome, problems = await run_raw_case(server, case), []
    else:
        async with AsyncExitStack() as stack:
            holders = await fill_room(server, case, stack) if case.holders else []
            outcome, received = await run_ws_case(server, case, exp)
        problems = check_frames(case, exp, outcome, received)
        problems += [f"a member holding the full room was closed {ws.close_code}"
                     for ws in holders if ws.close_code != 1000]  # fmt: skip
    if not any(matches(rule, outcome) for rule in exp.rules):
        problems.insert(0, f"expected {' or '.join(map(repr, exp.rules))}, got {outcome!r}")
    return outcome, problems


# -- the witness and the checks after the run ---------------------------------------------


CHAINED = ("During handling", "The above exception", "Traceback")


class Witness:
    """A client on /ws/echo for the whole run: whenever cases have finished it sends one
    numbered text and reads the answer, which must be OK! (README: /ws/echo answers `OK!`).
    Once `stopping` is set it makes one last round trip, after the run, and returns."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.wake = asyncio.Event()
        self.stopping = False
        self.sent: list[str] = []
        self.answers: list[str | bytes] = []  # answers[i] is what came back for sent[i]
        self.during_run = 0  # round trips begun before `stopping`: while cases ran

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            last = self.stopping
            text = f"witness {len(self.sent)}"
            await self.ws.send(text)
            self.sent.append(text)
            self.answers.append(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if last:
                return
            self.during_run += 1

    def problems(self, min_during_run: int) -> list[str]:
        """What the witness saw that breaks the contract of /ws/echo."""
        problems = []
        if len(self.answers) != len(self.sent):
            problems.append(
                f"the witness sent {len(self.sent)} texts, {len(self.answers)} answered"
            )
        wrong = [(i, a) for i, a in enumerate(self.answers) if a != "OK!"]
        if wrong:
            i, answer = wrong[0]
            problems.append(
                f"/ws/echo answered {len(wrong)} of the witness's texts with something other "
                f"than 'OK!', first {self.sent[i]!r} with {answer!r}"
            )
        if self.during_run < min_during_run:
            problems.append(
                f"the witness was answered {self.during_run} times during the run, "
                f"expected at least {min_during_run}"
            )
        return problems


def tracebacks(lines: list[str]) -> Counter[str]:
    """The exception line ending each traceback in the server's log."""
    found: Counter[str] = Counter()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            ends = (ln for ln in lines[i + 1 :] if ln[:1].strip() and ":" in ln)
            found[next((ln for ln in ends if not ln.startswith(CHAINED)), "?")] += 1
    return found


async def rooms_are_empty(server: LiveServer, session_ids: list[str]) -> list[str]:
    """Every room the run used is forgotten: a new member is alone and sets the capacity."""
    problems = []
    sem = asyncio.Semaphore(CONCURRENCY)

    async def probe(sid: str) -> None:
        url = f"{server.ws}/web_socket/{sid}?max_users=7"
        async with sem:
            try:
                async with websockets.connect(url) as ws:
                    welcome = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            except Exception as exc:
                welcome = {"error": repr(exc)}
            if (welcome.get("users"), welcome.get("max_users")) != (1, 7):
                problems.append(f"room {sid} still has members after the run: {welcome}")

    await asyncio.gather(*(probe(sid) for sid in session_ids))
    return problems


async def counter_drops_to_one(server: LiveServer) -> list[str]:
    """A lone /counter client reads 1: every fuzz connection has been released."""
    seen = []
    async with websockets.connect(f"{server.ws}/counter") as ws:
        try:
            while (frame := await asyncio.wait_for(ws.recv(), TIMEOUT)) != "1":
                seen.append(frame)
        except TimeoutError:
            return [f"a lone /counter client never read 1, only {seen}"]
    return []


async def server_is_healthy(server: LiveServer) -> list[str]:
    """Alive, /health 200, and no traceback logged during the run."""
    if server.process.proc.poll() is not None:
        return [f"the server exited with {server.process.proc.returncode}"]
    marker = f"fuzz-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=server.http, timeout=TIMEOUT) as http:
        try:
            status = (await http.get("/health", params={"after": marker})).status_code
        except httpx.HTTPError as exc:
            return [f"GET /health failed: {exc!r}"]
    problems = [] if status == 200 else [f"/health answered {status}"]
    try:  # once the request is in the log, every earlier line has been read
        await asyncio.to_thread(server.process.wait_for, marker, 10)
    except AssertionError:
        problems.append("the server did not log the /health request within 10s")
    problems += [f"the server logged {n} traceback(s) ending {end!r}"
                 for end, n in tracebacks(server.process.lines).items()]  # fmt: skip
    return problems


def report(failures: list[str], limit: int = 40) -> str:
    head = f"{len(failures)} contract violations (seed {SEED}; replay: {REPLAY}):"
    more = [f"... and {len(failures) - limit} more"] if len(failures) > limit else []
    return "\n".join([head, *failures[:limit], *more])


# -- tests --------------------------------------------------------------------------------


def category(case: Case, rule: Rule) -> str:
    """An outcome the contract allows, named for the coverage test."""
    if rule.kind == "open":
        return f"open {case.endpoint}"
    if rule.kind == "close":
        return f"{rule.code} {rule.reason_has or ''}".strip()
    return repr(rule)


def test_fuzz_cases_cover_every_documented_outcome() -> None:
    """The seeded cases reach every close code, the 404 refusal, open sockets and raw bytes."""
    cases = generate(random.Random(SEED), CASES, port=8000)
    seen = Counter(category(case, rule) for case in cases for rule in expect(case).rules)
    wanted = ["4403", "HTTP 404", "HTTP 4xx", "1003", "1009", "4400 session_id",
              "4400 max_users", "4429", "open counter", "open echo", "open broadcast",
              "open room"]  # fmt: skip
    assert all(seen[w] >= 1 for w in wanted), f"seed {SEED}: {seen}"


async def test_fuzz_server_answers_every_case_by_the_contract(live_server: LiveServer) -> None:
    """Seeded random cases end as documented; a witness is served throughout; nothing leaks."""
    print(f"fuzz seed {SEED}, {CASES} cases; replay: {REPLAY}")
    cases = generate(random.Random(SEED), CASES, live_server.port)
    failures: list[str] = []
    outcomes: Counter[str] = Counter()
    sem = asyncio.Semaphore(CONCURRENCY)

    async with websockets.connect(f"{live_server.ws}/ws/echo") as witness_ws:
        witness = Witness(witness_ws)
        witness_task = asyncio.create_task(witness.run())

        async def one(case: Case) -> None:
            async with sem:
                try:
                    outcome, problems = await asyncio.wait_for(
                        run_case(live_server, case), CASE_DEADLINE
                    )
                    outcomes[repr(outcome).split(" '")[0]] += 1
                except TimeoutError:
                    problems = [f"the case did not finish within {CASE_DEADLINE}s"]
                except Exception as exc:
                    problems = [f"the case crashed: {exc!r}"]
            failures.extend(f"{case!r}: {problem}" for problem in problems)
            witness.wake.set()

        await asyncio.gather(*(one(case) for case in cases))
        witness.stopping = True
        witness.wake.set()
        try:
            await asyncio.wait_for(witness_task, 2 * TIMEOUT)
        except Exception as exc:
            failures.append(f"the witness on /ws/echo stopped being served: {exc!r}")
    print(f"outcomes: {dict(outcomes)}; witness answered {len(witness.answers)} times")
    failures += witness.problems(min_during_run=WITNESS_ROUNDS)

    failures += await server_is_healthy(live_server)
    rooms = sorted({c.session_id for c in cases if c.session_id and c.endpoint == "room"})
    failures += await rooms_are_empty(live_server, rooms)
    failures += await counter_drops_to_one(live_server)
    assert not failures, report(failures)
