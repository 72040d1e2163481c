"""A seeded raw-bytes fuzzer against a real server, over HTTP and WebSocket: the bytes a
schema-driven fuzzer never sends (random bytes, invalid UTF-8, NUL, lone surrogates, deep
nesting, huge numbers, huge bodies, odd headers, percent-encoded junk in paths and queries,
frames the `websockets` library refuses to send).

Every case is drawn from one seed (FUZZ_SEED=<n> replays a run, FUZZ_SEED=random draws a
new one) and its answer is checked against docs/API.md: HTTP never 5xx, every error a
problem+json whose `status` is the HTTP status, 201 only for a valid body; WebSocket close
codes from the documented set, never 1011, never a connection dropped without a close frame.
Afterwards the demo rows are unchanged, every product created exists, and the server's log
holds no traceback.
"""

import asyncio
import base64
import json
import os
import random
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import websockets
from websockets.exceptions import InvalidStatus

from tests.helpers import AUTH, LiveServer

_SEED = os.environ.get("FUZZ_SEED", "20261126")
SEED = random.SystemRandom().randrange(2**32) if _SEED == "random" else int(_SEED)
HTTP_CASES = 400
WS_CASES = 160
REPLAY = f"FUZZ_SEED={SEED} .venv/bin/python -m pytest tests/test_raw_fuzz.py"

MAX_BODY = 1024 * 1024  # MAX_BODY_BYTES: a larger body is 413
MAX_FRAME = 64 * 1024  # WS_MAX_MESSAGE_BYTES: a larger message closes 1009
BRANDS = 100  # the demo catalog: brands 1..100, products 1..1000
PRODUCTS = 1000
MAX_ID = 2**31 - 1
TIMEOUT = 10.0
QUIET = 0.3  # /counter and /ws/catalog answer nothing: silence this long shows no close came
CONCURRENCY = 8
# Demo rows that only ever receive invalid writes: they must be unchanged afterwards.
GUARDED = [1, 2, 5, 17, 42, 100, 500, 999, 1000]
WS_CODES = {1000, 1003, 1007, 1008, 1009, 1013, 4400, 4403, 4410, 4429}
JSON_CT = b"application/json"
BEARER = AUTH["Authorization"].encode()


# -- HTTP cases ----------------------------------------------------------------------------


@dataclass
class HttpCase:
    index: int
    label: str
    method: str
    target: bytes  # the request-target as sent
    headers: list[tuple[bytes, bytes]]
    body: bytes | None = None  # None: no body and no Content-Length
    expect: frozenset[int] = frozenset()  # the statuses the contract allows
    chunked: bool = False
    content_length: int | None = None  # declared instead of len(body) (the body is not sent)
    written: list[dict[str, Any]] = field(default_factory=list)  # products a 2xx may hold

    def __repr__(self) -> str:
        size = len(self.body) if self.body is not None else "-"
        head = self.body[:80] if self.body is not None else b""
        hdrs = [(k, v[:60]) for k, v in self.headers if k != b"authorization" or v != BEARER]
        return (
            f"#{self.index} {self.label}: {self.method} {self.target[:120]!r} "
            f"headers={hdrs} body[{size}]={head!r}"
        )


NAME_POOLS = [
    string.ascii_letters + string.digits + string.punctuation + " ",
    "éèàçüß€£ñ",
    "日本語中文한국어",
    "🎉🚀👍🏽💥",
    "\u200b\u202e\ufeff\u2028\U0010ffff\x01\x1f\x7f\t",
]


def valid_name(rng: random.Random) -> str:
    pool = "".join(rng.sample(NAME_POOLS, rng.randint(1, len(NAME_POOLS))))
    length = rng.choice([1, 2, 10, rng.randint(1, 200), 199, 200])
    name = "".join(rng.choices(pool, k=length))
    if not name.strip(" \t\n\v\f\r"):  # at least one other character
        name = name[:-1] + "x"
    return name


def dumps(rng: random.Random, value: object) -> bytes:
    return json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()


def product_body(rng: random.Random, name: str, brand: str) -> bytes:
    """A product object with `brand` as its raw JSON value."""
    return b'{"product_name": ' + dumps(rng, name) + b', "brand_id": ' + brand.encode() + b"}"


