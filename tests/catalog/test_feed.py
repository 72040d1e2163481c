"""The catalog feed: the outbox triggers, commit-order ids, and /ws/catalog end to end
(a real uvicorn, real `websockets` clients, changes made over HTTP and in plain SQL)."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import jsonschema_rs
import pytest
import websockets
from lihil.vendors import TestClient

from src.app import create_app
from src.catalog import queries
from src.catalog.feed import CatalogFeed
from src.config import PROJECT_ROOT
from src.db.pool import Database
from tests.helpers import AUTH, LiveServer, make_settings, start_live_server
from tests.realtime.test_live import close_of, recv_json


async def changes(conn: asyncpg.Connection, after: int) -> list[dict[str, Any]]:
    _, rows = await queries.changes_after(conn, after=after)
    return [json.loads(change.frame) for change in rows]


# --- the outbox -------------------------------------------------------------------------


async def test_every_committed_change_is_recorded_with_the_row_as_the_api_shows_it(
    sql: asyncpg.Connection,
) -> None:
    """Inserts, updates and deletes of products and brands, made in plain SQL, each leave
    one change; an update that changes nothing and a rolled-back change leave none."""
    start = await queries.feed_position(sql)
    brand_id = await sql.fetchval(
        "INSERT INTO brand (brand_name) VALUES ('Acme') RETURNING brand_id"
    )
    product_id = await sql.fetchval(
        "INSERT INTO product (product_name, brand_id) VALUES ('Anvil', $1) RETURNING product_id",
        brand_id,
    )
    await sql.execute("UPDATE product SET product_name = 'Anvil' WHERE product_id = $1", product_id)
    await sql.execute(
        "UPDATE product SET product_name = 'Big anvil' WHERE product_id = $1", product_id
    )
    async with sql.transaction():
        await sql.execute("UPDATE brand SET brand_name = 'Acme Inc' WHERE brand_id = $1", brand_id)
    with pytest.raises(RuntimeError):
        async with sql.transaction():
            await sql.execute("DELETE FROM product WHERE product_id = 1")
            raise RuntimeError("rolled back")
    await sql.execute("DELETE FROM product WHERE product_id = $1", product_id)
    await sql.execute("DELETE FROM brand WHERE brand_id = $1", brand_id)

    got = await changes(sql, start)
    assert [(c["type"], c["data"]) for c in got] == [
        ("brand.created", {"brand_id": brand_id, "brand_name": "Acme"}),
        (
            "product.created",
            {"product_id": product_id, "product_name": "Anvil", "brand_id": brand_id},
        ),
        (
            "product.updated",
            {"product_id": product_id, "product_name": "Big anvil", "brand_id": brand_id},
        ),
        ("brand.updated", {"brand_id": brand_id, "brand_name": "Acme Inc"}),
        ("product.deleted", {"product_id": product_id}),
        ("brand.deleted", {"brand_id": brand_id}),
    ]
    ids = [c["id"] for c in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert list(got[0]) == ["id", "type", "data"]  # the wire's member order


async def test_overlapping_transactions_get_ids_in_commit_order(database_url: str) -> None:
    """A sequence value is taken before commit, so plain nextval can hand the transaction
    that commits second the smaller id: a reader that saw the larger one would skip the
    smaller one forever. The second writer must wait for the first to commit before it
    takes its id."""
    first, second, watcher = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        start = await queries.feed_position(watcher)
        tx1 = first.transaction()
        await tx1.start()
        await first.execute("UPDATE product SET product_name = 'first' WHERE product_id = 1")
        # While the first is open, the second cannot take an id: it waits (here, gives up).
        await second.execute("SET lock_timeout = '100ms'")
        with pytest.raises(asyncpg.LockNotAvailableError):
            await second.execute("UPDATE product SET product_name = 'second' WHERE product_id = 2")
        assert await changes(watcher, start) == []  # nothing committed yet
        await tx1.commit()
        await second.execute("UPDATE product SET product_name = 'second' WHERE product_id = 2")
        got = await changes(watcher, start)
        assert [c["data"]["product_name"] for c in got] == ["first", "second"]
        assert got[0]["id"] < got[1]["id"]
    finally:
        for conn in (first, second, watcher):
            await conn.close()


async def test_concurrent_writers_never_let_a_reader_skip_a_change(database_url: str) -> None:
    """Eight writers commit 200 changes while a reader follows the outbox by id only: the
    reader sees every change exactly once."""
    writers = [await asyncpg.connect(database_url) for _ in range(8)]
    reader = await asyncpg.connect(database_url)
    try:
        start = await queries.feed_position(reader)
        seen: list[int] = []

        async def write(conn: asyncpg.Connection, n: int) -> None:
            for i in range(25):
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE product SET product_name = $2 WHERE product_id = $1",
                        n * 25 + i + 1,
                        f"w{n}-{i}",
                    )

        async def follow(done: "asyncio.Future[Any]") -> None:
            position = start
            while not done.done() or position < await queries.feed_position(reader):
                _, rows = await queries.changes_after(reader, after=position)
                for change in rows:
                    seen.append(change.id)
                    position = change.id

        writing = asyncio.ensure_future(
            asyncio.gather(*(write(c, n) for n, c in enumerate(writers)))
        )
        await asyncio.wait_for(follow(writing), 60)
        await writing
        assert len(seen) == 200 == len(set(seen))
        assert seen == sorted(seen)
        assert seen == [c["id"] for c in await changes(reader, start)]
    finally:
        for conn in (*writers, reader):
            await conn.close()


async def test_pruning_forgets_old_changes_and_marks_how_far(sql: asyncpg.Connection) -> None:
    """Pruned changes are gone, and the mark says which ids a reader can no longer get."""
    await sql.execute("UPDATE product SET product_name = 'x' WHERE product_id = 1")
    newest = await queries.feed_position(sql)
    assert await queries.prune_changes(sql, older_than_s=3600) == 0
    assert await queries.prune_changes(sql, older_than_s=0) > 0
    pruned_through, rows = await queries.changes_after(sql, after=0)
    assert (pruned_through, rows) == (newest, [])
    assert await queries.feed_position(sql) == newest  # still the newest id ever recorded


# --- /ws/catalog ----------------------------------------------------------------------


async def test_changes_over_http_and_in_plain_sql_reach_the_feed(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """A product created over HTTP, updated in plain SQL and deleted over HTTP: one frame
    each, in order, carrying the row as GET shows it."""
    async with websockets.connect(f"{live_server.ws}/ws/catalog") as ws:
        async with httpx.AsyncClient(base_url=live_server.http, headers=AUTH) as http:
            created = (
                await http.post("/products", json={"product_name": "Kettle", "brand_id": 3})
            ).json()
            pid = created["product_id"]
            await sql.execute(
                "UPDATE product SET product_name = 'Steel kettle' WHERE product_id = $1", pid
            )
            shown = (await http.get(f"/products/{pid}")).json()
            assert (await http.delete(f"/products/{pid}")).status_code == 204
        got = [await recv_json(ws) for _ in range(3)]
    assert [(c["type"], c["data"]) for c in got] == [
        ("product.created", created),
        ("product.updated", shown),
        ("product.deleted", {"product_id": pid}),
    ]
    assert got[0]["id"] < got[1]["id"] < got[2]["id"]
    schema = json.loads((PROJECT_ROOT / "docs" / "asyncapi.json").read_text())
    for change in got:  # what docs/asyncapi.json promises is what goes over the wire
        jsonschema_rs.validate(schema["components"]["schemas"]["Change"], change)


async def test_after_replays_then_goes_live_with_no_gap_and_no_duplicate(
    shared_server: LiveServer, shared_database_url: str
) -> None:
    """Clients connecting with `after` while writers keep committing each see exactly the
    committed ids after theirs, in order: the replay and the live feed meet without a gap
    or a duplicate. (Shared server: writes demo products 7 and 8.)"""
    writer = await asyncpg.connect(shared_database_url)
    try:
        start = await queries.feed_position(writer)
        for i in range(30):
            await writer.execute(
                "UPDATE product SET product_name = $1 WHERE product_id = 7", f"v{i}"
            )
        marks = [c["id"] for c in await changes(writer, start)]

        async def keep_writing() -> None:
            for i in range(120):
                await writer.execute(
                    "UPDATE product SET product_name = $1 WHERE product_id = 8", f"w{i}"
                )

        afters = (start, *marks[::5])
        received: dict[int, list[int]] = {after: [] for after in afters}
        progress = asyncio.Event()  # set on each frame, and when a client stops

        async def client(after: int) -> None:
            try:
                async with websockets.connect(f"{shared_server.ws}/ws/catalog?after={after}") as ws:
                    async for frame in ws:
                        received[after].append(json.loads(frame)["id"])
                        progress.set()
            finally:
                progress.set()

        clients = [asyncio.create_task(client(after)) for after in afters]
        await keep_writing()
        committed = [c["id"] for c in await changes(writer, start)]

        def done() -> bool:  # every client has the last id, or one stopped (raised below)
            reached = all(ids and ids[-1] >= committed[-1] for ids in received.values())
            return reached or any(c.done() for c in clients)

        # A client may have every frame already: wait on what arrived, not on the next frame.
        async with asyncio.timeout(30):
            while not done():
                progress.clear()
                await progress.wait()
        for c in clients:
            if c.done():
                c.result()  # a client that stopped early: its error
            c.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    finally:
        await writer.close()
    for after, ids in received.items():
        assert ids == [i for i in committed if i > after]


async def test_after_older_than_the_retained_window_closes_4410(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    for name in ("old", "older"):  # changes 1 and 2 (loading the demo recorded none)
        await sql.execute("UPDATE product SET product_name = $1 WHERE product_id = 1", name)
    await queries.prune_changes(sql, older_than_s=0)
    async with websockets.connect(f"{live_server.ws}/ws/catalog?after=1") as ws:
        code, reason = await close_of(ws)
    assert code == 4410, reason
    assert "older than the retained changes" in reason and "reload" in reason


async def test_after_0_replays_every_retained_change_even_after_pruning(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """after=0 means every retained change: pruning the older ones does not make it 4410
    (it did: "pruned through id ...")."""
    await sql.execute("UPDATE product SET product_name = 'gone' WHERE product_id = 1")
    await queries.prune_changes(sql, older_than_s=0)
    await sql.execute("UPDATE product SET product_name = 'kept' WHERE product_id = 2")
    await sql.execute("UPDATE brand SET brand_name = 'kept' WHERE brand_id = 3")
    async with websockets.connect(f"{live_server.ws}/ws/catalog?after=0") as ws:
        first, second = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
    assert (first["type"], first["data"]["product_id"]) == ("product.updated", 2)
    assert (second["type"], second["data"]["brand_id"]) == ("brand.updated", 3)
    assert second["id"] > first["id"]


async def test_after_ahead_of_every_change_closes_4400(shared_server: LiveServer) -> None:
    async with websockets.connect(f"{shared_server.ws}/ws/catalog?after=999999999") as ws:
        code, reason = await close_of(ws)
    assert code == 4400
    assert reason.startswith("after=999999999 is not a change id of this feed")


async def test_a_change_whose_notification_was_lost_arrives_by_the_fallback_poll(
    database_url: str, sql: asyncpg.Connection
) -> None:
    """A change recorded without NOTIFY (as if the notification were lost) still reaches
    clients, within the poll interval."""
    process, port = start_live_server(database_url, CATALOG_FEED_POLL_S="0.3")
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/catalog") as ws:
            await sql.execute(
                "INSERT INTO catalog_change (id, type, data) VALUES"
                " (nextval('catalog_change_id_seq'), 'product.deleted', '{\"product_id\": 5}')"
            )
            change = await recv_json(ws)
        assert (change["type"], change["data"]) == ("product.deleted", {"product_id": 5})
    finally:
        process.stop()


async def test_the_feed_catches_up_after_losing_its_connection(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """The listener's connection is killed; changes committed meanwhile still arrive, once."""
    async with websockets.connect(f"{live_server.ws}/ws/catalog") as ws:
        killed = await sql.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'catalog-feed' AND datname = current_database()"
        )
        assert killed == 1
        for i in range(3):
            await sql.execute("UPDATE product SET product_name = $1 WHERE product_id = 9", f"n{i}")
        got = [await recv_json(ws) for _ in range(3)]
    assert [c["data"]["product_name"] for c in got] == ["n0", "n1", "n2"]
    live_server.process.wait_for("catalog feed: connected again")


