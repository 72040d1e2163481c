"""The Redis broker: every worker and host sharing one Redis acts as one service.

Topics. One pattern subscription per process (PSUBSCRIBE `<prefix>t:*`) on a dedicated
connection, made before the broker reports itself available: a local subscriber never
misses a frame published after it subscribed (a SUBSCRIBE per topic would race its first
frames). A reader task relays each frame to the topic's local callbacks (synchronous, they
never block). A publish is one PUBLISH, and a sender awaits each in turn, so its frames
reach every process in its order.

Presence. This process holds the truth about its own members (group -> member ids); Redis
holds, per group, each process's ("node's") count in a HASH, each node's lease expiry in a
ZSET (on Redis's clock, so hosts' clocks do not matter) and the group's capacity. Every
change is one Lua script (join.lua or sync.lua, beside this module) that sweeps the nodes
whose lease expired, writes this node's *absolute* count and renews its lease, and
publishes the group's new total inside the script when it changed, so announcements of a
group are ordered like the changes. The script publishes two numbers; the relay makes the
frame of them with `presence_frame`, the one encoder of presence frames. JOIN admits only
below the capacity, atomically across processes. A process runs its scripts for one group
one at a time (a lock per group), so the count it writes is exact; writing absolute counts
(not increments) means every script also heals what an outage or a lost Redis left wrong.
A heartbeat runs SYNC for every group every third of the lease, or sooner when another
node's lease is about to run out: leases stay fresh, and a node that died stops counting
within its lease. A group's keys expire after two leases untouched.

Redis unreachable (`available` False). Publishes reach this process's subscribers only;
joins to groups without a capacity (/counter) are admitted locally and local counts are
announced locally; a join that needs a capacity raises BrokerUnavailable, since it could
not be enforced globally. A task reconnects with backoff; once back, it re-subscribes and
SYNCs every group (announcing each), so counts are exact again. One log line when the
outage starts, one when it ends.
"""

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from src.broker.base import Broker, Deliver
from src.broker.memory import LocalTopics
from src.broker.presence import Admission, Departure, presence_frame, presence_topic
from src.errors import BrokerUnavailable

log = logging.getLogger("catalog.broker")

# What redis-py raises when Redis cannot be reached or the connection to it was lost. The
# background tasks also treat any other refusal (RedisError: out of memory, ...) as an
# outage: they must keep trying, and the log line says what it was.
REDIS_DOWN: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)
COMMAND_TIMEOUT = 2.0  # seconds to connect or to answer; longer counts as down
RETRY_FIRST, RETRY_MAX = 0.05, 2.0  # reconnect backoff, seconds
BEAT_MIN = 0.01  # never run heartbeats closer together than this (seconds)

# The Lua scripts, beside this file: join.lua and sync.lua start with prelude.lua.
SCRIPTS = {"join": ("prelude", "join"), "sync": ("prelude", "sync"), "count": ("count",)}


@cache
def lua_scripts() -> Mapping[str, str]:
    """Each script's Lua source, read from the files beside this module on the first call
    (a broker's start), then kept."""

    def read(name: str) -> str:
        return Path(__file__).with_name(f"{name}.lua").read_text()

    return {script: "".join(map(read, parts)) for script, parts in SCRIPTS.items()}


class Link(enum.Enum):
    """The broker's connection to Redis, one state at a time."""

    CONNECTING = "connecting"  # started, not connected yet
    UP = "up"  # subscribed: topics and presence span every process
    DOWN = "down"  # lost: serving local clients, reconnecting in the background
    STOPPED = "stopped"


@dataclass
class _Group:
    """This node's side of one group."""

    members: set[str] = field(default_factory=set)
    capacity: int | None = None  # the group's, as last learned
    written: int = 0  # the count Redis was last told (a stale one is healed by SYNC)
    busy: int = 0  # operations waiting for or holding the lock
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _capacity(raw: str) -> int | None:
    return int(raw) if raw else None


def _announced(data: str) -> str:
    """The frame for a script's announcement: "<users> <capacity or ''>"."""
    users, _, capacity = data.partition(" ")
    return presence_frame(int(users), _capacity(capacity))


def _arg(capacity: int | None) -> str:
    return "" if capacity is None else str(capacity)


