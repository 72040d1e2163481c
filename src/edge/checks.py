"""The rules the edge applies to a request, as plain functions of its parts (no I/O).

- One reading of integers: canonical decimal (`0`, or 1-9 then digits), nothing else.
- A query parameter given once.
- A body declared as JSON.
- Allowed hosts (Django's ALLOWED_HOSTS) and allowed origins (CORS and WebSocket Origin).
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qsl, urlsplit

from src.config import Settings

# Query strings are read as latin-1 text (what uvicorn hands over is bytes); percent-escapes
# decoded as UTF-8 by parse_qsl.


def canonical_int(text: str) -> int | None:
    """The integer `text` writes in canonical decimal, or None: no sign, no leading zero,
    no fraction, exponent, space, separator or non-ASCII digit. (Python's int() accepts
    all of those; msgspec's lax conversion accepts `1e2` and `1.0`.)"""
    if not text or len(text) > 20 or not (text.isascii() and text.isdigit()):
        return None
    if text[0] == "0" and len(text) > 1:
        return None
    return int(text)


INTEGER_MESSAGE = "expected an integer in canonical decimal (0, or 1-9 then digits)"


def query_pairs(query_string: bytes) -> list[tuple[str, str]]:
    if not query_string:
        return []
    return parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)


def repeated(pairs: list[tuple[str, str]]) -> list[str]:
    """Parameters given more than once (before, the last one silently won)."""
    if len(pairs) < 2:
        return []
    counts = Counter(name for name, _ in pairs)
    return sorted(name for name, count in counts.items() if count > 1)


def repeated_parameters(query_string: bytes) -> list[str]:
    return repeated(query_pairs(query_string))


def is_json(content_type: bytes | None) -> bool:
    """application/json or application/*+json, any case, parameters allowed."""
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def host_name(authority: str) -> str | None:
    """The host of a Host header or URL authority, lower case, without port or brackets;
    None when it is not a host at all."""
    try:
        parts = urlsplit("//" + authority)
        hostname = parts.hostname
        parts.port  # noqa: B018  (a bad port raises ValueError)
    except ValueError:
        return None
    if not hostname or "@" in authority:
        return None
    return hostname


class Hosts:
    """Which Host values are served (ALLOWED_HOSTS) and which origins may use the API
    from a browser (ALLOWED_ORIGINS, plus the allowed hosts on any port)."""

    def __init__(self, settings: Settings) -> None:
        self.hosts = settings.allowed_hosts
        self.any_host = "*" in self.hosts
        self.origins = frozenset(o.rstrip("/") for o in settings.allowed_origins)
        self._hosts_seen: dict[bytes, bool] = {}  # a request's Host is one of a few values
        self._origins_seen: dict[bytes, bool] = {}

    def host_allowed(self, host: bytes) -> bool:
        if self.any_host:
            return True
        known = self._hosts_seen.get(host)
        if known is None:
            name = host_name(host.decode("latin-1"))
            known = name is not None and name in self.hosts
            if len(self._hosts_seen) < 1000:
                self._hosts_seen[host] = known
        return known

    def origin_allowed(self, origin: bytes) -> bool:
        """An origin in ALLOWED_ORIGINS, or http(s) on an allowed host, any port. Never
        "whatever the request's Host says": that would let DNS rebinding through."""
        known = self._origins_seen.get(origin)
        if known is None:
            known = self._origin_allowed(origin.decode("latin-1"))
            if len(self._origins_seen) < 1000:
                self._origins_seen[origin] = known
        return known

    def _origin_allowed(self, origin: str) -> bool:
        if origin.rstrip("/") in self.origins:
            return True
        try:
            parts = urlsplit(origin)
            hostname = parts.hostname
        except ValueError:  # e.g. "http://[::1": not a URL at all
            return False
        if parts.scheme not in ("http", "https") or not hostname:
            return False
        return hostname in self.hosts
