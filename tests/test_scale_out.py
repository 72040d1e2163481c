"""Several uvicorn processes sharing one PostgreSQL and one Redis act as one service
(docs/API.md, "Several workers and hosts"): real processes, real `websockets` clients."""

import asyncio
import json
import signal
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from src.broker.embedded_redis import EmbeddedRedis
from src.catalog import queries
from tests.catalog.test_feed import changes
from tests.helpers import AUTH, LiveServer, bound_port, launch_live_server, live_servers
from tests.realtime.test_live import close_of, recv, recv_json, wait_for_count
from tests.redisd import redis_server

TTL = 1.0  # PRESENCE_TTL_S: how long a killed process may go on counting


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    with redis_server() as server:
        yield server


@pytest.fixture
def servers(database_url: str, own_redis: EmbeddedRedis) -> Iterator[list[LiveServer]]:
    """Two processes with BROKER=redis, started at once; stopped by pid afterwards."""
    env = {"BROKER": "redis", "REDIS_URL": own_redis.url, "PRESENCE_TTL_S": str(TTL)}
    with live_servers(database_url, 2, **env) as started:
        yield started


async def counter_clients(servers: list[LiveServer], each: int) -> list[ClientConnection]:
    """`each` /counter clients on every server, connected at once."""
    urls = [f"{s.ws}/counter" for s in servers for _ in range(each)]
    return list(await asyncio.gather(*(websockets.connect(url) for url in urls)))


async def test_counter_counts_clients_of_every_process(servers: list[LiveServer]) -> None:
    """Clients spread over two processes all end on the same exact count, and see it drop
    when clients of one process leave."""
    clients = await counter_clients(servers, each=5)
    try:
        await asyncio.gather(*(wait_for_count(ws, "10") for ws in clients))
        for ws in clients[:3]:  # all on the first process
            await ws.close()
        await asyncio.gather(*(wait_for_count(ws, "7") for ws in clients[3:]))
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


async def test_product_viewers_are_counted_across_processes_per_product(
    servers: list[LiveServer],
) -> None:
    """Viewers of one product on both processes see one global count; another product's
    viewers are counted apart."""
    one = [f"{s.ws}/ws/products/5/viewers" for s in servers for _ in range(2)]
    clients = list(await asyncio.gather(*(websockets.connect(url) for url in one)))
    try:
        await asyncio.gather(*(wait_for_count(ws, "4") for ws in clients))
        async with websockets.connect(f"{servers[1].ws}/ws/products/6/viewers") as other:
            await wait_for_count(other, "1")
        await clients[0].close()
        await asyncio.gather(*(wait_for_count(ws, "3") for ws in clients[1:]))
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


async def test_broadcast_reaches_every_process_in_each_senders_order(
    servers: list[LiveServer],
) -> None:
    """Two senders per process, 20 frames each: every client gets all 80, each sender's in
    its order."""
    urls = [f"{s.ws}/ws/broadcast" for s in servers for _ in range(2)]
    clients = list(await asyncio.gather(*(websockets.connect(url) for url in urls)))
    try:
        await clients[0].send("ready?")  # every client is subscribed once this comes back
        for ws in clients:
            assert await recv(ws) == "ready?"

        async def send(index: int, ws: ClientConnection) -> None:
            for k in range(20):
                await ws.send(f"{index}:{k}")

        async def receive(ws: ClientConnection) -> list[str]:
            return [await recv(ws) for _ in range(20 * len(clients))]

        receivers = [asyncio.create_task(receive(ws)) for ws in clients]
        await asyncio.gather(*(send(i, ws) for i, ws in enumerate(clients)))
        for frames in await asyncio.gather(*receivers):
            for index in range(len(clients)):
                mine = [f for f in frames if f.startswith(f"{index}:")]
                assert mine == [f"{index}:{k}" for k in range(20)]
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


async def test_room_capacity_holds_across_processes_under_a_storm(
    servers: list[LiveServer],
) -> None:
    """60 simultaneous joins to one room of 5, spread over both processes: exactly 5 are
    welcomed, the other 55 close 4429."""
    urls = [f"{servers[i % 2].ws}/web_socket/storm?max_users=5" for i in range(60)]
    clients = list(await asyncio.gather(*(websockets.connect(url) for url in urls)))
    try:

        async def outcome(ws: ClientConnection) -> str | int:
            try:
                return str((await recv_json(ws))["type"])
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None
                return closed.rcvd.code

        outcomes = await asyncio.gather(*(outcome(ws) for ws in clients))
        assert outcomes.count("welcome") == 5 and outcomes.count(4429) == 55, outcomes
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


