"""Lookups by key that arrive together share one query (the DataLoader pattern).

Under load, many requests for single rows are parsed in the same event-loop iteration. Each
would take a pooled connection and make its own round trip; instead, `Batcher.load` parks
each lookup on a future, and the first one of an iteration schedules one flush for the next
(`call_soon`): one query (`= any($1)`) for every key asked meanwhile, whose result settles
every future. Alone, a lookup waits one loop iteration more than it would have; in a crowd
it shares the round trip, the pool's turn and asyncpg's per-query work with the others.

Each lookup still sees the database as of a moment after it arrived (the flush runs after
it), so a read that follows a write's response sees that write. An error in the query
(an outage: `DatabaseUnavailable`) is raised to every lookup of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Batcher(Generic[K, V]):
    """`load(key)` answers `fetch_many(keys)[key]` (None when absent), one fetch for all the
    keys asked in one loop iteration, at most `max_batch` keys a fetch."""

    def __init__(
        self, fetch_many: Callable[[list[K]], Awaitable[dict[K, V]]], max_batch: int = 500
    ) -> None:
        self.fetch_many = fetch_many
        self.max_batch = max_batch
        self._pending: dict[K, asyncio.Future[V | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self, key: K) -> V | None:
        future = self._pending.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            if not self._pending:
                loop.call_soon(self._flush)
            future = self._pending[key] = loop.create_future()
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        keys = list(pending)
        for start in range(0, len(keys), self.max_batch):
            batch = {k: pending[k] for k in keys[start : start + self.max_batch]}
            task = asyncio.get_running_loop().create_task(self._fetch(batch))
            self._tasks.add(task)  # kept until done (the loop holds tasks weakly)
            task.add_done_callback(self._tasks.discard)

    async def _fetch(self, batch: dict[K, asyncio.Future[V | None]]) -> None:
        try:
            found = await self.fetch_many(list(batch))
        except BaseException as exc:
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for key, future in batch.items():
            if not future.done():  # a lookup cancelled meanwhile (its client left)
                future.set_result(found.get(key))
