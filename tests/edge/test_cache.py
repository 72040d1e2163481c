"""The response cache's rules, without I/O: positions decide, never timing."""

from src.edge.cache import HISTORY, Entry, ResponseCache


def entry(position: int, *tags: str, body: bytes = b"{}") -> Entry:
    return Entry(body, (), b'"t"', position, frozenset(tags))


def connected(at: int = 10, max_entries: int = 100) -> ResponseCache:
    cache = ResponseCache(max_entries)
    cache.connect(at)
    return cache


def test_a_fill_is_served_until_a_change_names_one_of_its_tags() -> None:
    cache = connected()
    assert cache.fill("/products/1", entry(10, "product:1"))
    assert cache.lookup("/products/1") == entry(10, "product:1")
    cache.invalidate(11, ["product:2"])
    assert cache.lookup("/products/1") is not None
    cache.invalidate(12, ["product:1", "pages"])
    assert cache.lookup("/products/1") is None
    assert (cache.stats.hits, cache.stats.misses, cache.stats.invalidations) == (2, 1, 1)


def test_the_stale_fill_race_is_refused_by_position() -> None:
    """A read's snapshot saw position 10; change 11 to its row is applied before the read
    stores its answer: storing it would serve the old row after the change."""
    cache = connected(10)
    cache.invalidate(11, ["product:1"])  # delivered between the read and its fill
    assert cache.fill("/products/1", entry(10, "product:1")) is False
    assert cache.lookup("/products/1") is None
    assert cache.stats.refused == 1
    # A change to something else in between does not make the answer stale.
    cache.invalidate(12, ["product:2"])
    assert cache.fill("/products/1", entry(11, "product:1")) is True


def test_a_fill_older_than_the_history_is_refused() -> None:
    cache = connected(0)
    for change in range(1, HISTORY + 3):
        cache.invalidate(change, [f"product:{change}"])
    assert cache.fill("/brands", entry(1, "brands")) is False  # changes 2.. forgotten
    assert cache.fill("/brands", entry(HISTORY + 2, "brands")) is True


def test_a_fill_older_than_the_connection_is_refused() -> None:
    """Changes before the log connected were never seen here: an older snapshot may miss
    one of them."""
    cache = connected(10)
    assert cache.fill("/brands", entry(9, "brands")) is False
    assert cache.fill("/brands", entry(10, "brands")) is True


def test_an_answer_ahead_of_the_log_stops_hits_until_the_log_catches_up() -> None:
    """Monotonic reads: once an answer reflected change 12, an entry from before it could
    be older, so nothing is served until change 12 is applied here."""
    cache = connected(10)
    cache.fill("/products/1", entry(10, "product:1"))
    cache.answered(12)  # e.g. a read of /products/2 whose snapshot saw changes 11 and 12
    assert cache.lookup("/products/1") is None
    assert cache.stats.bypasses == 1
    cache.invalidate(11, ["product:1"])
    cache.invalidate(12, ["product:2"])
    assert cache.lookup("/products/1") is None  # dropped by change 11
    assert cache.fill("/products/1", entry(12, "product:1"))
    assert cache.lookup("/products/1") is not None


def test_a_fill_ahead_of_the_log_is_kept_and_holds_the_others_back() -> None:
    cache = connected(10)
    cache.fill("/products/2", entry(10, "product:2"))
    assert cache.fill("/products/1", entry(11, "product:1"))
    assert cache.lookup("/products/2") is None  # held back: change 11 not applied here yet
    cache.invalidate(11, ["product:1"])  # conservatively drops the entry that reflected it
    assert cache.lookup("/products/2") is not None


def test_nothing_is_served_or_stored_while_the_log_is_disconnected() -> None:
    cache = connected(10)
    cache.fill("/brands", entry(10, "brands"))
    cache.disconnect()
    assert cache.lookup("/brands") is None
    assert cache.fill("/brands/1", entry(10, "brand:1")) is False
    cache.invalidate(11, ["brand:3"])  # caught up on reconnecting
    cache.connect(11)
    assert cache.lookup("/brands") is not None


def test_bounded_least_recently_used_out() -> None:
    cache = connected(max_entries=2)
    cache.fill("a", entry(10, "x"))
    cache.fill("b", entry(10, "x"))
    cache.lookup("a")  # b is now the least recently used
    cache.fill("c", entry(10, "y"))
    assert len(cache) == 2
    assert cache.lookup("b") is None and cache.lookup("a") is not None
    assert cache.stats.evictions == 1
    cache.invalidate(11, ["x"])  # the evicted entry left no tag behind
    assert len(cache) == 1 and cache.lookup("c") is not None


def test_refilling_a_key_replaces_its_tags() -> None:
    cache = connected()
    cache.fill("/products?brand_id=1", entry(10, "pages:brand:1"))
    cache.fill("/products?brand_id=1", entry(10, "pages:brand:2"))
    cache.invalidate(11, ["pages:brand:1"])
    assert cache.lookup("/products?brand_id=1") is not None


def test_has_a_position_once_applied_and_while_connected() -> None:
    cache = connected(10)
    assert cache.has(10) and not cache.has(11)
    cache.invalidate(11, ["brands"])
    assert cache.has(11)
    cache.disconnect()
    assert not cache.has(11)  # the log is away: nothing is known to be applied
    cache.bypassed()
    assert cache.stats.bypasses == 1
