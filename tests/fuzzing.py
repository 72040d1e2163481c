"""What the seeded fuzzers (tests/test_http_fuzz.py, tests/realtime/test_fuzz.py) share: the
seed, the case count and the replay line; the failure report; an HTTP answer read off a raw
socket and the problem check every error answer must pass; percent-encoding and text pools;
and the server's state after a run (alive, no traceback in its log)."""

import asyncio
import json
import os
import random
import string
from collections import Counter
from dataclasses import dataclass

import httpx

from tests.helpers import LiveServer


@dataclass(frozen=True)
class Fuzz:
    """A fuzzer's seed and case count, from FUZZ_SEED (a number replays a run, `random`
    draws a new one) and FUZZ_CASES (more cases for a soak; the first ones stay the same)."""

    seed: int
    cases: int
    replay: str  # the command that runs exactly these cases again

    @classmethod
    def from_env(cls, test_file: str, seed: int, cases: int) -> "Fuzz":
        given = os.environ.get("FUZZ_SEED", str(seed))
        seed = random.SystemRandom().randrange(2**32) if given == "random" else int(given)
        count = int(os.environ.get("FUZZ_CASES") or cases)
        more = f" FUZZ_CASES={count}" if count != cases else ""
        return cls(seed, count, f"FUZZ_SEED={seed}{more} .venv/bin/python -m pytest {test_file}")

    def report(self, what: str, failures: list[str], limit: int = 40) -> str:
        head = f"{len(failures)} {what} (seed {self.seed}; replay: {self.replay}):"
        more = [f"... and {len(failures) - limit} more"] if len(failures) > limit else []
        return "\n".join([head, *failures[:limit], *more])


# -- HTTP answers ----------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One response, read to the end of its body (by its length, or its chunks); a 1xx
    (a WebSocket's 101) has none."""
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


def problem_errors(answer: Answer) -> list[str]:
    """What an error answer breaks of RFC 9457 as API.md asks: problem+json, `type` and
    `title` strings, `status` equal to the HTTP status."""
    problems = []
    ctype = answer.headers.get("content-type", "")
    if not ctype.startswith("application/problem+json"):
        problems.append(f"error {answer.status} with content-type {ctype!r}")
    try:
        doc = json.loads(answer.body)
    except ValueError:
        return [*problems, f"error body is no JSON: {answer.body[:200]!r}"]
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("type", "title")):
        problems.append(f"problem without type or title: {doc!r:.300}")
    elif doc.get("status") != answer.status:
        problems.append(f"problem status {doc.get('status')} on HTTP {answer.status}")
    return problems


# -- generators both use ---------------------------------------------------------------------

UNRESERVED = string.ascii_letters + string.digits + "-._~"  # never needs percent-encoding

# Characters of texts: ASCII, Latin, CJK, emoji (one with a modifier), and invisible or odd
# code points (zero width, bidi override, BOM, line separator, the last code point, controls).
TEXT_POOLS = [
    string.ascii_letters + string.digits + string.punctuation + " ",
    "éèàçüß€£ñ",
    "日本語中文한국어",
    "🎉🚀👍🏽💥",
    "\u200b\u202e\ufeff\u2028\U0010ffff\x01\x1f\x7f\t",
]


def random_text(rng: random.Random, length: int, pools: list[str] = TEXT_POOLS) -> str:
    """`length` characters drawn from some of the pools (a repeated chunk past 512)."""
    pool = "".join(rng.sample(pools, rng.randint(1, len(pools))))
    chunk = "".join(rng.choices(pool, k=min(length, 512)))
    return (chunk * (length // max(1, len(chunk)) + 1))[:length]


def pct(rng: random.Random, data: bytes, rate: float = 0.1, lower: float = 0.0) -> bytes:
    """Percent-encode every byte that is not unreserved, and a `rate` of those that are; a
    `lower` share of the escapes in lower-case hex (the same bytes, decoded)."""
    unreserved = UNRESERVED.encode()
    return b"".join(
        bytes([c])
        if c in unreserved and rng.random() > rate
        else (b"%%%02x" if lower and rng.random() < lower else b"%%%02X") % c
        for c in data
    )


# -- after a run -----------------------------------------------------------------------------

CHAINED = ("During handling", "The above exception", "Traceback")


def tracebacks(lines: list[str]) -> Counter[str]:
    """The exception line ending each traceback in a log."""
    found: Counter[str] = Counter()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            ends = (ln for ln in lines[i + 1 :] if ln[:1].strip() and ":" in ln)
            found[next((ln for ln in ends if not ln.startswith(CHAINED)), "?")] += 1
    return found


async def server_problems(server: LiveServer) -> list[str]:
    """The server is alive and answers /health; then it is stopped, and its whole log (the
    stop included) holds no traceback."""
    if server.process.proc.poll() is not None:
        return [f"the server exited with {server.process.proc.returncode}"]
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        try:
            status = (await http.get("/health")).status_code
        except httpx.HTTPError as exc:
            status, problems = 0, [f"GET /health failed: {exc!r}"]
        else:
            problems = [] if status == 200 else [f"/health answered {status}"]
    await asyncio.to_thread(server.process.stop)
    lines = await asyncio.to_thread(server.process.rest)
    problems += [f"the server logged {n} traceback(s) ending {end!r}"
                 for end, n in tracebacks(lines).items()]  # fmt: skip
    return problems