def deep(rng: random.Random) -> bytes:
    levels = rng.choice([1000, 2000, rng.randint(1000, 100_000), 100_000])
    kind = rng.choice(["array", "object", "field", "mixed"])
    if kind == "array":
        return b"[" * levels + b"]" * levels
    if kind == "object":
        return b'{"a":' * levels + b"1" + b"}" * levels
    if kind == "mixed":
        return b'[{"a":' * (levels // 2) + b"null" + b"}]" * (levels // 2)
    return b'{"product_name": ' + b"[" * levels + b"]" * levels + b', "brand_id": 1}'


HUGE_NUMBERS = [
    "1" + "0" * 5000,
    "9" * 5000,
    "-" + "9" * 5000,
    "1e999",
    "-1e999",
    "1e-999",
    "-0",
    "-0.0",
    "0",
    "NaN",
    "Infinity",
    "-Infinity",
    "nan",
    "1.5",
    "7.5",
    str(2**31),
    str(2**63),
    str(2**64),
    "-1",
    "1" + "0" * 400 + ".5",
    "0x10",
    "1_0",
    "01",
    "+1",
    ".5",
    "1.",
    "1e",
    "--1",
]
INTEGRAL_FLOATS = ["7.0", "1e1", "1E2", "5.000", "2.0e0"]  # JSON Schema integers: valid
WRONG_TYPES = [None, True, False, [], {}, "1", "x", [1], {"a": 1}]


def invalid_body(rng: random.Random) -> tuple[str, bytes]:
    """(label, body) of a JSON body that is not a valid product (422)."""
    name = valid_name(rng)
    kind = rng.choice(
        [
            "random",
            "utf8",
            "nul",
            "surrogate",
            "deep",
            "number",
            "long",
            "types",
            "garbage",
            "missing",
            "unknown",
            "empty",
            "top",
        ]
    )
    if kind == "random":
        return kind, rng.randbytes(rng.randint(1, 300))
    if kind == "utf8":
        bad = rng.choice(
            [
                b"\xff",
                b"\xfe\xff",
                b"\xc3",
                b"\xe9",
                b"\x80",
                b"\xf8\x88\x80\x80",
                b"\xc0\xaf",
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
            ]
        )
        at = rng.choice(
            [
                b'{"product_name": "a' + bad + b'", "brand_id": 1}',
                b'{"product_' + bad + b'name": "a", "brand_id": 1}',
                b'{"product_name": "a", "brand_id": 1, "x": "' + bad + b'"}',
            ]
        )
        return kind, at
    if kind == "nul":
        raw = rng.choice(['"a\\u0000b"', '"\\u0000"', '"x\\u0000"'])
        body = rng.choice(
            [
                b'{"product_name": ' + raw.encode() + b', "brand_id": 1}',
                b'{"product_name": "a\x00b", "brand_id": 1}',
                b'{"product_name": "ab", "brand_id": 1}\x00',
                b'\x00{"product_name": "ab", "brand_id": 1}',
            ]
        )
        return kind, body
    if kind == "surrogate":
        escape = rng.choice(["\\ud800", "\\udfff", "a\\ud83d", "\\ude00b", "\\udc00\\ud800"])
        return kind, b'{"product_name": "' + escape.encode() + b'", "brand_id": 1}'
    if kind == "deep":
        return kind, deep(rng)
    if kind == "number":
        return kind, product_body(rng, name, rng.choice(HUGE_NUMBERS))
    if kind == "long":
        length = rng.choice([201, 202, rng.randint(201, 5000), rng.randint(10_000, 900_000)])
        return kind, product_body(rng, "n" * length, "1")
    if kind == "types":
        if rng.random() < 0.5:
            return kind, b'{"product_name": ' + dumps(
                rng, rng.choice(WRONG_TYPES)
            ) + b', "brand_id": 1}'
        return kind, product_body(rng, name, json.dumps(rng.choice(WRONG_TYPES)))
    if kind == "garbage":
        tail = rng.choice([b"x", b"}", b"]", b",", b"{}", b"\x00", b"\xff", b" 1", b"//"])
        return kind, product_body(rng, name, "1") + rng.choice([b"", b" ", b"\n"]) + tail
    if kind == "missing":
        return kind, rng.choice([b"{}", b'{"brand_id": 1}', b'{"product_name": "a"}', b"null"])
    if kind == "unknown":
        return kind, product_body(rng, name, "1")[:-1] + b', "extra": 1}'
    if kind == "empty":
        return kind, rng.choice([b"", b" ", b"\n", b"\t\r\n"])
    return kind, dumps(rng, rng.choice([1, "x", [], [1, 2], None, 1.5, True]))


def write_target(rng: random.Random, put_ids: list[int]) -> tuple[str, bytes, int | None]:
    """(method, target, id of a demo row a valid PUT would change) for a catalog write."""
    roll = rng.random()
    if roll < 0.4:
        return "POST", b"/products", None
    if roll < 0.55:
        return "POST", b"/product", None
    return "PUT", f"/products/{rng.choice(GUARDED)}".encode(), rng.choice(GUARDED)


def http_write_case(rng: random.Random, i: int, put_ids: list[int]) -> HttpCase:
    method, target, _ = write_target(rng, put_ids)
    headers = [(b"content-type", JSON_CT), (b"authorization", BEARER)]
    roll = rng.random()
    if roll < 0.22:  # a valid product: 201 (POST) or 200 (PUT); PUT only to rows of its own
        name, brand = valid_name(rng), rng.randint(1, BRANDS)
        raw = str(brand) if rng.random() < 0.8 else rng.choice(INTEGRAL_FLOATS)
        brand = int(float(raw))
        body = product_body(rng, name, raw)
        if rng.random() < 0.2:
            body = b" \n" + body + b"\r\n\t"  # whitespace around JSON is JSON
        written = [{"product_name": name, "brand_id": brand}]
        if method == "PUT":
            if rng.random() < 0.2:
                missing = rng.randint(5_000_000, MAX_ID)
                return HttpCase(
                    i,
                    "put-missing",
                    method,
                    f"/products/{missing}".encode(),
                    headers,
                    body,
                    frozenset({404}),
                )
            pid = put_ids.pop()
            case = HttpCase(
                i,
                "valid-put",
                method,
                f"/products/{pid}".encode(),
                headers,
                body,
                frozenset({200}),
                written=[{**written[0], "product_id": pid}],
            )
            return case
        return HttpCase(
            i, "valid", method, target, headers, body, frozenset({201}), written=written
        )
    if roll < 0.30:  # a product of a brand that does not exist
        body = product_body(rng, valid_name(rng), str(rng.randint(BRANDS + 1, MAX_ID)))
        return HttpCase(i, "unknown-brand", method, target, headers, body, frozenset({409}))
    if roll < 0.35:  # duplicate keys: RFC 8259 leaves them undefined; 201 holds one of them
        a, b = valid_name(rng), valid_name(rng)
        body = b'{"product_name": ' + dumps(rng, a) + b', "brand_id": 3, "product_name": '
        body += dumps(rng, b) + b"}"
        written = [{"product_name": n, "brand_id": 3} for n in (a, b)]
        ok = 201 if method == "POST" else 200
        if method == "PUT":  # a row of its own: a guarded row never takes a 200
            target = f"/products/{put_ids.pop()}".encode()
        return HttpCase(
            i,
            "duplicate-keys",
            method,
            target,
            headers,
            body,
            frozenset({ok, 422}),
            written=written,
        )
    if roll < 0.43:  # over MAX_BODY_BYTES: 413 (from Content-Length, or as it arrives)
        variant = rng.choice(["declared", "declared", "chunked", "lying"])
        if variant == "chunked":
            body = product_body(rng, "n" * (MAX_BODY + rng.randint(1, 64 * 1024)), "1")
            return HttpCase(
                i, "huge-chunked", method, target, headers, body, frozenset({413}), chunked=True
            )
        size = rng.choice([MAX_BODY + 1, MAX_BODY + 4096, 3 * MAX_BODY, 10**12])
        body = product_body(rng, "n" * 100, "1")
        label = "huge-declared" if variant == "declared" else "huge-length-small-body"
        return HttpCase(
            i, label, method, target, headers, body, frozenset({413}), content_length=size
        )
    if roll < 0.46:  # exactly at the limit: read in full, then refused as too long a name
        body = product_body(rng, "", "1")
        body = product_body(rng, "n" * (MAX_BODY - len(body)), "1")
        return HttpCase(i, "at-limit", method, target, headers, body, frozenset({422}))
    if roll < 0.56:  # other or no content type
        body = product_body(rng, valid_name(rng), "1")
        ctype = rng.choice(
            [
                b"text/plain",
                b"application/x-www-form-urlencoded",
                b"json",
                b"multipart/form-data; boundary=x",
                b"application/jsonx",
                b"application/xml",
                b"*/*",
                b"application",
                b"",
                bytes(rng.choices(range(0x21, 0x7F), k=rng.randint(1, 40))),
                None,
            ]
        )
        hdrs = [(b"authorization", BEARER)]
        if ctype is not None:
            hdrs.append((b"content-type", ctype))
        media = (ctype or b"").split(b";")[0].strip().lower()
        json_like = media == JSON_CT or (
            media.startswith(b"application/") and media.endswith(b"+json")
        )
        if json_like:  # e.g. random printable bytes that happen to spell it: skip the case
            hdrs = [(b"content-type", b"text/plain"), (b"authorization", BEARER)]
        return HttpCase(i, "content-type", method, target, hdrs, body, frozenset({415}))
    if roll < 0.64:  # a bad Authorization header: 401, whatever the body
        value = rng.choice(
            [
                b"",
                b"Bearer",
                b"Bearer ",
                b"Basic dXNlcjpwYXNz",
                b"Bearer " + header_bytes(rng, rng.randint(1, 300)),
                header_bytes(rng, rng.randint(1, 300)),
                BEARER[:-3],
                BEARER + b"x",
                b"Bearer " + base64.b64encode(rng.randbytes(rng.randint(10, 200))),
                b"Bearer a.b.c",
                b"bearer " + BEARER[7:] + b" extra",
            ]
        )
        hdrs = [(b"content-type", JSON_CT), (b"authorization", value)]
        if rng.random() < 0.2:
            hdrs = [(b"content-type", JSON_CT)]
        body = product_body(rng, valid_name(rng), "1") if rng.random() < 0.5 else rng.randbytes(20)
        return HttpCase(i, "authorization", method, target, hdrs, body, frozenset({401}))
    if roll < 0.68:  # a PUT to an id that is no id: 4xx whatever the body
        while 200 in (bad_id := odd_id(rng))[1]:  # never an id a write could change
            pass
        segment = bad_id[0]
        label, body = invalid_body(rng) if rng.random() < 0.5 else ("", product_body(rng, "x", "1"))
        return HttpCase(
            i,
            "put-bad-id " + label,
            "PUT",
            b"/products/" + segment,
            headers,
            body,
            frozenset({404, 405, 422}),
        )
    label, body = invalid_body(rng)
    if method == "PUT":
        target = f"/products/{rng.choice(GUARDED)}".encode()
    return HttpCase(i, label, method, target, headers, body, frozenset({422}))


def header_bytes(rng: random.Random, n: int) -> bytes:
    """Bytes an HTTP header value may hold (visible ASCII, obs-text, space, tab): random
    otherwise, so the app sees them (the parser's own 400 is not the app's)."""
    alphabet = [*range(0x21, 0x7F), *range(0x80, 0x100), 0x20, 0x09]
    return bytes(rng.choices(alphabet, k=n)).strip(b" \t") or b"x"


def pct(rng: random.Random, data: bytes) -> bytes:
    """Percent-encode every byte that is not unreserved (and some that are)."""
    unreserved = (string.ascii_letters + string.digits + "-._~").encode()
    return b"".join(
        bytes([c]) if c in unreserved and rng.random() > 0.1 else b"%%%02X" % c for c in data
    )


def odd_id(rng: random.Random) -> tuple[bytes, frozenset[int]]:
    """(a /products/{id} segment as sent, the statuses it allows)."""
    missing = frozenset({404})
    bad = frozenset({404, 422})  # 404 where the decoded path no longer matches the route
    roll = rng.random()
    if roll < 0.2:
        return str(rng.randint(1, PRODUCTS)).encode(), frozenset({200})
    if roll < 0.27:
        return str(rng.randint(5_000_000, MAX_ID)).encode(), missing
    if roll < 0.33:  # other spellings of a number: the contract does not say whether they
        # are ids (lihil reads "1.0" and "1e3" as 1 and 1000); any answer but a 5xx
        value = rng.choice(["+1", " 1", "1 ", "1.0", "1e3", "01", "1_0", "0x1", "1.5", "1e-1"])
        return quote(value, safe="%").encode(), frozenset({200, 404, 422})
    if roll < 0.45:
        value = rng.choice(
            [
                "0",
                "-1",
                str(2**31),
                str(2**63),
                "9" * 5000,
                "abc",
                "",
                "NaN",
                "null",
                "%00",
                "%ff",
                "%zz",
                "%",
                "%2",
                "1%00",
                "%FF%FE",
                "%ed%a0%80",
                "%c3%28",
                "%2F",
                "..",
                "%2e%2e",
                "1;x",
                "1,2",
            ]
        )
        return quote(value, safe="%").encode(), bad
    if roll < 0.6:  # very long
        return rng.choice(
            [
                b"1" * rng.randint(20, 8000),
                b"x" * rng.randint(100, 8000),
                b"%00" * rng.randint(10, 2000),
            ]
        ), bad
    if roll < 0.75:  # unicode, percent-encoded (digits of other scripts may read as ids)
        text = "".join(rng.choices("٣١２日本🎉é\u202e\ufeff\u0000\u2028", k=rng.randint(1, 12)))
        return pct(rng, text.encode()), frozenset({200, 404, 422})
    return pct(rng, rng.randbytes(rng.randint(1, 60))), frozenset({200, 404, 422})


PARAMS = {"brand_id": (1, MAX_ID), "limit": (1, 100), "after": (0, MAX_ID)}


def query_value(rng: random.Random, name: str) -> tuple[bytes, bool]:
    """(value as sent, whether it is valid for `name`)."""
    low, high = PARAMS.get(name, (0, 0))
    roll = rng.random()
    if roll < 0.35 and name in PARAMS:
        return str(rng.randint(low, min(high, 200))).encode(), True
    if roll < 0.6:
        return pct(rng, rng.randbytes(rng.randint(0, 40))), False
    choices = [
        b"%00",
        b"%zz",
        b"%",
        b"%f",
        b"1%00",
        b"%ff",
        b"-1",
        b"0" if low else b"-5",
        b"101" if name == "limit" else str(high + 1).encode(),
        b"9" * 5000,
        b"1e3",
        b"1.5",
        b"abc",
        b"",
        b"%20",
        b"+1" if rng.random() < 0.5 else b"NaN",
        b"x" * rng.randint(1000, 20_000),
        b"%ED%A0%80",
        b"%C3",
        b"1%2C2",
    ]
    return rng.choice(choices), False


def query(rng: random.Random, names: list[str]) -> tuple[bytes, bool, bool]:
    """(query string, every given known parameter valid, some parameter repeated)."""
    parts: list[bytes] = []
    valid, seen, repeated = True, set(), False
    for _ in range(rng.choice([0, 1, 1, 2, 3, 4])):
        if rng.random() < 0.75:
            name = rng.choice(names)
            if name in seen:
                repeated = True
            seen.add(name)
            value, ok = query_value(rng, name)
            valid = valid and ok
            spelled = name.encode() if rng.random() < 0.85 else pct(rng, name.encode())
            parts.append(spelled + b"=" + value)
        else:  # parameters nobody reads ("x" first: never a known name once decoded)
            name_bytes = b"x" + pct(rng, rng.randbytes(rng.randint(0, 10)))
            if name_bytes in (p.split(b"=")[0] for p in parts):
                repeated = True
            parts.append(name_bytes + b"=" + query_value(rng, "x")[0])
    return (b"?" + b"&".join(parts) if parts else b""), valid, repeated


def http_read_case(rng: random.Random, i: int) -> HttpCase:
    headers: list[tuple[bytes, bytes]] = []
    roll = rng.random()
    if roll < 0.4:
        q, valid, repeated = query(rng, ["brand_id", "limit", "after"])
        expect = {422} if repeated else ({200} if valid else {200, 422})
        case = HttpCase(i, "list", "GET", b"/products" + q, headers, expect=frozenset(expect))
    elif roll < 0.6:
        brand, allowed = rng.choice(
            [
                (str(rng.randint(1, BRANDS)).encode(), {200}),
                (str(rng.randint(BRANDS + 1, MAX_ID)).encode(), {404}),
                (rng.choice([b"0", b"-1", b"x", b"%00", b"%ff", b"%zz", b"9" * 5000]), {404, 422}),
                (pct(rng, rng.randbytes(rng.randint(1, 30))), {200, 404, 422}),
            ]
        )
        q, _, repeated = query(rng, ["brand_id", "limit", "after"])
        expect = {422} | ({404} if allowed != {200} else set()) if repeated else allowed
        case = HttpCase(
            i, "brand", "GET", b"/brands/" + brand + q, headers, expect=frozenset(expect)
        )
    else:
        segment, statuses = odd_id(rng)
        case = HttpCase(i, "product", "GET", b"/products/" + segment, headers, expect=statuses)
    if rng.random() < 0.4:  # odd headers the app reads (or must ignore)
        name, value = rng.choice(
            [
                (b"x-request-id", header_bytes(rng, rng.randint(1, 400))),
                (b"if-none-match", header_bytes(rng, rng.randint(1, 400))),
                (b"if-none-match", b'W/"' + header_bytes(rng, 30).replace(b'"', b"") + b'", "x"'),
                (b"authorization", header_bytes(rng, rng.randint(1, 100))),
                (b"accept", header_bytes(rng, rng.randint(1, 100))),
                (b"origin", header_bytes(rng, rng.randint(1, 100))),
                (b"x-forwarded-for", header_bytes(rng, rng.randint(1, 100))),
                (b"content-type", header_bytes(rng, rng.randint(1, 100))),
            ]
        )
        case.headers.append((name, value))
    if rng.random() < 0.05 and not any(k == b"if-none-match" for k, _ in case.headers):
        # `*` matches any current answer: 304 for what would be 200
        case.headers.append((b"if-none-match", b"*"))
        if 200 in case.expect:
            case.expect = (case.expect - {200}) | {304}
    return case


def generate_http(rng: random.Random, count: int) -> list[HttpCase]:
    put_ids = list(range(PRODUCTS - 200, PRODUCTS - 100))  # demo rows valid PUTs may change
    rng.shuffle(put_ids)
    return [
        http_write_case(rng, i, put_ids) if rng.random() < 0.6 else http_read_case(rng, i)
        for i in range(count)
    ]


# -- HTTP over a raw socket ----------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def request_bytes(case: HttpCase, port: int) -> tuple[bytes, bytes]:
    """(request head, the body bytes to send after it)."""
    head = [b"%s %s HTTP/1.1" % (case.method.encode(), case.target), b"host: 127.0.0.1:%d" % port]
    # Kept alive: the server may answer before reading a body (401, 413, 415); closing
    # then, with the body unread, would reset the connection and lose the answer.
    head += [k + b": " + v for k, v in case.headers]
    body = b""
    if case.chunked:
        assert case.body is not None
        head.append(b"transfer-encoding: chunked")
        step = 64 * 1024
        pieces = [case.body[i : i + step] for i in range(0, len(case.body), step)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)  # no last chunk
    elif case.content_length is not None:
        head.append(b"content-length: %d" % case.content_length)
    elif case.body is not None:
        head.append(b"content-length: %d" % len(case.body))
        body = case.body
    return b"\r\n".join(head) + b"\r\n\r\n", body


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One response, read to the end of its body (by its length, or its chunks)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if status == 304 or status < 200:
        return Answer(status, headers, b"")
    if "content-length" in headers:
        return Answer(status, headers, await reader.readexactly(int(headers["content-length"])))
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
        return Answer(status, headers, body)
    return Answer(status, headers, await reader.read())


async def send_http(case: HttpCase, port: int) -> Answer:
    head, body = request_bytes(case, port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        step = 256 * 1024  # a piece at a time: the server may refuse before the end
        try:
            for i in range(0, len(body), step):
                writer.write(body[i : i + step])
                await writer.drain()
        except ConnectionError:
            pass  # it answered and closed: the answer is still to be read
        return await asyncio.wait_for(read_answer(reader), TIMEOUT)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


def check_http(case: HttpCase, answer: Answer) -> list[str]:
    """What an answer breaks of the contract."""
    problems = []
    # A request line over MAX_HEADER_BYTES (16 KiB) is 414 before anything reads it.
    too_long = answer.status == 414 and len(case.target) + 16 > 16 * 1024
    if answer.status >= 500:
        problems.append(f"answered {answer.status} {answer.body[:300]!r}")
    elif answer.status not in case.expect and not too_long:
        problems.append(
            f"answered {answer.status} (expected {sorted(case.expect)}) {answer.body[:300]!r}"
        )
    if answer.status >= 400:
        ctype = answer.headers.get("content-type", "")
        if not ctype.startswith("application/problem+json"):
            problems.append(f"error {answer.status} with content-type {ctype!r}")
        try:
            doc = json.loads(answer.body)
        except ValueError:
            return [*problems, f"error body is no JSON: {answer.body[:200]!r}"]
        if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), str) for k in ("type", "title")
        ):
            problems.append(f"problem without type or title: {doc!r:.300}")
        elif doc.get("status") != answer.status:
            problems.append(f"problem status {doc.get('status')} on HTTP {answer.status}")
    if answer.status in (200, 201) and case.method in ("POST", "PUT"):
        product = json.loads(answer.body)
        stripped = {k: product.get(k) for k in ("product_name", "brand_id")}
        if stripped not in [{k: w[k] for k in ("product_name", "brand_id")} for w in case.written]:
            problems.append(f"wrote {product!r:.300}, sent {case.written!r:.300}")
        if answer.status == 201:
            location = answer.headers.get("location")
            if location != f"/products/{product.get('product_id')}":
                problems.append(f"201 with Location {location!r} for {product!r:.200}")
    return problems