def test_a_change_delivered_between_accept_and_subscription_still_reaches_the_client(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made deterministic. The listener hears no NOTIFY (and polls never), so a
    change C stays unread until the handler subscribes; at that moment the patched
    `subscribe` advances the feed past C as the listener would have, to no subscriber.
    Then a change D is read as usual. A client that connected without `after` must
    receive C, then D (it received D alone: C fell in the gap at connect)."""
    feeds: list[CatalogFeed] = []
    start, subscribe = CatalogFeed.start, CatalogFeed.subscribe
    committed: list[int] = []

    async def started(self: CatalogFeed, db: Database) -> None:
        feeds.append(self)
        await start(self, db)

    def racing(self: CatalogFeed, topic: str, deliver: Callable[[str], None]) -> Callable[[], None]:
        self.position = committed[0]  # C was delivered a moment ago, to no subscriber
        return subscribe(self, topic, deliver)

    monkeypatch.setattr(CatalogFeed, "_notified", lambda self, *_: None)
    monkeypatch.setattr(CatalogFeed, "start", started)
    monkeypatch.setattr(CatalogFeed, "subscribe", racing)
    settings = make_settings(DATABASE_URL=database_url, CATALOG_FEED_POLL_S=3600)

    async def rename(name: str) -> int:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("UPDATE product SET product_name = $1 WHERE product_id = 7", name)
            return int(await conn.fetchval("SELECT max(id) FROM catalog_change"))
        finally:
            await conn.close()

    with TestClient(create_app(settings)) as client:
        assert client.portal is not None and feeds
        # The listener has read every change so far and waits (it hears no NOTIFY): no read
        # of its own is under way when the patched `subscribe` moves its position.
        client.portal.call(feeds[0].sync)
        committed.append(asyncio.run(rename("C")))
        with client.websocket_connect("/ws/catalog") as ws:
            d = asyncio.run(rename("D"))
            client.portal.call(feeds[0].sync)  # the listener reads D and delivers it
            first = ws.receive_json()
            assert (first["id"], first["data"]["product_name"]) == (committed[0], "C")
            second = ws.receive_json()
            assert (second["id"], second["data"]["product_name"]) == (d, "D")
