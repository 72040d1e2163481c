"""A seeded raw-bytes HTTP fuzzer against a real server (src/server.py, then src/edge/):
the bytes a schema-driven fuzzer never sends (random bytes, invalid UTF-8, NUL, lone
surrogates, deep nesting, huge numbers, huge or lying bodies, odd headers and content types,
bad tokens, percent-encoded junk in paths and queries), written on raw sockets.

Every case is drawn from one seed (FUZZ_SEED=<n> replays a run, FUZZ_SEED=random draws a
new one, FUZZ_CASES=<n> changes its length) and its answer is checked against docs/API.md:
never a 5xx, every error a problem+json whose `status` is the HTTP status, 201 only for a
valid body. Afterwards the demo rows are unchanged, every product written reads back, and
the server's log holds no traceback. (The WebSocket fuzzer is tests/realtime/test_fuzz.py.)
"""

import asyncio
import base64
import json
import random
import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest

from tests.fuzzing import (
    TEXT_POOLS,
    Answer,
    Fuzz,
    pct,
    problem_errors,
    read_answer,
    server_problems,
)
from tests.helpers import AUTH, LiveServer, start_live_server

FUZZ = Fuzz.from_env("tests/test_http_fuzz.py", seed=20261126, cases=400)
MAX_BODY = 1024 * 1024  # MAX_BODY_BYTES: a larger body is 413
BRANDS = 100  # the demo catalog: brands 1..100, products 1..1000
PRODUCTS = 1000
MAX_ID = 2**31 - 1
TIMEOUT = 10.0
CONCURRENCY = 8
# Demo rows that only ever receive invalid writes: they must be unchanged afterwards.
GUARDED = [1, 2, 5, 17, 42, 100, 500, 999, 1000]
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


def valid_name(rng: random.Random) -> str:
    pool = "".join(rng.sample(TEXT_POOLS, rng.randint(1, len(TEXT_POOLS))))
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


# fmt: off
HUGE_NUMBERS = ["1" + "0" * 5000, "9" * 5000, "-" + "9" * 5000, "1e999", "-1e999", "1e-999",
                "-0", "-0.0", "0", "NaN", "Infinity", "-Infinity", "nan", "1.5", "7.5",
                str(2**31), str(2**63), str(2**64), "-1", "1" + "0" * 400 + ".5", "0x10", "1_0",
                "01", "+1", ".5", "1.", "1e", "--1"]
# fmt: on
INTEGRAL_FLOATS = ["7.0", "1e1", "1E2", "5.000", "2.0e0"]  # JSON Schema integers: valid
WRONG_TYPES = [None, True, False, [], {}, "1", "x", [1], {"a": 1}]


def invalid_body(rng: random.Random) -> tuple[str, bytes]:
    """(label, body) of a JSON body that is not a valid product (422)."""
    name = valid_name(rng)
    kind = rng.choice(
        "random utf8 nul surrogate deep number long types garbage missing unknown empty top".split()
    )
    if kind == "random":
        return kind, rng.randbytes(rng.randint(1, 300))
    if kind == "utf8":
        # fmt: off
        bad = rng.choice([b"\xff", b"\xfe\xff", b"\xc3", b"\xe9", b"\x80", b"\xf8\x88\x80\x80",
                          b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])
        # fmt: on
        # fmt: off
        at = rng.choice([b'{"product_name": "a' + bad + b'", "brand_id": 1}',
                         b'{"product_' + bad + b'name": "a", "brand_id": 1}',
                         b'{"product_name": "a", "brand_id": 1, "x": "' + bad + b'"}'])
        # fmt: on
        return kind, at
    if kind == "nul":
        raw = rng.choice(['"a\\u0000b"', '"\\u0000"', '"x\\u0000"'])
        # fmt: off
        body = rng.choice([b'{"product_name": ' + raw.encode() + b', "brand_id": 1}',
                           b'{"product_name": "a\x00b", "brand_id": 1}',
                           b'{"product_name": "ab", "brand_id": 1}\x00',
                           b'\x00{"product_name": "ab", "brand_id": 1}'])
        # fmt: on
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
        if rng.random() < 0.5:  # a name that is no string ("1" and "x" are names: in a list)
            wrong: object = rng.choice(WRONG_TYPES)
            wrong = [wrong] if isinstance(wrong, str) else wrong
            return kind, b'{"product_name": ' + dumps(rng, wrong) + b', "brand_id": 1}'
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
                target = f"/products/{missing}".encode()
                return HttpCase(i, "put-missing", method, target, headers, body, frozenset({404}))
            pid = put_ids.pop()
            written = [{**written[0], "product_id": pid}]
            label, target, expect = "valid-put", f"/products/{pid}".encode(), frozenset({200})
        else:
            label, expect = "valid", frozenset({201})
        return HttpCase(i, label, method, target, headers, body, expect, written=written)
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
        expect = frozenset({ok, 422})
        return HttpCase(i, "duplicate-keys", method, target, headers, body, expect, written=written)
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
        # fmt: off
        ctype = rng.choice([b"text/plain", b"application/x-www-form-urlencoded", b"json",
                            b"multipart/form-data; boundary=x", b"application/jsonx",
                            b"application/xml", b"*/*", b"application", b"",
                            bytes(rng.choices(range(0x21, 0x7F), k=rng.randint(1, 40))), None])
        # fmt: on
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
        # fmt: off
        value = rng.choice([b"", b"Bearer", b"Bearer ", b"Basic dXNlcjpwYXNz",
                            b"Bearer " + header_bytes(rng, rng.randint(1, 300)),
                            header_bytes(rng, rng.randint(1, 300)), BEARER[:-3], BEARER + b"x",
                            b"Bearer " + base64.b64encode(rng.randbytes(rng.randint(10, 200))),
                            b"Bearer a.b.c", b"bearer " + BEARER[7:] + b" extra"])
        # fmt: on
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
        target, expect = b"/products/" + segment, frozenset({404, 405, 422})
        return HttpCase(i, "put-bad-id " + label, "PUT", target, headers, body, expect)
    label, body = invalid_body(rng)
    if method == "PUT":
        target = f"/products/{rng.choice(GUARDED)}".encode()
    return HttpCase(i, label, method, target, headers, body, frozenset({422}))


