"""The WebSocket fuzzer: seeded cases against a real server, sent through one of two
transports and judged by one oracle.

A case is a handshake (an endpoint's path, partly percent-encoded, with odd session ids,
`max_users`, `after` and unread parameters; an Origin, allowed, foreign or none; or bytes
that are no valid handshake), the frames sent once it is open (texts of many scripts, JSON-ish
and deep texts, texts and binaries around the 64 KiB limit, fragments, pings, bursts within
the rate allowance, floods over it), and the client's close code. The `websockets` library
sends it, or a raw socket with frames built by hand, which also sends what the library will
not: invalid UTF-8 (split across fragments too), characters split across fragments, pings
between fragments, and protocol violations (`VIOLATIONS`).

The oracle (`expect`) computes from the case alone what docs/API.md allows, with the 1002 and
1007 of the protocol layer (docs/asyncapi.json): an HTTP refusal that is a problem, a close
code (with the reason where the contract names one), or a socket that stays open, answers as
its endpoint documents and answers the client's close. A witness client stays on /ws/echo
throughout; afterwards counts are exact again and the server's log holds no traceback.

FUZZ_SEED=<n> replays a run, FUZZ_SEED=random draws a new one, FUZZ_CASES=<n> runs more
cases (the first ones stay the same); the replay line is printed and ends every report.
"""

import asyncio
import base64
import hashlib
import json
import os
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import parse_qsl, quote, unquote

import asyncpg
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.fuzzing import (
    TEXT_POOLS,
    Answer,
    Fuzz,
    pct,
    problem_errors,
    random_text,
    read_answer,
    server_problems,
)
from tests.helpers import LiveServer

