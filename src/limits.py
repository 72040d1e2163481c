"""Rate limits and client addresses. Pure: no I/O, time passed in (API.md "Limits").

One token bucket per key: it holds up to `burst` tokens and gains `rate` a second; each
event takes one. Used for catalog writes per client address (WRITE_RATE_PER_MIN) and for
frames per WebSocket (WS_MAX_MESSAGES_PER_S, bursts of 2 s worth).
"""

import math
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

Network = IPv4Network | IPv6Network


class Bucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, now

    def take(self, now: float) -> float:
        """Take a token: 0 if there was one, else the seconds until there will be."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.burst


class Buckets:
    """A bucket per key (a client address). Keys whose bucket has refilled are forgotten
    once there are many, so memory follows the active clients, not every client ever."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: dict[str, Bucket] = {}

    def take(self, key: str, now: float) -> int:
        """0 if allowed, else whole seconds to wait (for Retry-After)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets = {k: b for k, b in self._buckets.items() if not b.full(now)}
            bucket = self._buckets[key] = Bucket(self.rate, self.burst, now)
        wait = bucket.take(now)
        return math.ceil(wait) if wait else 0

    def __len__(self) -> int:
        return len(self._buckets)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Iterable[Network]
) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the last
    X-Forwarded-For entry that no trusted proxy added (entries left of it could be
    anything the client wrote)."""
    trusted = tuple(trusted)
    address = peer or "unknown"
    if not trusted or not _trusted(address, trusted):
        return address
    hops = [h.strip() for header in forwarded_for for h in header.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else address


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
