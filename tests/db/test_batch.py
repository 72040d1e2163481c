"""Batched lookups (src/db/batch.py): one fetch per loop iteration, every lookup answered."""

import asyncio

import pytest

from src.db.batch import Batcher
from src.errors import DatabaseUnavailable


class Table:
    """A fetch_many over a dict, recording the batches it was asked."""

    def __init__(self, rows: dict[int, str], fail: BaseException | None = None) -> None:
        self.rows, self.fail = rows, fail
        self.batches: list[list[int]] = []

    async def fetch_many(self, keys: list[int]) -> dict[int, str]:
        self.batches.append(keys)
        await asyncio.sleep(0)  # a round trip: other lookups may arrive meanwhile
        if self.fail:
            raise self.fail
        return {k: self.rows[k] for k in keys if k in self.rows}


async def test_lookups_of_one_iteration_share_one_fetch() -> None:
    table = Table({1: "a", 2: "b"})
    batcher = Batcher(table.fetch_many)
    got = await asyncio.gather(*(batcher.load(k) for k in (1, 2, 1, 3)))
    assert got == ["a", "b", "a", None]  # a missing key is None; a repeated one shared
    assert table.batches == [[1, 2, 3]]


async def test_a_later_lookup_makes_a_new_batch() -> None:
    table = Table({1: "a"})
    batcher = Batcher(table.fetch_many)
    assert await batcher.load(1) == "a"
    assert await batcher.load(1) == "a"
    assert table.batches == [[1], [1]]


async def test_large_batches_are_split() -> None:
    table = Table({k: str(k) for k in range(10)})
    batcher = Batcher(table.fetch_many, max_batch=4)
    got = await asyncio.gather(*(batcher.load(k) for k in range(10)))
    assert got == [str(k) for k in range(10)]
    assert [len(b) for b in table.batches] == [4, 4, 2]


async def test_an_outage_reaches_every_lookup_of_the_batch() -> None:
    batcher = Batcher(Table({}, DatabaseUnavailable("down")).fetch_many)
    results = await asyncio.gather(batcher.load(1), batcher.load(2), return_exceptions=True)
    assert [type(r) for r in results] == [DatabaseUnavailable, DatabaseUnavailable]


async def test_a_cancelled_lookup_leaves_the_others_answered() -> None:
    table = Table({1: "a", 2: "b"})
    batcher = Batcher(table.fetch_many)
    gone = asyncio.ensure_future(batcher.load(1))
    kept = asyncio.ensure_future(batcher.load(2))
    await asyncio.sleep(0)  # both parked
    gone.cancel()
    assert await kept == "b"
    with pytest.raises(asyncio.CancelledError):
        await gone