def header_bytes(rng: random.Random, n: int) -> bytes:
    """Bytes an HTTP header value may hold (visible ASCII, obs-text, space, tab): random
    otherwise, so the app sees them (the parser's own 400 is not the app's)."""
    alphabet = [*range(0x21, 0x7F), *range(0x80, 0x100), 0x20, 0x09]
    return bytes(rng.choices(alphabet, k=n)).strip(b" \t") or b"x"


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
        # fmt: off
        value = rng.choice(["0", "-1", str(2**31), str(2**63), "9" * 5000, "abc", "", "NaN",
                            "null", "%00", "%ff", "%zz", "%", "%2", "1%00", "%FF%FE", "%ed%a0%80",
                            "%c3%28", "%2F", "..", "%2e%2e", "1;x", "1,2"])
        # fmt: on
        return quote(value, safe="%").encode(), bad
    if roll < 0.6:  # very long
        long = [b"1" * rng.randint(20, 8000), b"x" * rng.randint(100, 8000)]
        return rng.choice([*long, b"%00" * rng.randint(10, 2000)]), bad
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
    # fmt: off
    choices = [b"%00", b"%zz", b"%", b"%f", b"1%00", b"%ff", b"-1", b"0" if low else b"-5",
               b"101" if name == "limit" else str(high + 1).encode(), b"9" * 5000, b"1e3",
               b"1.5", b"abc", b"", b"%20", b"+1" if rng.random() < 0.5 else b"NaN",
               b"x" * rng.randint(1000, 20_000), b"%ED%A0%80", b"%C3", b"1%2C2"]
    # fmt: on
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
    # More rows for longer runs (FUZZ_CASES), taken after these: the first cases stay the same.
    put_ids[:0] = [pid for pid in range(101, PRODUCTS - 200) if pid not in GUARDED]
    return [
        http_write_case(rng, i, put_ids) if rng.random() < 0.6 else http_read_case(rng, i)
        for i in range(count)
    ]


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
        problems += problem_errors(answer)
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


# -- the run ---------------------------------------------------------------------------------


@pytest.fixture
def live_server(database_url: str) -> Iterator[LiveServer]:
    """The live server, as conftest's, allowing every write of a longer run in its minute."""
    rate = str(max(600, FUZZ.cases))  # WRITE_RATE_PER_MIN: 600, the default, suffices for 400
    process, port = start_live_server(database_url, WRITE_RATE_PER_MIN=rate)
    try:
        yield LiveServer(process, port)
    finally:
        process.stop(signal.SIGTERM)


async def get_json(port: int, path: str) -> tuple[int, Any]:
    case = HttpCase(-1, "check", "GET", path.encode(), [])
    answer = await send_http(case, port)
    return answer.status, json.loads(answer.body) if answer.body else None


def test_http_fuzz_cases_cover_every_kind() -> None:
    """The seed reaches every kind of request the generator knows."""
    labels = Counter(
        c.label.split()[0] for c in generate_http(random.Random(FUZZ.seed), FUZZ.cases)
    )
    # fmt: off
    wanted = ["valid", "valid-put", "unknown-brand", "duplicate-keys", "huge-chunked",
              "huge-declared", "huge-length-small-body", "at-limit", "content-type",
              "authorization", "put-bad-id", "random", "utf8", "nul", "surrogate", "deep",
              "number", "long", "types", "garbage", "missing", "unknown", "empty", "list",
              "brand", "product"]
    # fmt: on
    assert all(labels[w] for w in wanted), f"seed {FUZZ.seed}: {labels}"


async def test_http_fuzz_raw_bytes_never_break_the_contract(live_server: LiveServer) -> None:
    """Seeded raw requests are answered as documented; the catalog holds exactly what the
    valid writes wrote; the server's log holds no traceback."""
    print(f"HTTP fuzz seed {FUZZ.seed}, {FUZZ.cases} cases; replay: {FUZZ.replay}")
    port = live_server.port
    cases = generate_http(random.Random(FUZZ.seed), FUZZ.cases)
    before = {pid: await get_json(port, f"/products/{pid}") for pid in GUARDED}

    failures: list[str] = []
    created: list[dict[str, Any]] = []
    statuses: Counter[int] = Counter()
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(case: HttpCase) -> None:
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

    await asyncio.gather(*(one(case) for case in cases))
    print(f"HTTP statuses: {dict(statuses)}")
    for pid, row in before.items():
        if (now := await get_json(port, f"/products/{pid}")) != row:
            failures.append(f"demo row {pid} changed: {row} -> {now}")
    for product in created:
        status, row = await get_json(port, f"/products/{product['product_id']}")
        if (status, row) != (200, product):
            failures.append(f"written product {product} reads back {status} {row}")
    failures += await server_problems(live_server)
    assert not failures, FUZZ.report("HTTP contract violations", failures)
