"""The catalog feed: the outbox triggers, commit-order ids, and /ws/catalog end to end
(a real uvicorn, real `websockets` clients, changes made over HTTP and in plain SQL)."""

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import jsonschema_rs
import pytest
import websockets
from lihil.vendors import TestClient

from src.app import create_app
from src.catalog import queries
from src.catalog.feed import TOPIC, CatalogFeed, Filter, brand_topic, product_topic
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


async def test_changes_pruned_before_the_feed_read_them_close_live_clients_4410(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """A change pruned before this server's feed read it (here in the transaction that made
    it; in life, a server cut off from the database for longer than the retention) is lost
    to its live clients: they are closed 4410, to reload, not left to miss it silently."""
    async with websockets.connect(f"{live_server.ws}/ws/catalog?after=0") as ws:
        await sql.execute("UPDATE product SET product_name = 'seen' WHERE product_id = 2")
        assert (await recv_json(ws))["type"] == "product.updated"  # subscribed: live now
        async with sql.transaction():
            await sql.execute("UPDATE product SET product_name = 'lost' WHERE product_id = 1")
            await queries.prune_changes(sql, older_than_s=-1)  # committed_at < now() + 1 s
        code, reason = await close_of(ws)
    assert code == 4410, reason
    assert "pruned before this server read them" in reason and "reload" in reason


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


# --- SKUs and filtered feeds -------------------------------------------------------------

CHANGE_SCHEMA = json.loads((PROJECT_ROOT / "docs" / "asyncapi.json").read_text())["components"][
    "schemas"
]["Change"]


async def write(conn: asyncpg.Connection, sql: str, *args: Any) -> tuple[Any, int]:
    """Run one catalog write that records one change: the value it returns (a new row's
    id, say) and the id of its change."""
    async with conn.transaction():
        value = await conn.fetchval(sql, *args)
        change_id = await conn.fetchval("SELECT currval('catalog_change_id_seq')")
    return value, int(change_id)


# The rows the filtered-feed tests make: a product of a brand, a SKU of a product.
NEW_PRODUCT = "INSERT INTO product (product_name, brand_id) VALUES ($1, $2) RETURNING product_id"
NEW_SKU = (
    "INSERT INTO sku (product_id, product_size_id, product_color_id, price, currency, stock)"
    " VALUES ($1, 1, 1, 1999, 'EUR', 5) RETURNING sku_id"
)


class FeedClient:
    """A /ws/catalog client reading in the background: every frame it got, in order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()  # set on each frame, and when the socket closes

    async def __aenter__(self) -> "FeedClient":
        self._ws = await websockets.connect(self.url)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._ws.close()

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                self.frames.append(json.loads(frame))
                self._arrived.set()
        finally:
            self._arrived.set()

    @property
    def ids(self) -> list[int]:
        return [frame["id"] for frame in self.frames]

    async def reach(self, change_id: int) -> list[int]:
        """Wait until a frame with an id of at least `change_id` came; every id received."""
        async with asyncio.timeout(30):
            while not (self.frames and self.frames[-1]["id"] >= change_id):
                if self._reader.done():
                    closed = (self._ws.close_code, self._ws.close_reason)
                    raise AssertionError(f"{self.url} closed {closed} after {self.ids}")
                self._arrived.clear()
                await self._arrived.wait()
        return self.ids


async def test_sku_changes_reach_the_feed_as_the_api_shows_the_sku(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """A SKU created, repriced, restocked and deleted in plain SQL: one frame each, with
    the SKU's size and colour by name, its price, currency and stock; a delete carries its
    key and product. Deleting a product takes its SKUs with it under `product.deleted`
    alone. Every frame is what docs/asyncapi.json describes."""
    size = await sql.fetchval(
        "SELECT product_size_name FROM product_size WHERE product_size_id = 2"
    )
    color = await sql.fetchval(
        "SELECT product_color_name FROM product_color WHERE product_color_id = 2"
    )
    async with websockets.connect(f"{live_server.ws}/ws/catalog") as ws:
        sku_id, _ = await write(
            sql,
            "INSERT INTO sku (product_id, product_size_id, product_color_id, price, currency,"
            " stock) VALUES (11, 2, 2, 1999, 'EUR', 5) RETURNING sku_id",
        )
        await sql.execute("UPDATE sku SET price = 2499 WHERE sku_id = $1", sku_id)
        await sql.execute("UPDATE sku SET stock = stock - 5 WHERE sku_id = $1", sku_id)
        await sql.execute("DELETE FROM sku WHERE sku_id = $1", sku_id)
        skus = await sql.fetchval("SELECT count(*) FROM sku WHERE product_id = 12")
        assert skus > 0
        await sql.execute("DELETE FROM product WHERE product_id = 12")
        got = [await recv_json(ws) for _ in range(5)]

    def sku(price: int, stock: int) -> dict[str, Any]:
        return {
            "sku_id": sku_id,
            "product_id": 11,
            "size": size,
            "color": color,
            "price": price,
            "currency": "EUR",
            "stock": stock,
        }

    assert [(c["type"], c["data"]) for c in got] == [
        ("sku.created", sku(1999, 5)),
        ("sku.updated", sku(2499, 5)),
        ("sku.updated", sku(2499, 0)),
        ("sku.deleted", {"sku_id": sku_id, "product_id": 11}),
        ("product.deleted", {"product_id": 12}),
    ]
    assert [list(c["data"]) for c in got[:3]] == [list(sku(0, 0))] * 3  # the wire's order
    for change in got:
        jsonschema_rs.validate(CHANGE_SCHEMA, change)
    with pytest.raises(jsonschema_rs.ValidationError):  # the schema tells the types apart
        jsonschema_rs.validate(CHANGE_SCHEMA, {**got[0], "type": "sku.deleted"})


async def test_a_sku_moved_in_plain_sql_leaves_its_old_product_and_arrives_at_the_new(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """The API cannot move a SKU; plain SQL can. The move is `sku.deleted` under the old
    product, then `sku.created` under the new one, so a listener of either product sees
    its side (it was one `sku.updated` under the new product only: the old product's
    listeners never saw the SKU leave)."""
    old, new = 21, 22
    sku_id = await sql.fetchval("SELECT min(sku_id) FROM sku WHERE product_id = $1", old)
    base = live_server.ws + "/ws/catalog?product_id="
    async with FeedClient(f"{base}{old}") as left, FeedClient(f"{base}{new}") as arrived:
        _, change_id = await write(
            sql, "UPDATE sku SET product_id = $2 WHERE sku_id = $1 RETURNING 0", sku_id, new
        )
        await left.reach(change_id - 1)
        await arrived.reach(change_id)
    assert [(c["id"], c["type"], c["data"]) for c in left.frames] == [
        (change_id - 1, "sku.deleted", {"sku_id": sku_id, "product_id": old})
    ]
    ((arrival_id, kind, data),) = [(c["id"], c["type"], c["data"]) for c in arrived.frames]
    assert (arrival_id, kind, data["sku_id"], data["product_id"]) == (
        change_id,
        "sku.created",
        sku_id,
        new,
    )
    for change in (*left.frames, *arrived.frames):
        jsonschema_rs.validate(CHANGE_SCHEMA, change)


async def test_filtered_feeds_deliver_exactly_their_brand_s_or_product_s_changes(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """Brands A and B, A's products P and P2, B's product Q, a SKU of P, and changes to other
    brands' products in between. Listeners to A, to B and to P (and to everything), some
    replaying from before the first change and some live only, get exactly the changes
    that are theirs, in order: P's move from A to B reaches A's listeners too (its data
    shows brand B), P's SKU changes after the move go to B's. Clients replaying the whole
    story later, or from the move on, get the same ids."""
    start = await queries.feed_position(sql)
    expected: dict[str, list[int]] = {"all": [], "A": [], "B": [], "P": []}

    async def change(sql_text: str, *args: Any, to: str = "") -> Any:
        value, change_id = await write(sql, sql_text, *args)
        for listener in ("all", *to.split()):
            expected[listener].append(change_id)
        return value

    # Before anyone listens: replayed with after=start.
    a = await change("INSERT INTO brand (brand_name) VALUES ('Alpha') RETURNING brand_id", to="A")
    b = await change("INSERT INTO brand (brand_name) VALUES ('Beta') RETURNING brand_id", to="B")
    p = await change(NEW_PRODUCT, "Pan", a, to="A P")
    q = await change(NEW_PRODUCT, "Pot", b, to="B")
    await change("UPDATE product SET product_name = 'Other' WHERE product_id = 1")
    s = await change(NEW_SKU, p, to="A P")
    await change(NEW_PRODUCT, "Pan 2", a, to="A")
    setup = {name: ids[-1] for name, ids in expected.items()}

    feed = f"{live_server.ws}/ws/catalog"
    urls = {
        ("all", "replay"): f"{feed}?after={start}",
        ("A", "replay"): f"{feed}?after={start}&brand_id={a}",
        ("B", "replay"): f"{feed}?brand_id={b}&after={start}",
        ("P", "replay"): f"{feed}?product_id={p}&after={start}",
        ("A", "live"): f"{feed}?brand_id={a}",
        ("P", "live"): f"{feed}?product_id={p}",
    }
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            key: await stack.enter_async_context(FeedClient(url)) for key, url in urls.items()
        }
        for (name, mode), client in clients.items():
            if mode == "replay":
                await client.reach(setup[name])
        # Live: every listener is subscribed by now.
        await change("UPDATE product SET product_name = 'Pot 2' WHERE product_id = $1", q, to="B")
        await change("UPDATE sku SET price = 2499 WHERE sku_id = $1", s, to="A P")
        await change("UPDATE product SET product_name = 'Other 2' WHERE product_id = 2")
        await change("UPDATE product SET brand_id = $2 WHERE product_id = $1", p, b, to="A B P")
        move = expected["P"][-1]
        await change("UPDATE sku SET stock = 4 WHERE sku_id = $1", s, to="B P")
        await change("UPDATE brand SET brand_name = 'Alpha 2' WHERE brand_id = $1", a, to="A")
        await change(NEW_SKU, q, to="B")
        await change("UPDATE brand SET brand_name = 'Other' WHERE brand_id = 3")
        await change("DELETE FROM sku WHERE sku_id = $1", s, to="B P")
        await change("DELETE FROM product WHERE product_id = $1", q, to="B")  # and its SKU
        # The last change is every listener's: P moves back to A.
        await change("UPDATE product SET brand_id = $2 WHERE product_id = $1", p, a, to="A B P")
        last = expected["all"][-1]
        for (name, mode), client in clients.items():
            got = await client.reach(last)
            if mode == "replay":
                assert got == expected[name], (name, mode)
            else:  # live only: all that came after the connect, and maybe some before
                live = [i for i in expected[name] if i > setup["all"]]
                assert got == expected[name][len(expected[name]) - len(got) :], (name, mode)
                assert len(got) >= len(live), (name, mode)
        shown = next(f for f in clients["A", "replay"].frames if f["id"] == move)
        assert shown["type"] == "product.updated"
        assert (shown["data"]["product_id"], shown["data"]["brand_id"]) == (p, b)  # gone to B
        for client in clients.values():
            for frame in client.frames:
                jsonschema_rs.validate(CHANGE_SCHEMA, frame)

    # The same stories told by the replay alone, from the start or from the move on.
    for query, ids in [
        (f"brand_id={a}&after={start}", expected["A"]),
        (f"brand_id={b}&after={start}", expected["B"]),
        (f"product_id={p}&after={start}", expected["P"]),
        (f"brand_id={a}&after={move}", [i for i in expected["A"] if i > move]),
        (f"product_id={p}&after={move - 1}", [i for i in expected["P"] if i >= move]),
    ]:
        async with FeedClient(f"{feed}?{query}") as client:
            assert await client.reach(ids[-1]) == ids, query


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("brand_id=1&product_id=2", "brand_id and product_id cannot be combined; give one of them"),
        ("product_id=0&brand_id=0", "brand_id and product_id cannot be combined; give one of them"),
        ("brand_id=0", "brand_id must be an integer from 1 to 2147483647"),
        ("brand_id=2147483648", "brand_id must be an integer from 1 to 2147483647"),
        ("brand_id=01", "brand_id must be an integer from 1 to 2147483647"),
        ("brand_id=-3", "brand_id must be an integer from 1 to 2147483647"),
        ("brand_id=", "brand_id must be an integer from 1 to 2147483647"),
        ("product_id=1e3", "product_id must be an integer from 1 to 2147483647"),
        (
            "product_id=%EF%BC%91",
            "product_id must be an integer from 1 to 2147483647",
        ),  # full-width 1
        ("after=0&product_id=x", "product_id must be an integer from 1 to 2147483647"),
        ("brand_id=1&brand_id=1", "brand_id given more than once; give it once"),
        ("product_id=5&after=0&product_id=5", "product_id given more than once; give it once"),
    ],
)
async def test_bad_or_combined_filters_close_4400_with_a_reason(
    shared_server: LiveServer, query: str, reason: str
) -> None:
    async with websockets.connect(f"{shared_server.ws}/ws/catalog?{query}") as ws:
        assert await close_of(ws) == (4400, reason)


def test_the_feed_hands_each_change_to_its_own_topics_only() -> None:
    """A change reaches the whole feed's subscribers, its product's, and each of its
    brands' (once each), and no other topic's; an unsubscribed topic is forgotten."""
    feed = CatalogFeed(make_settings())
    got: dict[str, list[str]] = {}
    topics = [TOPIC, product_topic(7), product_topic(8), brand_topic(3), brand_topic(4)]
    unsubscribe = {t: feed.subscribe(t, got.setdefault(t, []).append) for t in topics}
    feed._dispatch(queries.Change(1, "moved", 7, [3, 4], "product.updated", 7))
    feed._dispatch(queries.Change(2, "brand 4", None, [4, 4], "brand.updated", 4))
    feed._dispatch(queries.Change(3, "elsewhere", 9, [5], "product.updated", 9))
    assert got == {
        TOPIC: ["moved", "brand 4", "elsewhere"],
        product_topic(7): ["moved"],
        product_topic(8): [],
        brand_topic(3): ["moved"],
        brand_topic(4): ["moved", "brand 4"],
    }
    for topic in topics:
        unsubscribe[topic]()
    assert feed._subscribers == {}
    assert Filter(brand_id=4).topic == brand_topic(4) and Filter().topic == TOPIC
    with pytest.raises(ValueError):
        Filter(brand_id=4, product_id=7)


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_a_filtered_replay_reads_only_the_matching_rows_of_its_window(
    sql: asyncpg.Connection, plan_cache_mode: str
) -> None:
    """With 3,000 changes retained, a page of ?product_id= or ?brand_id= walks its index
    (product_id, id) or (brand_id, id) over the asked window: every row it reads from
    catalog_change is one it returns. Also with the generic plan PostgreSQL settles on for
    a prepared statement after five runs (0002's GIN index let that plan walk the primary
    key over the window instead, testing each row's brands)."""
    start = await queries.feed_position(sql)
    await sql.execute("UPDATE sku SET stock = stock + 1 WHERE sku_id <= 3000")
    await sql.execute("ANALYZE catalog_change, catalog_change_brand")
    through = await queries.feed_position(sql)
    after = start + 1000
    row = await sql.fetchrow(
        "SELECT p.product_id, p.brand_id FROM sku s JOIN product p USING (product_id)"
        " WHERE s.sku_id = 2000"
    )
    assert row is not None
    product, brand = row
    await sql.execute("SET enable_seqscan = off")
    await sql.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    for kind, key, index in [
        ("product", product, "catalog_change_product_id_idx"),
        ("brand", brand, "catalog_change_brand_pkey"),
    ]:
        _, page = await queries.changes_after(
            sql, after=after, through=through, **{f"{kind}_id": key}
        )
        ids = [change.id for change in page]
        assert 0 < len(ids) < queries.CHANGE_PAGE
        assert all(after < i <= through for i in ids)
        tag = "product_id" if kind == "product" else "brand_ids"
        assert ids == [
            r["id"]
            for r in await sql.fetch(
                "SELECT id, product_id, brand_ids FROM catalog_change WHERE id > $1 AND id <= $2"
                " ORDER BY id",
                after,
                through,
            )
            if (r[tag] == key if kind == "product" else key in r[tag])
        ]
        await sql.execute(f"PREPARE page_{kind} AS {queries.CHANGES_AFTER[kind]}")
        page_of = f"page_{kind}({after}, {through}, {queries.CHANGE_PAGE}, {key})"  # integers
        explained = await sql.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {page_of}")
        nodes = list(plan_nodes(json.loads(explained)[0]["Plan"]))
        walks = [n for n in nodes if n.get("Index Name") == index]
        assert len(walks) == 1 and walks[0]["Actual Rows"] == len(ids), nodes
        for node in nodes:
            if node.get("Relation Name", "").startswith("catalog_change"):
                assert node["Node Type"] != "Seq Scan", node
            assert node.get("Rows Removed by Filter", 0) == 0, node
            assert node.get("Rows Removed by Index Recheck", 0) == 0, node


async def test_filtered_after_replays_then_goes_live_with_no_gap_and_no_duplicate(
    live_server: LiveServer, sql: asyncpg.Connection, database_url: str
) -> None:
    """The seam, filtered: clients of brand A's feed and of product P's connect with `after`
    while three writers keep committing changes to A's products P and P2, to P's SKU, to
    brand B's product and to other brands'. Each client sees exactly the committed ids
    after its own that are its filter's, in order."""
    a = await sql.fetchval("INSERT INTO brand (brand_name) VALUES ('Alpha') RETURNING brand_id")
    b = await sql.fetchval("INSERT INTO brand (brand_name) VALUES ('Beta') RETURNING brand_id")
    p, p2 = [await sql.fetchval(NEW_PRODUCT, name, a) for name in ("Pan", "Pan 2")]
    q = await sql.fetchval(NEW_PRODUCT, "Pot", b)
    s = await sql.fetchval(NEW_SKU, p)
    start = await queries.feed_position(sql)
    expected: dict[str, list[int]] = {"A": [], "P": []}
    # Each writer's round: (SQL with $1 a value never written before, the listeners it is for).
    rounds: list[list[tuple[str, str]]] = [
        [
            (f"UPDATE product SET product_name = 'p' || $1::int WHERE product_id = {p}", "A P"),
            (f"UPDATE product SET product_name = 'q' || $1::int WHERE product_id = {q}", ""),
        ],
        [
            (f"UPDATE sku SET stock = $1 WHERE sku_id = {s}", "A P"),
            ("UPDATE product SET product_name = 'o' || $1::int WHERE product_id = 20", ""),
        ],
        [
            (f"UPDATE product SET product_name = 'p2' || $1::int WHERE product_id = {p2}", "A"),
            ("UPDATE brand SET brand_name = 'b' || $1::int WHERE brand_id = 5", ""),
        ],
    ]

    values = itertools.count(1)  # every write changes its row, so each records a change

    async def writer(conn: asyncpg.Connection, changes: list[tuple[str, str]], n: int) -> None:
        for _ in range(n):
            for sql_text, to in changes:
                _, change_id = await write(conn, sql_text, next(values))
                for name in to.split():
                    expected[name].append(change_id)

    writers = [await asyncpg.connect(database_url) for _ in rounds]
    try:
        await asyncio.gather(*(writer(w, r, 5) for w, r in zip(writers, rounds, strict=True)))
        marks = {name: ids[::4] for name, ids in expected.items()}
        feed = f"{live_server.ws}/ws/catalog"
        filters = {"A": f"brand_id={a}", "P": f"product_id={p}"}
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                (
                    name,
                    after,
                    await stack.enter_async_context(FeedClient(f"{feed}?{f}&after={after}")),
                )
                for name, f in filters.items()
                for after in (start, *marks[name])
            ]
            await asyncio.gather(*(writer(w, r, 40) for w, r in zip(writers, rounds, strict=True)))
            _, last = await write(
                sql, f"UPDATE product SET product_name = 'last' WHERE product_id = {p}"
            )
            expected["A"].append(last)
            expected["P"].append(last)
            for name, after, client in clients:
                got = await client.reach(last)
                assert got == [i for i in sorted(expected[name]) if i > after], (name, after)
    finally:
        for conn in writers:
            await conn.close()