FUZZ = Fuzz.from_env("tests/realtime/test_fuzz.py", seed=20261125, cases=400)
CONCURRENCY = 20
TIMEOUT = 5.0  # seconds for any awaited frame, close or answer
QUIET = 0.3  # /counter and /ws/catalog answer nothing: silence this long shows no close came
CASE_DEADLINE = 30.0
# Round trips the witness must complete while cases still run. It goes again whenever a
# case has finished since its last answer: 300 cases made 77-122 such trips (four runs at once
# on two CPUs included), so a tenth of the cases leaves a wide margin.
WITNESS_ROUNDS = max(1, FUZZ.cases // 10)

MAX_FRAME = 64 * 1024  # WS_MAX_MESSAGE_BYTES: a larger message closes 1009
PROTOCOL_MAX = 16 * 1024 * 1024  # uvicorn's ws_max_size: a frame declared larger closes 1009
MAX_USERS, DEFAULT_USERS = 1000, 10  # MAX_SESSION_USERS, DEFAULT_SESSION_USERS (.env.example)
RATE = 100  # WS_MAX_MESSAGES_PER_S: frames a socket may send a second, sustained
BURST = 2 * RATE  # bursts of 2 s worth: this many messages at once never close 1008
FLOOD = 4 * BURST  # this many at once close 1008, unless they took 6 s to arrive
CHANGES = 1100  # change ids 1..1100: the test renames 100 brands and 1,000 products first
MAX_LINE = 8192  # a longer handshake line is 414 (src/server.py: the websockets layer's limit)

ENDPOINTS = dict(
    counter="/counter", echo="/ws/echo", broadcast="/ws/broadcast", catalog="/ws/catalog"
)
TEXT_ONLY = {"echo", "broadcast", "room"}  # endpoints where a binary frame closes 1003
PARAMETER = {"room": "max_users", "catalog": "after"}  # the query parameter each reads
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SESSION_ID_CHARS = string.ascii_letters + string.digits + "_-"
CHANGE_TYPES = {
    f"{row}.{what}" for row in ("brand", "product") for what in ("created", "updated", "deleted")
}
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455: Sec-WebSocket-Accept's suffix


# -- the case model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """One frame as it goes on the wire (raw transport): masked, unless a case breaks that."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0  # RSV1-3 (0x70): no extension is negotiated, so never set by a valid client
    masked: bool = True
    length: int | None = None  # a declared length other than the payload's

    def encode(self) -> bytes:
        n = len(self.payload) if self.length is None else self.length
        first, bit = (0x80 if self.fin else 0) | self.rsv | self.opcode, 0x80 * self.masked
        if n < 126:
            head = bytes([first, bit | n])
        elif n < 65536:
            head = bytes([first, bit | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([first, bit | 127]) + n.to_bytes(8, "big")
        if not self.masked:
            return head + self.payload
        mask, m = os.urandom(4), len(self.payload)
        key = int.from_bytes((mask * (m // 4 + 1))[:m], "big")
        return head + mask + ((int.from_bytes(self.payload, "big") ^ key).to_bytes(m, "big"))


@dataclass(frozen=True)
class Frame:
    """One thing a client sends: a message (text, binary, or a text that is no UTF-8), in
    `pieces` fragments (raw: split anywhere, maybe with a ping between them), sent `repeat`
    times; a ping; or `wires` that break the protocol."""

    kind: str  # "text" | "binary" | "bad-utf8" | "ping" | "violation"
    payload: bytes = b""
    pieces: int = 1
    repeat: int = 1
    ping_between: bool = False  # raw, fragmented: a ping after the first fragment
    label: str = ""  # a violation: the rule it breaks
    wires: tuple[Wire, ...] = ()
    code: int = 0  # a violation: the close it gets

    @property
    def text(self) -> str:
        return self.payload.decode()

    @property
    def fatal(self) -> bool:
        """The protocol layer fails the connection on it: nothing is sent after it."""
        return self.kind in ("bad-utf8", "violation")

    @property
    def codes(self) -> list[int]:
        """The closes a fatal frame gets (its size may be noticed first)."""
        if self.kind == "violation":
            return [self.code]
        return [1007, 1009] if len(self.payload) > MAX_FRAME else [1007]

    @property
    def name(self) -> str:
        """Its kind, for the coverage test."""
        if self.kind == "violation":
            return self.label
        if self.repeat > 1:
            return "flood" if self.repeat >= FLOOD else "burst"
        return ("fragmented " if self.pieces > 1 else "") + self.kind

    def __repr__(self) -> str:
        times = f"x{self.repeat}" if self.repeat > 1 else ""
        ping = "+ping" if self.ping_between else ""
        split = f"/{self.pieces}{ping}" if self.pieces > 1 else ""
        size = f"{len(self.payload)}B:{self.payload[:16]!r}"
        return f"{self.label or self.kind}{split}{times}({size})"


def route(path: str) -> tuple[str, str]:
    """The endpoint the server routes a path to (its decoded path), or "unknown"; and the
    session id segment, decoded (for a room)."""
    decoded = unquote(path.split("?", 1)[0])
    for name, endpoint in ENDPOINTS.items():
        if decoded == endpoint:
            return name, ""
    segment = decoded.removeprefix("/web_socket/")
    if segment != decoded and segment and "/" not in segment:
        return "room", segment
    return "unknown", ""


@dataclass
class Case:
    index: int
    raw: bool  # on a raw socket; else through the `websockets` library
    path: str = ""  # as sent: percent-encoded, with the query
    origin: str | None = None
    foreign: bool = False
    frames: list[Frame] = field(default_factory=list)
    holders: int = 0  # members already in the room (its capacity): this join must get 4429
    close: tuple[int, str] = (1000, "")  # the client's close, if the socket stays open
    request: bytes = b""  # no valid handshake: these bytes are sent as they are
    variant: str = ""  # which handshake rule `request` breaks

    @property
    def endpoint(self) -> str:
        return "handshake" if self.request else route(self.path)[0]

    @property
    def session_id(self) -> str | None:
        """The room's id, when it is a valid one."""
        endpoint, segment = route(self.path)
        return segment if endpoint == "room" and SESSION_ID.fullmatch(segment) else None

    def __repr__(self) -> str:
        via = "raw" if self.raw else "websockets"
        if self.request:
            return f"#{self.index} ({via}) handshake {self.variant} {self.request[:70]!r}"
        path = self.path if len(self.path) <= 110 else self.path[:110] + "..."
        extra = f" holders={self.holders}" if self.holders else ""
        extra += f" close={self.close}" if self.close != (1000, "") else ""
        return (
            f"#{self.index} ({via}) {self.endpoint} {path} origin={self.origin!r} "
            f"frames={self.frames}{extra}"
        )


# -- the oracle -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One acceptable outcome: open (it answers the client's close), a close code, an HTTP
    status, or no answer at all."""

    kind: str  # "open" | "close" | "http" | "eof"
    code: int | None = None  # open: the client's close code; http: None means any 4xx
    reason_has: str | None = None
    reason_is: str | None = None

    def __repr__(self) -> str:
        if self.kind == "open":
            return "open"
        if self.kind == "http":
            return f"HTTP {self.code or '4xx'}"
        if self.kind == "eof":
            return "no response"
        reason = self.reason_is or self.reason_has
        return f"{self.code}" + (f"({reason!r})" if reason else "")


@dataclass(frozen=True)
class Outcome:
    kind: str  # "open" | "close" | "http" | "eof" | "error" | "timeout"
    code: int | None = None  # open: the server's answer to the client's close
    reason: str = ""
    answer: Answer | None = None  # http: the refusal

    def __repr__(self) -> str:
        if self.kind == "open":
            return f"open, then closed {self.code} by the client"
        if self.kind == "close":
            return f"close {self.code} {self.reason!r:.200}"
        if self.kind == "http":
            return f"HTTP {self.code}"
        return f"{self.kind} {self.reason}".strip()


def matches(rule: Rule, outcome: Outcome) -> bool:
    if rule.kind == "open":
        answered = outcome.kind == "open" and outcome.code in (rule.code, 1000)
        return answered or (outcome.kind == "close" and outcome.code == 1000)
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
class Expect:
    """What the contract allows for a case, and what an open socket must answer."""

    rules: list[Rule]
    texts: list[str] = field(default_factory=list)  # text messages the server handles
    capacities: set[int] = field(default_factory=set)  # a room's acceptable capacities
    afters: set[int | None] = field(default_factory=set)  # /ws/catalog: the `after` it reads

    @property
    def may_stay_open(self) -> bool:
        return any(r.kind == "open" for r in self.rules)


def integer_ok(value: str, low: int, high: int) -> bool:
    """Canonical decimal (API.md "One reading of integers") from `low` to `high`."""
    canonical = value.isascii() and value.isdigit() and (value == "0" or value[0] != "0")
    return canonical and low <= int(value) <= high


def expect(case: Case) -> Expect:
    """The documented outcome(s) of a case, computed from its input alone."""
    if case.request:  # refused with a 4xx; bytes that are no HTTP at all may just be dropped
        return Expect([Rule("http"), *([Rule("eof")] if case.variant == "garbage" else [])])
    if len(case.path) + len("GET  HTTP/1.1\r\n") > MAX_LINE:  # 431: the head is over 16 KiB
        return Expect([Rule("http", 414), Rule("http", 431)])
    endpoint, segment = route(case.path)
    if endpoint == "unknown":  # the route is matched before the Origin is read
        return Expect([Rule("http", 404)])
    # Sent at once, a frame the protocol layer refuses may be read before the server closes
    # for the handshake or an earlier frame: its close is always allowed.
    fatal = next((f for f in case.frames if f.fatal), None)
    rules = [Rule("close", code) for code in (fatal.codes if fatal else [])]
    if case.foreign:
        return Expect([Rule("close", 4403), *rules])
    name = PARAMETER.get(endpoint, "")
    query = case.path.partition("?")[2]
    values = [v for k, v in parse_qsl(query, keep_blank_values=True) if name and k == name]
    low, high = (1, MAX_USERS) if endpoint == "room" else (0, CHANGES)
    good = [int(v) for v in values if integer_ok(v, low, high)]
    if len(good) < len(values) or len(values) > 1:  # bad, or given twice: may be refused
        rules.append(Rule("close", 4400, reason_has=name))
    if endpoint == "room" and not SESSION_ID.fullmatch(segment):  # the reason may name either
        return Expect([Rule("close", 4400, reason_has="session_id"), *rules])
    if values and not good:
        return Expect(rules)
    capacities = (set(good) or {DEFAULT_USERS}) if endpoint == "room" else set()
    afters: set[int | None] = (set(good) or {None}) if endpoint == "catalog" else set()
    if case.holders:
        full = f"session full ({case.holders}/{case.holders})"
        return Expect([*rules, Rule("close", 4429, reason_is=full)])
    texts: list[str] = []
    messages = 0
    for frame in case.frames:
        if frame.fatal:
            break
        if frame.kind == "ping":
            continue
        binary, too_big = frame.kind == "binary", len(frame.payload) > MAX_FRAME
        if binary and endpoint in TEXT_ONLY:
            codes = [1003, 1009] if too_big else [1003]
        else:
            codes = [1009] if too_big else []
        messages += frame.repeat  # the rate is checked first: the 201st message closes 1008
        if messages > BURST:
            rules.append(Rule("close", 1008, reason_has="faster"))
        if codes:
            rules += [Rule("close", code) for code in codes]
            break
        if frame.kind == "text":
            texts += [frame.text] * frame.repeat
        if messages >= FLOOD:
            break
    else:
        rules.append(Rule("open", case.close[0]))
    return Expect(rules, texts, capacities, afters)


# -- generation -----------------------------------------------------------------------------

# Paths no WebSocket route matches (HTTP routes included): the handshake is refused (404).
# fmt: off
UNKNOWN_PATHS = ["/", "/ws", "/ws/", "/ws/echo/", "/ws/echo/x", "/ws//echo", "//counter",
                 "/counter/", "/counter%2F", "/counter%00", "/COUNTER", "/Ws/Echo",
                 "/ws/broadcast/1", "/ws/catalog/", "/web_socket", "/web_socket/",
                 "/.%2e/counter", "/%00", "/nope", "/health", "/ready", "/time", "/brands",
                 "/products", "/products/1", "/docs", "/openapi", "/web_sockets.html"]
BAD_ID_CHARS = [".", "~", " ", "!", "$", "'", "(", "*", "+", ",", ";", "=", ":", "@", "%",
                "?", "#", '"', "<", "\\", "\x00", "\t", "é", "日", "🎉", "\u202e", "\ufeff"]
# Session id segments sent as they are: bad percent-encodings, dots, NUL, a lone surrogate.
BAD_SEGMENTS = ["%zz", "%", "%C3", "a%C3", "%E2%82", "%%41", ".", "..", "%2e%2E", "%00", "%ff",
                "%ED%A0%80", "a.b", "a%20b", "%F0%9F%8E%89"]
UNROUTED = ["", "a/b", "a%2Fb", "%2F", "abc/", "x/", "x/y/z"]  # a slash: no room route
VALID_MAX = ["1", "2", "3", "10", "999", "1000"]
# Integers as API.md does not read them, or out of every range (decoded; sent encoded).
BAD_INTEGERS = ["0", "-1", "1001", "abc", "1e3", "1.5", "+5", "+1", " 3", "3 ", "٣", "１２", "",
                "0x10", "1_000", "\x00", "NaN", "null", "[]", "3,4", "0000", "9" * 30, "-0",
                "10000000000", "007", "0001000", "99999999", str(CHANGES + 1), str(2**62),
                str(2**63 - 1), str(2**63)]
# Values sent as they are: bad percent-encodings, NUL, a lone surrogate, a space, a comma.
RAW_VALUES = ["%00", "%zz", "%", "%f", "1%00", "%ff", "%ED%A0%80", "%C3", "1%2C2", "%20", "1+"]
IGNORED = ["foo", "MAX_USERS", "max-users", "max_users%5B%5D", "AFTER", "after%5B%5D",
           "session_id"]
JSONISH = ['{"type":"welcome"}', '{"type":"message","text":1}', "{", "[1,2", "null", '"',
           '{"a":' + "x" * 500, "\\u0000", '{"type":"count","users":-1}', "OK!", "1", ""]
HUGE_LENGTHS = [PROTOCOL_MAX + 1, 2**32, 2**63 - 1]  # declared, never sent
BAD_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]
BAD_UTF8 = [b"\xff", b"a\xfe", b"\xc3", b"\xc3\x28", b"\xed\xa0\x80", b"\xed\xbf\xbf",
            b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe2\x82", b"ok\x80ok", b"\xf8\x88\x80\x80\x80"]
ALLOWED_ORIGINS = ["http://localhost", "http://localhost/", "http://localhost:3000",
                   "http://localhost:{port}", "https://localhost", "http://127.0.0.1",
                   "http://127.0.0.1:{port}", "https://127.0.0.1:8443", "http://[::1]",
                   "http://[::1]:8080"]
FOREIGN_ORIGINS = ["https://evil.example", "http://evil.example:{port}",
                   "http://localhost.evil.example", "http://127.0.0.1.evil.example",
                   "http://localhost@evil.example", "http://10.0.0.1", "https://[::2]",
                   "ws://localhost", "wss://127.0.0.1", "chrome-extension://abcdefgh", "file://",
                   "null", "http://", "http://[::1", "localhost", "127.0.0.1:{port}", "*", ""]
# fmt: on
WS_POOLS = [*TEXT_POOLS, "\x00\x00\x01"]  # texts may hold NUL too


def encode(rng: random.Random, decoded: str, rate: float = 0.08) -> str:
    """Percent-encode what must be, and some of what need not be (the same path decoded)."""
    return pct(rng, decoded.encode(), rate, lower=0.2).decode()


def encode_path(rng: random.Random, path: str) -> str:
    """Some characters of a path percent-encoded; segments already encoded are kept."""
    parts = path.split("/")
    return "/".join(p if "%" in p else encode(rng, p, rate=0.04) for p in parts)


def text_of_bytes(rng: random.Random, nbytes: int) -> str:
    """A text of exactly `nbytes` UTF-8 bytes, mostly of 1-, 2-, 3- or 4-byte characters."""
    unit = rng.choice(["x", "\x00", "é", "€", "日", "🎉"])
    width = len(unit.encode())
    return unit * (nbytes // width) + "y" * (nbytes % width)


def odd_text(rng: random.Random) -> str:
    """Controls and odd code points, NUL runs, deep nesting, huge numbers, escaped surrogates."""
    roll = rng.random()
    if roll < 0.3:
        return "".join(
            rng.choices("ab\x00\x01\x1f\x7f\u2028\ufeff\U0010ffff日🎉", k=rng.randint(1, 60))
        )
    if roll < 0.45:
        return "\x00" * rng.randint(1, 200)
    if roll < 0.7:
        levels = rng.choice([1000, 10_000, rng.randint(1000, MAX_FRAME // 2 - 10)])
        return rng.choice(
            ["[" * levels + "]" * levels, '{"a":' * (levels // 5) + "1" + "}" * (levels // 5)]
        )
    if roll < 0.85:
        return '{"n": ' + rng.choice(["9" * 5000, "1e999", "-0", "NaN", "1" * 60_000]) + "}"
    return json.dumps({"type": "message", "text": "\\ud800", "x": "\x00"})


# What breaks RFC 6455 (given a data and a control opcode), and the close it gets (1002 but
# where said): the protocol layer fails the connection.
Breach = Callable[[random.Random, int, int], list[Wire]]
# fmt: off
VIOLATIONS: dict[str, Breach] = {
    "reserved opcode": lambda r, d, c: [Wire(r.choice([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]))],
    "reserved bits": lambda r, d, c: [Wire(d, b"x", rsv=r.choice([0x40, 0x20, 0x10, 0x70]))],
    "unmasked": lambda r, d, c: [Wire(r.choice([1, 2, 9]), b"hello", masked=False)],
    "control over 125 bytes": lambda r, d, c: [Wire(c, b"x" * r.randint(126, 300))],
    "fragmented control": lambda r, d, c: [Wire(c, b"x", fin=False)],
    "stray continuation": lambda r, d, c: [Wire(0, b"x", fin=r.random() < 0.5)],
    "data inside a message": lambda r, d, c: [Wire(1, b"a", fin=False), Wire(d, b"b")],
    "one-byte close": lambda r, d, c: [Wire(8, b"\x03")],
    "invalid close code": lambda r, d, c: [Wire(8, r.choice(BAD_CLOSE_CODES).to_bytes(2, "big"))],
    "close reason no UTF-8": lambda r, d, c: [Wire(8, b"\x03\xe8" + r.choice(BAD_UTF8))],
    "length over the limit": lambda r, d, c: [Wire(d, length=r.choice(HUGE_LENGTHS))],
}
VIOLATION_CODES = {"close reason no UTF-8": 1007, "length over the limit": 1009}
# fmt: on


def deck(rng: random.Random, items: list[str]) -> Iterator[str]:
    """The items in a shuffled order, again and again: each comes once in every len(items)."""
    while True:
        yield from rng.sample(items, len(items))


# How often each kind of frame comes, in every 100 frames through the library (a raw socket
# sends them too, and its own kinds on top).
# fmt: off
FRAMES = {"text": 22, "empty text": 3, "long text": 6, "JSON-ish text": 6, "odd text": 8,
          "text near the limit": 8, "text over the limit": 3, "binary": 9, "big binary": 4,
          "fragmented text": 8, "fragmented binary": 4, "burst": 3, "flood": 3, "ping": 13}
# fmt: on
RAW_FRAMES = {**FRAMES, "bad-utf8": 12, "violation": 10}


class Draw:
    """Draws cases from one seed: every generator of the fuzzer, and what they share (the
    session ids in use, the origins, the order of protocol violations)."""

    def __init__(self, rng: random.Random, port: int) -> None:
        self.rng = rng
        self.used: set[str] = set()
        self.allowed = [o.format(port=port) for o in ALLOWED_ORIGINS]
        self.foreign = [o.format(port=port) for o in FOREIGN_ORIGINS]
        self.violations = deck(rng, list(VIOLATIONS))
        bags = {False: FRAMES, True: RAW_FRAMES}  # by transport: raw or not
        self.frames = {
            raw: deck(rng, [k for k, n in bag.items() for _ in range(n)])
            for raw, bag in bags.items()
        }
        self.handshakes = deck(rng, ["garbage", "no-key", "bad-key", "bad-version", "two-keys"])

    def cases(self, count: int) -> list[Case]:
        # The regression first: a handshake line over 8 KiB once hung for ever (6b7dc5d).
        cases = [Case(0, raw=True, path="/ws/echo?x=" + "x" * 8200)]
        return cases + [self.case(i) for i in range(1, count)]

    def case(self, i: int) -> Case:
        rng = self.rng
        kind = rng.choices(
            ["counter", "echo", "broadcast", "catalog", "room", "unknown", "handshake"],
            weights=[12, 18, 12, 10, 30, 11, 5],
        )[0]
        case = Case(i, raw=kind == "handshake" or rng.random() < 0.4)
        if kind == "handshake":
            case.request, case.variant = self.bad_handshake()
            return case
        roll = rng.random()
        if 0.5 <= roll < 0.85:
            case.origin = rng.choice(self.allowed)
        elif roll >= 0.85:
            case.origin, case.foreign = rng.choice(self.foreign), True
        if kind == "room":
            segment = self.session_segment()
            case.path = f"/web_socket/{segment}" + self.query("max_users")
            if case.session_id and rng.random() < 0.35:
                case.holders = rng.randint(1, 3)
        elif kind == "unknown":
            case.path = self.unknown_path() + self.query(None)
        else:
            case.path = encode_path(rng, ENDPOINTS[kind]) + self.query(PARAMETER.get(kind))
        for _ in range(rng.choice([0, 1, 1, 2, 3, 4, 5])):
            case.frames.append(frame := self.frame(case.raw))
            if frame.fatal:  # the server fails the connection: nothing more is sent
                break
        if rng.random() < 0.2:
            reason = random_text(rng, rng.randint(0, 30)).encode()[:123].decode(errors="ignore")
            case.close = (rng.choice([1000, 1001, 3000, 4000, 4999]), reason)
        return case

    def session_segment(self) -> str:
        """A session id segment as sent: valid (unique in the run), too long, with a bad
        character, badly encoded, or with a slash (no room route at all)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.55:
            length = rng.choice([1, 2, 3, 8, rng.randint(4, 63), 64])
            while (sid := "".join(rng.choices(SESSION_ID_CHARS, k=length))) in self.used:
                length = min(64, length + 1)
            self.used.add(sid)
            return encode(rng, sid)
        if roll < 0.63:  # too long
            long = "".join(rng.choices(SESSION_ID_CHARS, k=rng.randint(65, 100)))
            return long if rng.random() < 0.8 else "x" * 5000
        if roll < 0.8:
            chars = rng.choices(SESSION_ID_CHARS, k=rng.randint(0, 12))
            for _ in range(rng.randint(1, 3)):
                chars.insert(rng.randint(0, len(chars)), rng.choice(BAD_ID_CHARS))
            return encode(rng, "".join(chars))
        if roll < 0.93:
            noise = pct(rng, rng.randbytes(rng.randint(1, 40))).decode() + "%00"
            script = pct(rng, "日本🎉\u202e".encode()).decode()
            return rng.choice([*BAD_SEGMENTS, noise, script])
        return rng.choice(UNROUTED)

    def unknown_path(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.7:
            return encode_path(rng, rng.choice(UNKNOWN_PATHS))
        if roll < 0.9:
            return "/" + encode(rng, random_text(rng, rng.randint(1, 20)))
        return rng.choice(["/ws/" + pct(rng, rng.randbytes(10)).decode(), "/" + "x" * 5000])

    def integer(self, name: str) -> str:
        """A value for `name` as sent: valid, invalid (encoded), or odd bytes as they are."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            if name == "after":
                return rng.choice(["0", "1", str(CHANGES), str(rng.randint(0, CHANGES))])
            return rng.choice([*VALID_MAX, str(rng.randint(1, MAX_USERS))])
        if roll < 0.85:
            value = rng.choice(BAD_INTEGERS)
            return quote(value, safe="") if rng.random() < 0.9 else encode(rng, value, 1)
        if roll < 0.97:
            return rng.choice([*RAW_VALUES, pct(rng, rng.randbytes(rng.randint(0, 40))).decode()])
        return "x" * rng.randint(1000, 20_000)

    def query(self, name: str | None) -> str:
        """A query string: none; or values for `name` (maybe twice, with its name encoded, or
        without "="), for another endpoint's parameter, and parameters nobody reads."""
        rng = self.rng
        if rng.random() < 0.35:
            return ""
        parts: list[str] = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            if rng.random() < 0.75:
                key = name or rng.choice(list(PARAMETER.values()))
                value = self.integer(key)
                key = key if rng.random() < 0.85 else encode(rng, key, 1)  # the same
                parts.append(key if value == "" and rng.random() < 0.5 else f"{key}={value}")
            else:
                key = rng.choice([*IGNORED, "x" + pct(rng, rng.randbytes(5)).decode()])
                parts.append(f"{key}={self.integer(rng.choice(list(PARAMETER.values())))}")
        return "?" + "&".join(parts)

    def frame(self, raw: bool) -> Frame:
        rng, kind = self.rng, next(self.frames[raw])
        near = [MAX_FRAME - 1, MAX_FRAME, MAX_FRAME + 1, MAX_FRAME + 3]
        pieces, between = rng.randint(2, 4), raw and rng.random() < 0.3
        if kind == "bad-utf8":
            pre = "".join(rng.choices("abc日🎉\x00", k=rng.randint(0, 20))).encode()
            payload = pre + rng.choice(BAD_UTF8) + rng.choice([b"", b"ok", "é".encode()])
            pieces = rng.choice([1, 1, 2, 3])
            return Frame("bad-utf8", payload, pieces, ping_between=between and pieces > 1)
        if kind == "violation":
            return self.violation(next(self.violations))
        if kind == "binary":
            return Frame("binary", rng.randbytes(rng.choice([0, 1, 2, rng.randint(3, 2000)])))
        if kind == "big binary":
            return Frame("binary", rng.randbytes(rng.choice([*near, 2 * MAX_FRAME])))
        if kind == "fragmented text":
            size = rng.choice([rng.randint(2, 300), *near, 2 * MAX_FRAME])
            return Frame("text", text_of_bytes(rng, size).encode(), pieces, ping_between=between)
        if kind == "fragmented binary":
            size = rng.choice([rng.randint(2, 300), *near])
            return Frame("binary", rng.randbytes(size), pieces, ping_between=between)
        if kind == "burst":  # within the allowance: never closed for its rate
            return Frame("text", b"burst", repeat=rng.randint(20, BURST - 50))
        if kind == "flood":
            return Frame("text", b"flood", repeat=rng.randint(FLOOD, FLOOD + 400))
        if kind == "ping":  # the library wants distinct data for pings awaiting their pong
            return Frame("ping", rng.randbytes(rng.randint(0 if raw else 4, 125)))
        if kind in ("text", "long text"):
            low, high = (0, 200) if kind == "text" else (200, 4000)
            text = random_text(rng, rng.randint(low, high), WS_POOLS)
        elif kind == "JSON-ish text":
            text = rng.choice(JSONISH)
        elif kind == "odd text":
            text = odd_text(rng)
        elif kind == "text near the limit":
            text = text_of_bytes(rng, rng.choice(near))
        elif kind == "text over the limit":
            text = text_of_bytes(rng, rng.randint(MAX_FRAME + 1, 3 * MAX_FRAME))
        else:
            text = ""
        return Frame("text", text.encode())

    def violation(self, label: str) -> Frame:
        wires = VIOLATIONS[label](self.rng, self.rng.choice([1, 2]), self.rng.choice([8, 9, 10]))
        code = VIOLATION_CODES.get(label, 1002)
        return Frame("violation", label=label, wires=tuple(wires), code=code)

    def bad_handshake(self) -> tuple[bytes, str]:
        """Bytes that are no valid WebSocket handshake."""
        rng = self.rng
        variant = next(self.handshakes)
        if variant == "garbage":
            return rng.randbytes(rng.randint(1, 300)) + b"\r\n\r\n", variant
        key = base64.b64encode(rng.randbytes(16)).decode()
        path = rng.choice([*ENDPOINTS.values(), "/web_socket/raw"])
        lines = handshake_lines(path, "127.0.0.1", key)
        if variant == "no-key":
            del lines[4]
        elif variant == "bad-key":
            lines[4] = "Sec-WebSocket-Key: " + rng.choice(["abc", "!!!!", "", key[:-4]])
        elif variant == "bad-version":
            lines[5] = "Sec-WebSocket-Version: " + rng.choice(["99", "8", "abc", ""])
        else:
            lines.append(f"Sec-WebSocket-Key: {key}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode(), variant


HANDSHAKE = "GET {} HTTP/1.1|Host: {}|Upgrade: websocket|Connection: Upgrade|Sec-WebSocket-Key: {}"


def handshake_lines(path: str, host: str, key: str) -> list[str]:
    return [*HANDSHAKE.format(path, host, key).split("|"), "Sec-WebSocket-Version: 13"]


def generate(seed: int, count: int, port: int) -> list[Case]:
    return Draw(random.Random(seed), port).cases(count)


# -- the two transports -----------------------------------------------------------------------


class Closed(Exception):
    """The server closed the connection (how: the transport's `close` tells)."""


def closing(close_rcvd: tuple[int, str] | None, client_first: bool) -> Outcome:
    """The outcome of a closed socket: the server's close frame, and who sent one first."""
    if close_rcvd is None:
        return Outcome("error", reason="closed without a close frame (1006)")
    code, reason = close_rcvd
    return Outcome("open", code) if client_first else Outcome("close", code, reason)


S = TypeVar("S", str, bytes)


def split(data: S, k: int) -> list[S]:
    return [data[len(data) * i // k : len(data) * (i + 1) // k] for i in range(k)]


class Library:
    """A case's socket through the `websockets` client library."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, frame: Frame) -> None:
        k, text = frame.pieces, frame.kind == "text"
        data: str | bytes = frame.text if text else frame.payload
        fragments = split(frame.text, k) if text else split(frame.payload, k)
        try:
            if frame.kind == "ping":
                pong = asyncio.ensure_future(await self.ws.ping(frame.payload))
                pong.add_done_callback(lambda f: f.cancelled() or f.exception())  # ignored
            for _ in range(frame.repeat if frame.kind != "ping" else 0):
                await self.ws.send(fragments if k > 1 else data)
        except websockets.ConnectionClosed:
            raise Closed from None

    async def pong(self) -> None:
        """A ping, answered once the server has read every frame sent before it."""
        with suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(await self.ws.ping(), TIMEOUT)

    async def recv(self) -> str | bytes:
        try:
            return await self.ws.recv()
        except websockets.ConnectionClosed:
            raise Closed from None

    async def close(self, code: int, reason: str) -> Outcome:
        await self.ws.close(code, reason)
        rcvd = self.ws.protocol.close_rcvd
        close = (rcvd.code, rcvd.reason) if rcvd else None
        return closing(close, client_first=self.ws.protocol.close_rcvd_then_sent is False)


async def read_frame(reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
    """A server's frame: (fin, opcode, payload)."""
    head = await reader.readexactly(2)
    n = head[1] & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return bool(head[0] & 0x80), head[0] & 0x0F, await reader.readexactly(n)


class Raw:
    """A case's socket on a raw TCP connection, frames built by hand. A reader task
    reassembles messages, answers pings, and answers the server's close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.messages: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.barrier: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_rcvd: tuple[int, str] | None = None
        self.client_first = False
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        parts: list[bytes] = []
        opcode = 1
        try:
            while True:
                fin, op, payload = await read_frame(self.reader)
                if op == 8:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    self.close_rcvd = (code, payload[2:].decode(errors="replace"))
                    if not self.client_first:
                        await self.write([Wire(8, payload[:2])])
                    return
                if op == 9:
                    await self.write([Wire(10, payload)])
                elif op == 10:
                    if payload == b"barrier" and not self.barrier.done():
                        self.barrier.set_result(None)
                else:
                    opcode = op or opcode
                    parts.append(payload)
                    if fin:
                        data = b"".join(parts)
                        parts = []
                        self.messages.put_nowait(
                            data.decode(errors="replace") if opcode == 1 else data
                        )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.messages.put_nowait(None)
            if not self.barrier.done():
                self.barrier.set_result(None)

    async def write(self, wires: list[Wire]) -> None:
        if self.writer.is_closing():
            return
        try:
            self.writer.write(b"".join(w.encode() for w in wires))
            await self.writer.drain()
        except ConnectionError:
            pass  # the server closed first: its close frame is still to be read

    async def send(self, frame: Frame) -> None:
        if frame.kind == "violation":
            wires = list(frame.wires)
        elif frame.kind == "ping":
            wires = [Wire(9, frame.payload)]
        else:
            opcode, parts = 2 if frame.kind == "binary" else 1, split(frame.payload, frame.pieces)
            wires = [
                Wire(opcode if i == 0 else 0, p, fin=i == len(parts) - 1)
                for i, p in enumerate(parts)
            ]
            if frame.ping_between and len(wires) > 1:
                wires.insert(1, Wire(9, b"between"))
        await self.write(wires * frame.repeat)

    async def pong(self) -> None:
        await self.write([Wire(9, b"barrier")])
        await asyncio.wait_for(asyncio.shield(self.barrier), TIMEOUT)

    async def recv(self) -> str | bytes:
        message = await self.messages.get()
        if message is None:
            self.messages.put_nowait(None)  # closed stays closed
            raise Closed
        return message

    async def close(self, code: int, reason: str) -> Outcome:
        if self.close_rcvd is None and not self.task.done():
            self.client_first = True
            await self.write([Wire(8, code.to_bytes(2, "big") + reason.encode())])
        try:
            await asyncio.wait_for(self.task, TIMEOUT)
        except TimeoutError:
            return Outcome("timeout", reason=f"no close frame within {TIMEOUT}s")
        finally:
            self.writer.close()
            with suppress(ConnectionError):
                await self.writer.wait_closed()
        return closing(self.close_rcvd, self.client_first)


async def connect(server: LiveServer, case: Case) -> Library | Raw | Outcome:
    """The case's handshake through its transport: an open socket, or how it was refused."""
    if not case.raw:
        origin = Origin(case.origin) if case.origin is not None else None
        try:
            # No max_queue: a catalog's replay must not stall the pong behind it.
            url = server.ws + case.path
            ws = await websockets.connect(url, origin=origin, max_size=None, max_queue=None)
        except InvalidStatus as exc:
            r = exc.response
            headers = {k.lower(): v for k, v in r.headers.raw_items()}
            answer = Answer(r.status_code, headers, bytes(r.body or b""))
            return Outcome("http", r.status_code, answer=answer)
        except Exception as exc:
            return Outcome("error", reason=f"handshake failed: {exc!r}")
        return Library(ws)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = handshake_lines(case.path, f"127.0.0.1:{server.port}", key)
    lines += [f"Origin: {case.origin}"] if case.origin is not None else []
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(case.request or ("\r\n".join(lines) + "\r\n\r\n").encode())
    if case.request:
        writer.write_eof()
    try:
        answer = await asyncio.wait_for(read_answer(reader), TIMEOUT)
    except (asyncio.IncompleteReadError, ConnectionError):
        outcome = Outcome("eof")
    except TimeoutError:
        outcome = Outcome("timeout", reason=f"no answer to the handshake within {TIMEOUT}s")
    except (ValueError, IndexError, asyncio.LimitOverrunError) as exc:
        outcome = Outcome("error", reason=f"not an HTTP answer: {exc!r}")
    else:
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if answer.status == 101 and not case.request:
            if answer.headers.get("sec-websocket-accept") == accept:
                return Raw(reader, writer)
            outcome = Outcome("error", reason=f"101 with a wrong accept key: {answer.headers}")
        else:
            outcome = Outcome("http", answer.status, answer=answer)
    writer.close()
    with suppress(ConnectionError):
        await writer.wait_closed()
    return outcome


# -- running one case -------------------------------------------------------------------------


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
    """When an open socket has answered everything it was sent."""
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
    if case.endpoint == "catalog":  # the retained changes after `after`
        replay = min(CHANGES - a if a is not None else 0 for a in exp.afters)
        return lambda received: len(received) >= replay
    return lambda received: len(received) >= 1  # counter: the count on connect


async def read(conn: Library | Raw, case: Case, exp: Expect, received: list[str | bytes]) -> str:
    """Read until the server closes (Closed) or has answered; '' or what went wrong."""
    done = done_reading(case, exp)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not done(received):
        try:
            received.append(await asyncio.wait_for(conn.recv(), deadline - loop.time()))
        except TimeoutError:
            return f"no close and no answer within {TIMEOUT}s"
    if case.endpoint in ("counter", "catalog") and any(f.kind != "ping" for f in case.frames):
        # Nothing answers what these are sent: a short silence shows it was handled.
        deadline = loop.time() + 4 * QUIET
        while loop.time() < deadline:
            try:
                received.append(await asyncio.wait_for(conn.recv(), QUIET))
            except TimeoutError:
                break
    return ""


async def exchange(
    server: LiveServer, case: Case, exp: Expect
) -> tuple[Outcome, list[str | bytes]]:
    """Handshake, send the frames, read the answers, close: the outcome and what came."""
    conn = await connect(server, case)
    if isinstance(conn, Outcome):
        return conn, []
    received: list[str | bytes] = []
    problem = ""
    try:
        for frame in case.frames:
            await conn.send(frame)
        if not any(f.fatal for f in case.frames):  # the server fails the connection at once
            await conn.pong()
        problem = await read(conn, case, exp, received)
    except Closed:
        pass
    except TimeoutError:
        problem = f"no pong within {TIMEOUT}s"
    finally:
        outcome = await conn.close(*case.close)
    return (Outcome("timeout", reason=problem) if problem else outcome), received


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
            return [f"echo answered {received[:3]!r:.200}"]
        if len(received) > len(exp.texts) or (stayed_open and len(received) != len(exp.texts)):
            return [f"echo answered {len(received)} of {len(exp.texts)} text frames with OK!"]
    elif case.endpoint == "counter":
        if not all(f.isdigit() and int(f) >= 1 for f in received):
            return [f"/counter sent {received[:3]!r:.200}"]
        if stayed_open and not received:
            return ["/counter sent no count"]
    elif case.endpoint == "broadcast" and stayed_open:
        if not is_subsequence(exp.texts, received):
            return ["broadcast did not deliver the sender's own texts in order"]
    elif case.endpoint == "catalog" and received:
        return check_catalog(exp, received, stayed_open)
    elif case.endpoint == "room" and received:
        return check_room(case, exp, received, stayed_open)
    elif case.endpoint == "room" and stayed_open:
        return ["the room sent no welcome"]
    return []


def check_catalog(exp: Expect, received: list[str], stayed_open: bool) -> list[str]:
    """Nothing changes during the run: the retained changes after `after`, in order, all."""
    try:
        frames = [json.loads(f) for f in received]
        ids = [f["id"] for f in frames if f["type"] in CHANGE_TYPES and isinstance(f["data"], dict)]
    except (ValueError, KeyError, TypeError):
        return [f"/ws/catalog sent {received[:2]!r:.200}"]
    if len(ids) != len(frames):
        return [f"/ws/catalog sent frames that are no changes: {received[:2]!r:.200}"]
    for after in exp.afters:
        wanted = list(range(after + 1, CHANGES + 1)) if after is not None else []
        if ids == (wanted if stayed_open else wanted[: len(ids)]):
            return []
    return [f"/ws/catalog sent ids {ids[:3]}...{ids[-3:]}, after= one of {exp.afters}"]


def check_room(case: Case, exp: Expect, received: list[str], stayed_open: bool) -> list[str]:
    try:
        frames = [json.loads(f) for f in received]
    except ValueError:
        return [f"the room sent frames that are no JSON: {received[:2]!r:.200}"]
    if not all(isinstance(f, dict) for f in frames):
        return [f"the room sent frames that are no JSON objects: {received[:2]!r:.200}"]
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
            mine = (case.session_id, welcome["member_id"])
            if (frame.get("session_id"), frame.get("member_id")) != mine:
                return [f"message {str(frame)[:100]} is not this member's"]
            texts.append(frame.get("text"))
        else:
            return [f"unexpected frame {str(frame)[:100]}"]
    if texts != exp.texts[: len(texts)] or (stayed_open and len(texts) != len(exp.texts)):
        return [f"relayed {len(texts)} texts, not the {len(exp.texts)} sent in order"]
    return []


def refusal_errors(case: Case, outcome: Outcome) -> list[str]:
    """A refused handshake is answered with a problem, like every HTTP error."""
    answer = outcome.answer
    if answer is None or outcome.code == 101:
        return []
    return problem_errors(answer)


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
    async with AsyncExitStack() as stack:
        holders = await fill_room(server, case, stack) if case.holders else []
        outcome, received = await exchange(server, case, exp)
    problems = check_frames(case, exp, outcome, received) + refusal_errors(case, outcome)
    problems += [
        f"a member holding the full room was closed {ws.close_code}"
        for ws in holders
        if ws.close_code != 1000
    ]
    if not any(matches(rule, outcome) for rule in exp.rules):
        problems.insert(0, f"expected {' or '.join(map(repr, exp.rules))}, got {outcome!r}")
    return outcome, problems


# -- the witness and the checks after the run ---------------------------------------------


class Witness:
    """A client on /ws/echo for the whole run: whenever cases have finished it sends one
    numbered text and reads the answer, which must be OK! (API.md: /ws/echo answers `OK!`).
    Once `stopping` is set it makes one last round trip, after the run, and returns."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self.wake, self.stopping = ws, asyncio.Event(), False
        self.answers: list[str | bytes] = []  # what came back for "witness 0", 1, 2, ...
        self.during_run = 0  # round trips begun before `stopping`: while cases ran

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            await self.wake.wait()
            self.wake.clear()
            last = self.stopping
            if not last and self.during_run >= (BURST + RATE * (loop.time() - start)) / 2:
                continue  # it keeps within half the rate allowance (1008 past it)
            await self.ws.send(f"witness {len(self.answers)}")
            self.answers.append(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if last:
                return
            self.during_run += 1

    def problems(self) -> list[str]:
        """What the witness saw that breaks the contract of /ws/echo."""
        wrong = [f"'witness {i}' answered {a!r}" for i, a in enumerate(self.answers) if a != "OK!"]
        if self.during_run < WITNESS_ROUNDS:
            wrong.append(f"{self.during_run} round trips while cases ran (< {WITNESS_ROUNDS})")
        return [f"the witness on /ws/echo: {', '.join(wrong[:3])}"] if wrong else []


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


# -- tests --------------------------------------------------------------------------------


def category(case: Case, rule: Rule) -> str:
    """An outcome the contract allows, named for the coverage test."""
    if rule.kind == "open":
        return f"open {case.endpoint}"
    if rule.kind == "close":
        return f"{rule.code} {rule.reason_has or ''}".strip()
    return repr(rule)


def test_fuzz_cases_cover_every_kind_and_outcome() -> None:
    """The seeded cases reach every documented outcome, every handshake kind, and every kind
    of frame through each transport (the raw socket's own kinds through it)."""
    cases = generate(FUZZ.seed, FUZZ.cases, port=8000)
    seen = Counter(category(case, rule) for case in cases for rule in expect(case).rules)
    # fmt: off
    wanted = ["4403", "HTTP 404", "HTTP 414", "HTTP 4xx", "no response", "1002", "1003", "1007",
              "1008 faster", "1009", "4400 session_id", "4400 max_users", "4400 after", "4429",
              "open counter", "open echo", "open broadcast", "open catalog", "open room"]
    # fmt: on
    assert all(seen[w] for w in wanted), f"seed {FUZZ.seed}: {[w for w in wanted if not seen[w]]}"
    kinds = Counter(("raw " if c.raw else "") + f.name for c in cases for f in c.frames)
    kinds.update(f"handshake {c.variant}" for c in cases if c.request)
    kinds.update(f"{'raw ' if c.raw else ''}holders" for c in cases if c.holders)
    kinds.update(f"{'raw ' if c.raw else ''}origin" for c in cases if c.origin is not None)
    kinds.update("raw ping between fragments" for c in cases for f in c.frames if f.ping_between)
    common = ["text", "binary", "fragmented text", "fragmented binary", "ping", "burst", "flood"]
    common += ["holders", "origin"]
    raw = ["bad-utf8", "fragmented bad-utf8", "ping between fragments", *VIOLATIONS]
    handshakes = ["garbage", "no-key", "bad-key", "bad-version", "two-keys"]
    wanted = [*common, *(f"raw {k}" for k in [*common, *raw])]
    wanted += [f"handshake {h}" for h in handshakes]
    assert all(kinds[w] for w in wanted), f"seed {FUZZ.seed}: {sorted(set(wanted) - set(kinds))}"


async def test_fuzz_server_answers_every_case_by_the_contract(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """Seeded random cases end as documented; a witness is served throughout; nothing leaks."""
    print(f"WebSocket fuzz seed {FUZZ.seed}, {FUZZ.cases} cases; replay: {FUZZ.replay}")
    # Retained changes to replay (loading the demo recorded none): one per row, in id order.
    await sql.execute("UPDATE brand SET brand_name = brand_name || '.'")
    await sql.execute("UPDATE product SET product_name = product_name || '.'")
    assert await sql.fetchval("SELECT max(id) FROM catalog_change") == CHANGES
    cases = generate(FUZZ.seed, FUZZ.cases, live_server.port)
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
    failures += witness.problems()

    rooms = sorted({c.session_id for c in cases if c.session_id})
    failures += await rooms_are_empty(live_server, rooms)
    failures += await counter_drops_to_one(live_server)
    failures += await server_problems(live_server)
    assert not failures, FUZZ.report("WebSocket contract violations", failures)


async def test_a_handshake_without_a_key_is_refused_with_a_problem(
    live_server: LiveServer,
) -> None:
    """API.md: answers decided before the app sees a request are problems too."""
    lines = handshake_lines("/ws/echo", "127.0.0.1", "")
    del lines[4]
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        answer = await asyncio.wait_for(read_answer(reader), TIMEOUT)
    finally:
        writer.close()
    assert answer.status == 400
    assert not problem_errors(answer), answer
