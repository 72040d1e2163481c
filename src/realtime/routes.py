"""Thin WebSocket adapters: validate parameters, join presence, pump frames.

The accepted socket (`PeerDep`), the local registry and the broker are injected.
LIHIL TRAP (bad WebSocket query parameters give HTTP 500 at the handshake): parameters are
taken as plain strings and validated here, after accepting, so a client reads 4400 + reason.
"""

from collections.abc import AsyncIterator
from typing import Annotated, NamedTuple

from lihil import Ignore, WebSocketRoute, use
from lihil.vendors import WebSocket

from src.broker.base import Broker
from src.broker.presence import decode_presence, presence_topic
from src.catalog.feed import CatalogFeed, ChangesPruned, FeedUnavailable, Filter
from src.config import Settings
from src.db.pool import Database
from src.errors import BrokerUnavailable
from src.realtime.peers import Peer
from src.realtime.protocol import (
    BadParameter,
    Close,
    Count,
    Message,
    Welcome,
    encode,
    full_reason,
    parse_after,
    parse_catalog_filter,
    parse_max_users,
    parse_product_id,
    parse_session_id,
)
from src.realtime.sockets import PeerDep, accepted, given_once, new_member_id
from src.realtime.topics import Delivery, Registry

COUNTER = "counter"
BROADCAST = "broadcast"
ROOM = "room:"  # a room's presence group is ROOM + session_id
VIEWERS = "viewers:"  # a product's viewers are the presence group VIEWERS + product_id


def _users(topic: str, event: str) -> str:
    return str(decode_presence(event).users)


def _room_count(topic: str, event: str) -> str:
    session_id = topic.removeprefix(presence_topic(ROOM))
    e = decode_presence(event)
    return encode(Count(session_id=session_id, users=e.users, max_users=e.capacity or 0)).decode()


USERS_ONLINE = Delivery(render=_users, coalesce=True)
ROOM_COUNTS = Delivery(render=_room_count)


async def counter(peer: PeerDep, broker: Broker, registry: Registry) -> None:
    """Users online: the number of /counter connections, pushed on connect and on change."""
    await count_members(COUNTER, peer, broker, registry)


async def product_viewers(
    product_id: str, peer: PeerDep, broker: Broker, registry: Registry
) -> None:
    """How many clients view this product: the number of connections to its viewers
    endpoint, across every process sharing the broker, pushed on connect and on change."""
    try:
        product = parse_product_id(product_id)
    except BadParameter as exc:
        peer.close(Close.BAD_PARAMETER, str(exc))
        return
    await count_members(f"{VIEWERS}{product}", peer, broker, registry)


async def count_members(group: str, peer: Peer, broker: Broker, registry: Registry) -> None:
    """Join `group` for as long as the client stays, and push it the group's size on
    connect and on every change (coalesced); whatever the client sends is ignored."""
    with registry.subscription(presence_topic(group), peer, USERS_ONLINE):
        async with broker.membership(group, new_member_id()):
            while await peer.receive(text_only=False) is not None:
                pass


async def session_room(
    session_id: str,
    peer: PeerDep,
    broker: Broker,
    registry: Registry,
    settings: Settings,
    max_users: str | None = None,
) -> None:
    """A room with its own counter and capacity; members' text frames go to every member."""
    try:
        sid = parse_session_id(session_id)
        given_once(peer, "max_users")
        capacity = parse_max_users(
            max_users, default=settings.DEFAULT_SESSION_USERS, cap=settings.MAX_SESSION_USERS
        )
    except BadParameter as exc:
        peer.close(Close.BAD_PARAMETER, str(exc))
        return
    group, messages, member = ROOM + sid, f"{ROOM}{sid}:messages", new_member_id()
    peer.hold()  # counts may arrive while joining; the welcome goes out first
    with (
        registry.subscription(presence_topic(group), peer, ROOM_COUNTS),
        registry.subscription(messages, peer),
    ):
        try:
            async with broker.membership(group, member, capacity) as admission:
                room_capacity = admission.capacity or capacity
                if not admission.admitted:
                    peer.close(Close.FULL, full_reason(admission.users, room_capacity))
                    return
                welcome = Welcome(
                    session_id=sid,
                    member_id=member,
                    users=admission.users,
                    max_users=room_capacity,
                )
                peer.release(first=encode(welcome).decode())
                while (text := await peer.receive()) is not None:
                    message = Message(session_id=sid, member_id=member, text=text)
                    await broker.publish(messages, encode(message).decode())
        except BrokerUnavailable:  # only a join raises it: the capacity is not enforceable
            peer.close(Close.TRY_AGAIN_LATER, "the broker is unavailable; try again later")


