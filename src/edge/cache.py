"""A response cache kept coherent by a commit log (sans I/O: no socket, no clock).

Entries are whole answers (body and headers) under a canonical request key, each with the
tags of what it depends on and the log position its database snapshot saw. The log (the
catalog feed) reports every committed change, in order, with the tags it touches:
`invalidate` drops the entries that name one of them. Positions, not timing, keep a racing
reader from putting old data back ("Scaling Memcache at Facebook", NSDI 2013, leases):

- A fill whose snapshot is older than changes already applied here is refused when one of
  those changes touched its tags (or when the history no longer reaches back that far).
- A snapshot newer than what the log has applied here means the database is ahead of this
  process: until the log catches up, other entries may be older than that answer, so
  lookups miss (monotonic reads: an answer is never followed by an older one).
- While the log is disconnected nothing is served or filled.

The cache knows no resource: keys and tags are strings its users choose.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

HISTORY = 8192  # applied changes remembered for checking fills (a fill older than that: refused)


@dataclass(frozen=True, slots=True)
class Entry:
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]  # as sent, ETag and Catalog-Position included
    etag: bytes
    position: int  # the log position the answer reflects
    tags: frozenset[str]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    bypasses: int = 0  # lookups not served because the log is behind or disconnected
    refused: int = 0  # fills refused as possibly stale
    invalidations: int = 0  # entries dropped by changes
    evictions: int = 0  # entries dropped for room


@dataclass
class ResponseCache:
    max_entries: int
    connected: bool = False  # whether the log is following the database now
    applied: int = 0  # the newest log position whose changes have been applied here
    ahead: int = 0  # the newest position an answer here reflected (may exceed `applied`)
    stats: CacheStats = field(default_factory=CacheStats)
    _entries: OrderedDict[str, Entry] = field(default_factory=OrderedDict)
    _by_tag: dict[str, set[str]] = field(default_factory=dict)
    _history: deque[tuple[int, frozenset[str]]] = field(
        default_factory=lambda: deque(maxlen=HISTORY)
    )

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def serving(self) -> bool:
        """Whether lookups may answer: the log is connected and not behind any answer."""
        return self.connected and self.applied >= self.ahead

    def lookup(self, key: str) -> Entry | None:
        """The entry to answer with, or None (a miss, or a bypass: counted)."""
        entry = self.peek(key)
        if entry is None:
            if self.serving:
                self.stats.misses += 1
            else:
                self.stats.bypasses += 1
        return entry

    def peek(self, key: str) -> Entry | None:
        """`lookup` counting hits only: for a first try whose miss is looked up again."""
        if not self.serving:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry

    def answered(self, position: int) -> None:
        """An answer (cached or not) reflected `position`: never serve older data after it."""
        self.ahead = max(self.ahead, position)

    def fill(self, key: str, entry: Entry) -> bool:
        """Store `entry` unless it may be stale: True if stored."""
        self.answered(entry.position)
        if not self.connected or self._changed_since(entry.position, entry.tags):
            self.stats.refused += 1
            return False
        self._drop(key)
        self._entries[key] = entry
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        while len(self._entries) > self.max_entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.stats.evictions += 1
        return True

    def _changed_since(self, position: int, tags: frozenset[str]) -> bool:
        """Whether a change applied here after `position` touched one of `tags` (True too
        when the history no longer reaches back to `position`)."""
        if position >= self.applied:
            return False
        if not self._history or self._history[0][0] > position + 1:
            return True  # changes after `position` were forgotten: cannot tell
        for change_id, touched in reversed(self._history):
            if change_id <= position:
                return False
            if not touched.isdisjoint(tags):
                return True
        return False

    def invalidate(self, change_id: int, tags: Iterable[str]) -> None:
        """Apply one change of the log, in order: drop the entries that depend on it."""
        touched = frozenset(tags)
        for tag in touched:
            for key in tuple(self._by_tag.get(tag, ())):
                self._drop(key)
                self.stats.invalidations += 1
        self._history.append((change_id, touched))
        self._advance(change_id)

    def connect(self, position: int) -> None:
        """The log follows the database again, every change through `position` applied."""
        self.connected = True
        self._advance(position)

    def _advance(self, position: int) -> None:
        self.applied = max(self.applied, position)

    def has(self, position: int) -> bool:
        """Whether every change through `position` is applied here, the log following."""
        return self.connected and self.applied >= position

    def bypassed(self) -> None:
        """A read went to the database because the log had not applied what it asked for."""
        self.stats.bypasses += 1

    def disconnect(self) -> None:
        """The log lost the database: serve and store nothing until it is back and caught
        up (entries stay: the changes missed meanwhile are applied on catching up)."""
        self.connected = False

    def forget(self, position: int) -> None:
        """Changes through `position` happened unseen: drop every entry, and refuse every
        fill older than `position` (the history no longer reaches back to it)."""
        self._entries.clear()
        self._by_tag.clear()
        self._history.clear()
        self._advance(position)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]


class CacheCollector(Collector):
    """The response cache's counters, read at scrape time."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        stats = self.cache.stats
        requests = CounterMetricFamily(
            "catalog_cache_requests",
            "Cacheable reads by outcome: hit (answered from memory), miss (read from the "
            "database and kept), bypass (read from the database: the feed is behind or down).",
            labels=["result"],
        )
        requests.add_metric(["hit"], stats.hits)
        requests.add_metric(["miss"], stats.misses)
        requests.add_metric(["bypass"], stats.bypasses)
        yield requests
        yield GaugeMetricFamily(
            "catalog_cache_entries", "Answers kept in memory.", value=len(self.cache)
        )
        yield CounterMetricFamily(
            "catalog_cache_invalidations",
            "Answers dropped because a change in the feed touched them.",
            value=stats.invalidations,
        )
        yield CounterMetricFamily(
            "catalog_cache_refused_fills",
            "Answers not kept because a change newer than their snapshot touched them.",
            value=stats.refused,
        )