class RedisBroker(Broker):
    def __init__(self, url: str, *, ttl_s: float, node_id: str, prefix: str = "catalog:") -> None:
        self.url = url
        self.node_id = node_id
        self.lease_ms = round(ttl_s * 1000)
        self.beat_s = ttl_s / 3
        self.prefix = prefix
        self.state = Link.CONNECTING
        self._channels = f"{prefix}t:"
        self._topics = LocalTopics()
        self._groups: dict[str, _Group] = {}
        self._redis: redis.Redis | None = None
        self._scripts: dict[str, Callable[..., Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._reader: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()
        self._down_since = 0.0
        self._attempts = 0  # failed connection attempts since the link was last up

    @property
    def available(self) -> bool:
        return self.state is Link.UP

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, or serve degraded and keep trying: an unreachable Redis at start-up is
        an outage like any other, not a reason to refuse to serve."""
        self._redis = redis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # we reconnect ourselves, and say so once
        )
        for name, script in lua_scripts().items():
            self._scripts[name] = self._redis.register_script(script)
        self._tasks = [
            asyncio.create_task(self._keep_connected(), name="redis-broker-link"),
            asyncio.create_task(self._heartbeat(), name="redis-broker-heartbeat"),
        ]
        await self._first_attempt.wait()

    async def stop(self) -> None:
        """Withdraw this node's counts (the others drop at once rather than after the
        lease), then close."""
        if self.state is Link.UP:
            try:
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    for group in list(self._groups):
                        async with self._locked(group) as g:
                            if g.written:
                                await self._sync(group, g, mine=0)
            except (RedisConnectionError, RedisTimeoutError, TimeoutError) as exc:
                log.warning("could not withdraw this process's counts from Redis: %r", exc)
        self.state = Link.STOPPED
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._topics.clear()
        if self._redis is not None:
            await self._redis.aclose()

    # -- topics -------------------------------------------------------------------------
    async def publish(self, topic: str, frame: str) -> None:
        if self._redis is not None and self.state is Link.UP:
            try:
                await self._redis.publish(self._channels + topic, frame)
                return  # it comes back to this process's subscribers through the relay
            except REDIS_DOWN as exc:
                self._lost(exc)
        self._topics.deliver(topic, frame)

    def subscribe(self, topic: str, deliver: Deliver) -> Callable[[], None]:
        return self._topics.subscribe(topic, deliver)

    # -- presence -----------------------------------------------------------------------
    async def join(self, group: str, member_id: str, capacity: int | None) -> Admission:
        async with self._locked(group) as g:
            if self.state is Link.UP:
                known = g.capacity if g.members else capacity
                try:
                    admitted, users, cap, _ = await self._script(
                        "join", group, len(g.members), _arg(known)
                    )
                except REDIS_DOWN as exc:
                    self._lost(exc)
                else:
                    g.written, g.capacity = len(g.members) + admitted, _capacity(cap)
                    if admitted:
                        g.members.add(member_id)
                    return Admission(bool(admitted), users, g.capacity)
            if capacity is not None or g.capacity is not None:
                raise BrokerUnavailable(
                    "the broker is unavailable, so the room's capacity cannot be enforced"
                )
            g.members.add(member_id)
            self._announce_locally(group, g)
            return Admission(True, len(g.members), None)

    async def leave(self, group: str, member_id: str) -> Departure:
        async with self._locked(group) as g:
            if member_id not in g.members:
                return Departure(False, *await self._count(group))
            g.members.remove(member_id)
            if self.state is Link.UP:
                try:
                    users, _ = await self._sync(group, g, mine=len(g.members))
                except REDIS_DOWN as exc:
                    self._lost(exc)
                else:
                    return Departure(True, users, g.capacity)
            self._announce_locally(group, g)
            return Departure(True, len(g.members), g.capacity)

    async def count(self, group: str) -> int:
        return (await self._count(group))[0]

    async def _count(self, group: str) -> tuple[int, int | None]:
        if self.state is Link.UP:
            try:
                users, cap = await self._scripts["count"](keys=self._keys(group))
                return int(users), _capacity(cap)
            except REDIS_DOWN as exc:
                self._lost(exc)
        g = self._groups.get(group)
        return (len(g.members), g.capacity) if g else (0, None)

    def _announce_locally(self, group: str, g: _Group) -> None:
        frame = presence_frame(len(g.members), g.capacity)
        self._topics.deliver(presence_topic(group), frame)

    @asynccontextmanager
    async def _locked(self, group: str) -> AsyncIterator[_Group]:
        """This node's side of `group`, one operation at a time; forgotten once it has no
        members and Redis holds no count of ours for it."""
        g = self._groups.setdefault(group, _Group())
        g.busy += 1
        try:
            async with g.lock:
                yield g
        finally:
            g.busy -= 1
            if not g.busy and not g.members and not g.written:
                del self._groups[group]

    def _keys(self, group: str) -> list[str]:
        base = f"{self.prefix}p:{group}:"
        return [base + "counts", base + "leases", base + "capacity"]

    async def _script(self, name: str, group: str, *args: object) -> list[Any]:
        channel = self._channels + presence_topic(group)
        head = [self.node_id, self.lease_ms, channel]
        result: list[Any] = await self._scripts[name](keys=self._keys(group), args=[*head, *args])
        return result

    async def _sync(
        self, group: str, g: _Group, *, mine: int, announce: bool = False
    ) -> tuple[int, float]:
        """Tell Redis this node's absolute count in `group`. Returns the group's total, and
        the seconds until its earliest lease runs out (a node that stopped renewing it)."""
        users, cap, due_ms = await self._script(
            "sync", group, mine, _arg(g.capacity), "1" if announce else "0"
        )
        g.written, g.capacity = mine, _capacity(cap)
        return int(users), due_ms / 1000 if due_ms >= 0 else self.beat_s

    async def _sync_all(self, *, announce: bool) -> float:
        """SYNC every group; the seconds until the earliest of their leases runs out."""
        due = self.beat_s
        for group in list(self._groups):
            async with self._locked(group) as g:
                _, group_due = await self._sync(group, g, mine=len(g.members), announce=announce)
                due = min(due, group_due)
        return due

    # -- the link -----------------------------------------------------------------------
    async def _keep_connected(self) -> None:
        while self.state is not Link.STOPPED:
            try:
                await self._connected()
            except RedisError as exc:
                self._lost(exc)
            finally:
                self._first_attempt.set()
            await asyncio.sleep(min(RETRY_FIRST * 2**self._attempts, RETRY_MAX))
            self._attempts += 1

    async def _connected(self) -> None:
        """Subscribe, announce the link is up, SYNC every group; relay until it drops."""
        assert self._redis is not None
        if self.state is Link.DOWN:  # pooled connections to the server that went away
            await self._redis.connection_pool.disconnect()
        async with self._redis.pubsub() as pubsub:
            await pubsub.psubscribe(self._channels + "*")
            confirmed = await pubsub.get_message(timeout=None)  # the PSUBSCRIBE reply
            if not confirmed or confirmed["type"] != "psubscribe":
                raise RedisConnectionError(f"unexpected reply to PSUBSCRIBE: {confirmed!r}")
            self._reader = asyncio.create_task(self._relay(pubsub), name="redis-broker-relay")
            self._up()
            self._first_attempt.set()
            try:
                await self._sync_all(announce=True)
                await asyncio.wait([self._reader])  # until the connection drops or `_lost`
            finally:
                reader, self._reader = self._reader, None
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            if not reader.cancelled() and (exc := reader.exception()) is not None:
                raise exc

    async def _relay(self, pubsub: PubSub) -> None:
        skip, presence = len(self._channels), presence_topic("")
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is None or message["type"] != "pmessage":
                continue
            try:
                topic, frame = message["channel"][skip:], message["data"]
                if topic.startswith(presence):  # only the scripts announce on these
                    frame = _announced(frame)
                self._topics.deliver(topic, frame)
            except Exception:  # a bug in a subscriber must not stop the relay
                log.exception("delivering a frame on %s failed", message["channel"])

    async def _heartbeat(self) -> None:
        assert self._redis is not None
        while self.state is not Link.STOPPED:
            wait = self.beat_s
            if self.state is Link.UP:
                try:
                    if self._groups:
                        wait = await self._sync_all(announce=False)
                    else:
                        await self._redis.ping()  # so /ready notices an outage anyway
                except RedisError as exc:
                    self._lost(exc)
            await asyncio.sleep(max(BEAT_MIN, min(wait + BEAT_MIN, self.beat_s)))

    def _up(self) -> None:
        if self.state is Link.DOWN:
            outage = time.monotonic() - self._down_since
            log.warning("broker: Redis is back after %.1f s; counts are exact again", outage)
        elif self.state is Link.CONNECTING:
            log.info("broker: connected to Redis (node %s)", self.node_id)
        self.state, self._attempts = Link.UP, 0

    def _lost(self, exc: BaseException) -> None:
        """Redis did not answer: serve local clients only and reconnect (logged once)."""
        if self.state in (Link.UP, Link.CONNECTING):
            self._down_since = time.monotonic()
            when = "at start-up" if self.state is Link.CONNECTING else "now"
            log.warning(
                "broker: Redis is unreachable %s (%s: %s); serving this process's clients "
                "only until it is back",
                when,
                type(exc).__name__,
                exc,
            )
            self.state = Link.DOWN
        if self._reader is not None:
            self._reader.cancel()