async def echo(peer: PeerDep) -> None:
    """Answers every text frame with OK! (the tutorial's echo endpoint)."""
    while await peer.receive() is not None:
        peer.send("OK!")


async def broadcast(peer: PeerDep, broker: Broker, registry: Registry) -> None:
    """Every text frame from any client goes to every client, sender included, in order."""
    with registry.subscription(BROADCAST, peer):
        while (text := await peer.receive()) is not None:
            await broker.publish(BROADCAST, text)


class Listener(NamedTuple):
    """A /ws/catalog client: its socket, and the feed's position just before its handshake
    was accepted (every change after it is owed to the client)."""

    peer: Peer
    accepted_after: int


async def open_listener(
    ws: Ignore[WebSocket], registry: Registry, feed: CatalogFeed
) -> Ignore[AsyncIterator[Listener]]:
    position = feed.position  # read before accepting: nothing after it can be missed
    async with accepted(ws, registry) as peer:
        yield Listener(peer, position)


ListenerDep = Annotated[Listener, use(open_listener)]


async def catalog(
    listener: ListenerDep,
    feed: CatalogFeed,
    db: Database,
    registry: Registry,
    after: str | None = None,
    brand_id: str | None = None,
    product_id: str | None = None,
) -> None:
    """The live catalog: one frame per committed change (with `brand_id` or `product_id`,
    only the changes tagged with it); with `after`, the retained changes after that id
    first, then live, with no gap and no duplicate at the seam. Without `after`, the changes
    the feed delivered while the handshake was being accepted are replayed the same way:
    none is missed at connect."""
    peer = listener.peer
    try:
        for name in ("after", "brand_id", "product_id"):
            given_once(peer, name)
        since = parse_after(after)
        brand, product = parse_catalog_filter(brand_id, product_id)
        only = Filter(brand_id=brand, product_id=product)
        if since is not None and since > feed.position:
            await feed.sync()  # it may have come from a process that has read further
            if since > feed.position:
                raise BadParameter(
                    f"after={since} is not a change id of this feed (the newest is {feed.position})"
                )
    except BadParameter as exc:
        peer.close(Close.BAD_PARAMETER, str(exc))
        return
    except FeedUnavailable as exc:
        peer.close(Close.TRY_AGAIN_LATER, str(exc))
        return
    if since is None:
        since = listener.accepted_after
    peer.hold()  # live changes queue up behind the replay
    missed = feed.on_gap(lambda reason: peer.close(Close.GONE, reason))  # lost changes: 4410
    with registry.subscription(only.topic, peer, source=feed), missed:
        # Read with the subscription in place: live frames from here on have larger ids.
        through = feed.position
        if since < through:
            try:
                async for frame in feed.replay(db, after=since, through=through, only=only):
                    if not await peer.write_held(frame):
                        return
            except ChangesPruned as exc:
                peer.close(Close.GONE, str(exc))
                return
            except FeedUnavailable as exc:
                peer.close(Close.TRY_AGAIN_LATER, str(exc))
                return
        peer.release()
        while await peer.receive(text_only=False) is not None:
            pass  # whatever clients send is ignored


def build_ws_routes() -> list[WebSocketRoute]:
    """Fresh WebSocketRoute objects for one app (LIHIL TRAP: routes bind to the first app)."""
    routes = []
    for path, handler in [
        ("/counter", counter),
        ("/ws/products/{product_id}/viewers", product_viewers),
        ("/web_socket/{session_id}", session_room),
        ("/ws/echo", echo),
        ("/ws/broadcast", broadcast),
        ("/ws/catalog", catalog),
    ]:
        route = WebSocketRoute(path)
        route.endpoint(handler)
        routes.append(route)
    return routes