async def test_a_killed_process_stops_counting_within_the_lease(
    servers: list[LiveServer],
) -> None:
    """kill -9 one process: the other's clients see the count drop by the dead one's
    clients within PRESENCE_TTL_S."""
    survivor_clients = await counter_clients(servers[:1], each=2)
    doomed_clients = await counter_clients(servers[1:], each=3)
    try:
        await asyncio.gather(*(wait_for_count(ws, "5") for ws in survivor_clients))
        servers[1].process.stop(signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.gather(*(wait_for_count(ws, "2") for ws in survivor_clients))
        assert time.monotonic() - killed < TTL + 0.5  # the lease, plus scheduling slack
    finally:
        for ws in doomed_clients:
            ws.transport.abort()
        await asyncio.gather(*(ws.close() for ws in survivor_clients))


async def test_a_room_join_while_redis_is_down_closes_1013_then_recovers(
    servers: list[LiveServer], own_redis: EmbeddedRedis
) -> None:
    """Redis killed: /counter still serves, a room join closes 1013 with a reason; Redis
    back on the same port: rooms admit again, by themselves."""
    own_redis.stop(signal.SIGKILL)
    async with websockets.connect(f"{servers[0].ws}/web_socket/r1") as ws:
        assert await close_of(ws) == (1013, "the broker is unavailable; try again later")
    async with websockets.connect(f"{servers[0].ws}/counter") as ws:
        assert await recv(ws) == "1"  # this process's own clients only
        own_redis.start()
        async with websockets.connect(f"{servers[1].ws}/counter") as other:
            # Once both are back, both count both clients.
            await wait_for_count(other, "2")
            await wait_for_count(ws, "2")
    async with websockets.connect(f"{servers[0].ws}/web_socket/r1") as ws:
        assert json.loads(await recv(ws))["type"] == "welcome"


async def test_catalog_changes_reach_feed_clients_of_every_process(
    servers: list[LiveServer], sql: asyncpg.Connection
) -> None:
    """A product created over HTTP on one process and a row updated in plain SQL reach
    /ws/catalog clients of both processes, in the same order with the same ids."""
    feeds = [await websockets.connect(f"{s.ws}/ws/catalog") for s in servers]
    try:
        async with httpx.AsyncClient(base_url=servers[0].http, headers=AUTH) as http:
            created = await http.post("/products", json={"product_name": "Both", "brand_id": 2})
            assert created.status_code == 201
        pid = created.json()["product_id"]
        await sql.execute(
            "UPDATE product SET product_name = 'Both, renamed' WHERE product_id = $1", pid
        )
        seen = [[json.loads(await recv(ws)) for _ in range(2)] for ws in feeds]
        assert seen[0] == seen[1]
        assert [(c["type"], c["data"]["product_name"]) for c in seen[0]] == [
            ("product.created", "Both"),
            ("product.updated", "Both, renamed"),
        ]
    finally:
        for ws in feeds:
            await ws.close()


async def test_a_feed_client_resumes_across_a_process_restart_without_loss_or_repeat(
    database_url: str, sql: asyncpg.Connection, own_redis: EmbeddedRedis
) -> None:
    """A client follows process A, which is stopped; changes keep being committed; the
    client reconnects to a new process B with `after=` its last id and gets exactly the
    changes it has not seen, then the live ones."""
    first = launch_live_server(database_url, BROKER="redis", REDIS_URL=own_redis.url)
    server = LiveServer(first, bound_port(first))
    try:
        start = await queries.feed_position(sql)
        async with websockets.connect(f"{server.ws}/ws/catalog") as ws:
            for i in range(3):
                await sql.execute(
                    "UPDATE product SET product_name = $1 WHERE product_id = 11", f"a{i}"
                )
            got = [json.loads(await recv(ws)) for _ in range(3)]
            first.stop(signal.SIGTERM)  # the client is told 1001
            assert (await close_of(ws))[0] == 1001
        for i in range(4):  # committed while no process serves the client
            await sql.execute("UPDATE product SET product_name = $1 WHERE product_id = 11", f"b{i}")
        second = launch_live_server(database_url, BROKER="redis", REDIS_URL=own_redis.url)
        try:
            server = LiveServer(second, bound_port(second))
            last = got[-1]["id"]
            async with websockets.connect(f"{server.ws}/ws/catalog?after={last}") as ws:
                got += [json.loads(await recv(ws)) for _ in range(4)]
                await sql.execute("UPDATE product SET product_name = 'live' WHERE product_id = 11")
                got.append(json.loads(await recv(ws)))
        finally:
            second.stop(signal.SIGTERM)
        committed = [c["id"] for c in await changes(sql, start)]
        assert [c["id"] for c in got] == committed  # nothing missed, nothing twice
        names = [c["data"]["product_name"] for c in got]
        assert names == ["a0", "a1", "a2", "b0", "b1", "b2", "b3", "live"]
    finally:
        first.stop(signal.SIGKILL)


async def test_a_write_read_back_on_another_process_with_its_position(
    servers: list[LiveServer],
) -> None:
    """Reads at memory speed across workers: process B has product 6 and the brand list in
    its cache; a write on process A answers Catalog-Position, and a read on B sending it is
    answered with the write in, each time (B waits for its own feed, or reads the
    database)."""
    a, b = (httpx.AsyncClient(base_url=s.http, headers=AUTH) for s in servers)
    async with a, b:
        for round_ in range(20):
            await b.get("/products/6")  # cached on B
            await b.get("/brands")
            name = f"written on A, round {round_}"
            written = await a.put("/products/6", json={"product_name": name, "brand_id": 2})
            position = written.headers["catalog-position"]
            read = await b.get("/products/6", headers={"Catalog-Position": position})
            assert read.json()["product_name"] == name
            assert int(read.headers["catalog-position"]) >= int(position)
            renamed = await a.put("/brands/5", json={"brand_name": name})
            brands = await b.get(
                "/brands", headers={"Catalog-Position": renamed.headers["catalog-position"]}
            )
            assert {"brand_id": 5, "brand_name": name} in brands.json()