# -- WebSocket cases -----------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    kind: str  # "text" | "binary" | "bad-utf8" (a text frame whose payload is not UTF-8)
    payload: bytes
    pieces: int = 1  # sent as a fragmented message (raw cases only)
    bad: int = 0  # bad-utf8: the invalid bytes are the payload's last `bad`

    def __repr__(self) -> str:
        split = f"/{self.pieces}" if self.pieces > 1 else ""
        return f"{self.kind}{split}({len(self.payload)}B:{self.payload[:24]!r})"


@dataclass
class WsCase:
    index: int
    endpoint: str  # "counter" | "echo" | "broadcast" | "catalog" | "room" | "unknown"
    path: bytes  # as sent, query included
    frames: list[Frame]
    raw: bool  # over a raw socket (the library would refuse the bytes)
    expect: frozenset[int | str]  # close codes, "open" (answered, closed by us), "http"
    texts: list[str] = field(default_factory=list)  # the texts the server handles

    def __repr__(self) -> str:
        via = "raw" if self.raw else "websockets"
        return f"#{self.index} {self.endpoint} ({via}) {self.path[:120]!r} frames={self.frames}"


ENDPOINTS = {
    "counter": b"/counter",
    "echo": b"/ws/echo",
    "broadcast": b"/ws/broadcast",
    "catalog": b"/ws/catalog",
}
TEXT_ONLY = {"echo", "broadcast", "room"}  # a binary frame closes 1003
BAD_UTF8 = [
    b"\xff",
    b"a\xfe",
    b"\xc3",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"\xe2\x82",
    b"ok\x80ok",
    b"\xf8\x88\x80\x80\x80",
]


def ws_text(rng: random.Random) -> str:
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


def ws_frame(rng: random.Random, raw: bool) -> Frame:
    roll = rng.random()
    if raw and roll < 0.45:
        bad = rng.choice(BAD_UTF8)
        pre = "".join(rng.choices("abc日🎉\x00", k=rng.randint(0, 20))).encode()
        return Frame("bad-utf8", pre + bad, pieces=rng.choice([1, 1, 2, 3]), bad=len(bad))
    if roll < 0.6:
        return Frame("text", ws_text(rng).encode(), pieces=rng.choice([1, 1, 2]) if raw else 1)
    if roll < 0.75:
        return Frame("binary", rng.randbytes(rng.choice([0, 1, rng.randint(2, 2000)])))
    if roll < 0.85:
        size = rng.choice([MAX_FRAME + 1, MAX_FRAME + 100, 2 * MAX_FRAME])
        return Frame("binary", rng.randbytes(size))
    size = rng.choice([MAX_FRAME + 1, MAX_FRAME + 3, 3 * MAX_FRAME])
    return Frame("text", ("\x00" + "é" * size)[: size // 2 + 1].encode() * 2)


def ws_expect(endpoint: str, frames: list[Frame]) -> tuple[set[int | str], list[str]]:
    """The outcome of a well-formed handshake's frames: what closes it first, or "open"."""
    texts: list[str] = []
    for frame in frames:
        too_big = len(frame.payload) > MAX_FRAME
        if frame.kind == "bad-utf8":
            return ({1007, 1009} if too_big else {1007}), texts
        if frame.kind == "binary" and endpoint in TEXT_ONLY:
            return ({1003, 1009} if too_big else {1003}), texts
        if too_big:
            return {1009}, texts
        if frame.kind == "text":
            texts.append(frame.payload.decode())
    return {"open"}, texts


def room_segment(rng: random.Random, used: set[str]) -> tuple[bytes, str]:
    """(segment as sent, verdict: valid | invalid | unrouted)."""
    roll = rng.random()
    alphabet = string.ascii_letters + string.digits + "_-"
    if roll < 0.5:
        while (sid := "".join(rng.choices(alphabet, k=rng.randint(8, 64)))) in used:
            pass
        used.add(sid)
        return sid.encode(), "valid"
    if roll < 0.9:
        junk = rng.choice(
            [
                pct(rng, rng.randbytes(rng.randint(1, 40))) + b"%00",
                b"%00",
                b"%ff",
                b"%zz",
                b"%",
                b"a%C3",
                b"%ED%A0%80",
                b"x" * 65,
                b"x" * 5000,
                pct(rng, "日本🎉\u202e".encode()),
                b"a.b",
                b"a%20b",
                b"%F0%9F%8E%89",
            ]
        )
        return junk, "invalid"
    return rng.choice([b"", b"a/b", b"a%2Fb", b"%2F", b"x/"]), "unrouted"


def ws_query(rng: random.Random, name: str | None) -> tuple[bytes, bool]:
    """(query, whether it is refused with 4400): random bytes, and maybe `name`'s value."""
    parts: list[bytes] = []
    refused = False
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        if name and rng.random() < 0.5:
            good = rng.choice(["1", "5", "10", "1000"] if name == "max_users" else ["0", "1"])
            value = rng.choice([good.encode(), *[v for v, _ in [query_value(rng, "x")]]])
            refused = (
                refused
                or value != good.encode()
                or any(p.startswith(name.encode() + b"=") for p in parts)
            )
            parts.append(name.encode() + b"=" + value)
        else:
            parts.append(
                b"x" + pct(rng, rng.randbytes(rng.randint(0, 8))) + b"=" + query_value(rng, "x")[0]
            )
    return (b"?" + b"&".join(parts) if parts else b""), refused


def generate_ws(rng: random.Random, count: int) -> list[WsCase]:
    cases = []
    used: set[str] = set()
    for i in range(count):
        endpoint = rng.choices(
            ["counter", "echo", "broadcast", "catalog", "room", "unknown"],
            weights=[12, 18, 14, 12, 30, 6],
        )[0]
        raw = rng.random() < 0.4
        frames = [ws_frame(rng, raw) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
        expect, texts = ws_expect(endpoint, frames)
        # Sent at once, a frame the protocol layer refuses may close 1007 before the app
        # closes for an earlier frame or for the handshake's parameters.
        refusable: set[int | str] = {1007} if any(f.kind == "bad-utf8" for f in frames) else set()
        expect |= refusable
        if endpoint == "room":
            segment, verdict = room_segment(rng, used)
            q, refused = ws_query(rng, "max_users")
            path = b"/web_socket/" + segment + q
            if verdict == "unrouted" or b"%2F" in segment.upper():  # a slash, once decoded
                endpoint, expect = "unknown", {"http"}
            elif verdict == "invalid" or refused:  # an invalid frame may be refused first
                expect = refusable | {4400}
        elif endpoint == "unknown":
            junk = rng.choice(
                [
                    b"/ws/echo/x",
                    b"/%00",
                    b"/ws/" + pct(rng, rng.randbytes(10)),
                    b"/counter%00",
                    b"/ws/catalog/",
                    b"/" + b"x" * 5000,
                ]
            )
            path, expect = junk + ws_query(rng, None)[0], {"http"}
        elif endpoint == "catalog":
            q, refused = ws_query(rng, "after")
            if rng.random() < 0.1:
                q, refused = (
                    rng.choice([b"?after=" + str(2**62).encode(), b"?after=99999999"]),
                    True,
                )
            path = ENDPOINTS[endpoint] + q
            expect = refusable | {4400} if refused else expect
        else:
            path = ENDPOINTS[endpoint] + ws_query(rng, None)[0]
        cases.append(WsCase(i, endpoint, path, frames, raw, frozenset(expect), texts))
    return cases


# -- WebSocket over a raw socket -----------------------------------------------------------


def ws_frame_bytes(rng: random.Random, opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One client frame, masked as RFC 6455 requires."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n < 65536:
        head = bytes([first, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, 0x80 | 127]) + n.to_bytes(8, "big")
    mask = rng.randbytes(4)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
    return head + mask + masked


def message_bytes(rng: random.Random, frame: Frame) -> bytes:
    opcode = 2 if frame.kind == "binary" else 1
    p, k = frame.payload, frame.pieces
    if k == 1:
        return ws_frame_bytes(rng, opcode, p)
    parts = [p[len(p) * i // k : len(p) * (i + 1) // k] for i in range(k)]
    if frame.kind == "bad-utf8":  # valid fragments, then the invalid bytes whole in the last
        head, bad = p[: -frame.bad], p[-frame.bad :]
        parts = [
            head[len(head) * i // (k - 1) : len(head) * (i + 1) // (k - 1)] for i in range(k - 1)
        ]
        parts.append(bad)
    return b"".join(
        ws_frame_bytes(rng, opcode if i == 0 else 0, part, fin=i == k - 1)
        for i, part in enumerate(parts)
    )


@dataclass
class WsOutcome:
    kind: str  # "http" | "close" | "open" | "dropped" | "timeout"
    code: int | None = None
    reason: str = ""
    received: list[str | bytes] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"{self.kind} {self.code or ''} {self.reason!r:.100} after {len(self.received)} frames"
        )


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    n = head[1] & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return head[0] & 0x0F, await reader.readexactly(n)


async def raw_ws(rng: random.Random, port: int, case: WsCase) -> WsOutcome:
    key = base64.b64encode(rng.randbytes(16))
    head = (
        b"GET %s HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nupgrade: websocket\r\n"
        b"connection: Upgrade\r\nsec-websocket-key: %s\r\nsec-websocket-version: 13\r\n\r\n"
        % (case.path, port, key)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received: list[str | bytes] = []
    try:
        writer.write(head)
        try:
            response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        except TimeoutError:
            return WsOutcome("timeout", reason=f"no answer to the handshake within {TIMEOUT}s")
        status = int(response.split(b" ", 2)[1])
        if status != 101:
            return WsOutcome("http", status)
        # Nothing after a frame the protocol layer refuses (1007): it closes at once, and
        # bytes it never read would turn its close into a reset that hides the close frame.
        bad = next((i for i, f in enumerate(case.frames) if f.kind == "bad-utf8"), None)
        frames = case.frames if bad is None else case.frames[: bad + 1]
        for frame in frames:
            writer.write(message_bytes(rng, frame))
        if bad is None:
            writer.write(ws_frame_bytes(rng, 9, b"fuzz-ping"))  # the pong: every frame was read
        try:
            await writer.drain()
        except ConnectionError:
            pass  # the server closed first: its close frame is still to be read
        pong = False  # with no ping sent (a refused frame), only the close ends the wait
        wanted_texts = len(case.texts) if case.endpoint in ("echo", "room") else 0
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if pong and len(received) >= wanted_texts + (case.endpoint == "room"):  # answered
                left = min(left, QUIET)
            try:
                opcode, payload = await asyncio.wait_for(read_frame(reader), max(0.0, left))
            except TimeoutError:
                if pong:
                    break
                what = "no pong" if bad is None else "no close"
                return WsOutcome("timeout", reason=f"{what} within {TIMEOUT}s", received=received)
            if opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                try:
                    writer.write(ws_frame_bytes(rng, 8, payload[:2]))
                    await writer.drain()
                except ConnectionError:
                    pass
                return WsOutcome("close", code, payload[2:].decode(errors="replace"), received)
            if opcode == 10:
                pong = True
            elif opcode == 1:
                received.append(payload.decode())
            elif opcode == 2:
                received.append(payload)
        writer.write(ws_frame_bytes(rng, 8, (1000).to_bytes(2, "big")))
        await writer.drain()
        try:
            while (await asyncio.wait_for(read_frame(reader), TIMEOUT))[0] != 8:
                pass
        except asyncio.IncompleteReadError:
            return WsOutcome(
                "dropped", reason="no close frame after the client's", received=received
            )
        return WsOutcome("open", received=received)
    except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
        return WsOutcome("dropped", reason=repr(exc), received=received)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def library_ws(port: int, case: WsCase) -> WsOutcome:
    received: list[str | bytes] = []
    try:
        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}" + case.path.decode("ascii"),
            open_timeout=TIMEOUT,
            max_size=None,
            max_queue=None,  # a replay of the catalog must not stall the pong behind it
            close_timeout=TIMEOUT,
        )
    except InvalidStatus as exc:
        return WsOutcome("http", exc.response.status_code)
    except TimeoutError:
        return WsOutcome("timeout", reason=f"no answer to the handshake within {TIMEOUT}s")
    async with ws:
        try:
            for frame in case.frames:
                await ws.send(frame.payload.decode() if frame.kind == "text" else frame.payload)
            pong = await ws.ping()
            await asyncio.wait_for(pong, TIMEOUT)
            wanted = len(case.texts) + (case.endpoint == "room")
            if case.endpoint not in ("echo", "room"):
                wanted = 0
            while len(received) < wanted:
                received.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
            try:  # nothing more should come (or a close)
                while True:
                    received.append(await asyncio.wait_for(ws.recv(), QUIET))
            except TimeoutError:
                pass
        except websockets.ConnectionClosed:
            pass
        except TimeoutError:
            return WsOutcome("timeout", reason="no answer", received=received)
    rcvd = ws.protocol.close_rcvd
    if rcvd is None:
        return WsOutcome("dropped", reason="closed without a close frame", received=received)
    if ws.protocol.close_rcvd_then_sent is False and rcvd.code == 1000:
        return WsOutcome("open", received=received)
    return WsOutcome("close", rcvd.code, rcvd.reason, received)


def check_ws(case: WsCase, outcome: WsOutcome) -> list[str]:
    problems = []
    if outcome.kind == "close" and outcome.code not in WS_CODES:
        problems.append(f"closed {outcome.code} (not a documented code) {outcome.reason!r}")
    if outcome.kind == "http":
        # 404: no WebSocket there; 414 / 431: a head the WebSocket layer cannot read (a
        # line over 8 KiB, over 128 headers), refused by src.server before the hand-over.
        too_long = outcome.code in (414, 431) and len(case.path) + 16 > 8192
        if not too_long and ("http" not in case.expect or outcome.code != 404):
            problems.append(f"handshake answered HTTP {outcome.code}")
    elif outcome.kind in ("dropped", "timeout"):
        problems.append(f"{outcome.kind}: {outcome.reason}")
    elif (outcome.code if outcome.kind == "close" else "open") not in case.expect:
        problems.append(f"expected {sorted(map(str, case.expect))}, got {outcome!r}")
    if outcome.kind != "open":
        return problems
    texts = [f for f in outcome.received if isinstance(f, str)]
    if len(texts) != len(outcome.received):
        problems.append("the server sent a binary frame")
    if case.endpoint == "echo" and texts != ["OK!"] * len(case.texts):
        problems.append(f"echo answered {texts[:3]!r:.200} to {len(case.texts)} texts")
    elif case.endpoint == "counter" and not all(t.isdigit() for t in texts):
        problems.append(f"/counter sent {texts[:3]!r:.200}")
    elif case.endpoint == "room":
        frames = [json.loads(t) for t in texts]
        relayed = [f.get("text") for f in frames if f.get("type") == "message"]
        if not frames or frames[0].get("type") != "welcome" or relayed != case.texts:
            problems.append(
                f"the room relayed {len(relayed)} of {len(case.texts)} texts: {texts[:2]!r:.200}"
            )
    return problems


# -- the run ---------------------------------------------------------------------------------


def report(kind: str, failures: list[str], limit: int = 30) -> str:
    head = f"{len(failures)} {kind} contract violations (seed {SEED}; replay: {REPLAY}):"
    more = [f"... and {len(failures) - limit} more"] if len(failures) > limit else []
    return "\n".join([head, *failures[:limit], *more])


async def get_json(port: int, path: str) -> tuple[int, Any]:
    case = HttpCase(-1, "check", "GET", path.encode(), [])
    answer = await send_http(case, port)
    return answer.status, json.loads(answer.body) if answer.body else None


def test_generated_cases_cover_every_kind() -> None:
    """The seed reaches every HTTP kind and status, and every WebSocket outcome."""
    rng = random.Random(SEED)
    http = generate_http(rng, HTTP_CASES)
    labels = Counter(c.label.split()[0] for c in http)
    wanted = [
        "valid",
        "valid-put",
        "unknown-brand",
        "duplicate-keys",
        "huge-chunked",
        "huge-declared",
        "huge-length-small-body",
        "at-limit",
        "content-type",
        "authorization",
        "put-bad-id",
        "random",
        "utf8",
        "nul",
        "surrogate",
        "deep",
        "number",
        "long",
        "types",
        "garbage",
        "missing",
        "unknown",
        "empty",
        "list",
        "brand",
        "product",
    ]
    assert all(labels[w] for w in wanted), f"seed {SEED}: {labels}"
    ws = generate_ws(rng, WS_CASES)
    outcomes = Counter(str(e) for c in ws for e in c.expect)
    assert all(outcomes[w] for w in ["open", "http", "1003", "1007", "1009", "4400"]), outcomes
    assert {c.endpoint for c in ws} == {*ENDPOINTS, "room", "unknown"}


async def test_raw_bytes_never_break_the_contract(live_server: LiveServer) -> None:
    print(f"raw fuzz seed {SEED}; replay: {REPLAY}")
    port = live_server.port
    rng = random.Random(SEED)
    http_cases = generate_http(rng, HTTP_CASES)
    ws_cases = generate_ws(rng, WS_CASES)
    before = {pid: await get_json(port, f"/products/{pid}") for pid in GUARDED}

    failures: list[str] = []
    created: list[dict[str, Any]] = []
    statuses: Counter[int] = Counter()
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one_http(case: HttpCase) -> None:
        async with sem:
            try:
                answer = await send_http(case, port)
            except Exception as exc:
                failures.append(f"{case!r}: {exc!r}")
                return
        statuses[answer.status] += 1
        failures.extend(f"{case!r}: {p}" for p in check_http(case, answer))
        if answer.status in (200, 201) and case.method in ("POST", "PUT"):
            created.append(json.loads(answer.body))

    await asyncio.gather(*(one_http(case) for case in http_cases))
    print(f"HTTP statuses: {dict(statuses)}")
    for pid, row in before.items():
        if (now := await get_json(port, f"/products/{pid}")) != row:
            failures.append(f"demo row {pid} changed: {row} -> {now}")
    for product in created:
        status, row = await get_json(port, f"/products/{product['product_id']}")
        if (status, row) != (200, product):
            failures.append(f"written product {product} reads back {status} {row}")
    assert not failures, report("HTTP", failures)

    ws_rng = random.Random(SEED + 1)
    closes: Counter[str] = Counter()

    async def one_ws(case: WsCase) -> None:
        async with sem:
            try:
                outcome = await asyncio.wait_for(
                    raw_ws(ws_rng, port, case) if case.raw else library_ws(port, case), 30
                )
            except Exception as exc:
                failures.append(f"{case!r}: crashed {exc!r}")
                return
        closes[f"{outcome.kind} {outcome.code or ''}".strip()] += 1
        failures.extend(f"{case!r}: {p}" for p in check_ws(case, outcome))

    await asyncio.gather(*(one_ws(case) for case in ws_cases))
    print(f"WebSocket outcomes: {dict(closes)}")
    assert not failures, report("WebSocket", failures)

    live_server.process.stop()
    lines = live_server.process.rest()
    bad = [ln for ln in lines if "Traceback" in ln or "Exception in ASGI application" in ln]
    assert not bad, f"seed {SEED}; replay: {REPLAY}; the server logged:\n" + "\n".join(lines[-80:])


async def test_a_handshake_with_an_overlong_request_line_is_answered(
    live_server: LiveServer,
) -> None:
    """The fuzzer's minimal case: a WebSocket handshake whose request line is over 8 KiB
    (a long query) must be answered with a 4xx (or refused), not left open without an
    answer; and stopping the server afterwards logs no traceback."""
    key = base64.b64encode(b"0123456789abcdef")
    head = (
        b"GET /ws/echo?x=%s HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\n"
        b"connection: Upgrade\r\nsec-websocket-key: %s\r\nsec-websocket-version: 13\r\n\r\n"
        % (b"x" * 8200, key)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    try:
        writer.write(head)
        try:
            answer = await asyncio.wait_for(reader.read(200), 5)
        except TimeoutError:
            answer = b"(nothing within 5 s; the connection is still open)"
    finally:
        writer.close()
    live_server.process.stop()
    lines = live_server.process.rest()
    status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b""
    assert status.startswith(b"4"), f"answered {answer!r}"
    assert not [ln for ln in lines if "Traceback" in ln], "\n".join(lines[-40:])
