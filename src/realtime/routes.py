"""Thin WebSocket adapters: validate parameters, join presence, pump frames.

The accepted socket (`PeerDep`), the local registry and the broker are injected.
LIHIL TRAP (bad WebSocket query parameters give HTTP 500 at the handshake): parameters are
taken as plain strings and validated here, after accepting, so a client reads 4400 + reason.
"""

from functools import partial

from lihil import WebSocketRoute

from src.config import Settings
from src.realtime.broker import Broker, presence_topic
from src.realtime.fanout import Registry
from src.realtime.protocol import (
    BadParameter,
    Close,
    Count,
    Message,
    Welcome,
    decode_presence,
    encode,
    full_reason,
    parse_max_users,
    parse_session_id,
)
from src.realtime.sockets import PeerDep, new_member_id

COUNTER = "counter"
BROADCAST = "broadcast"


def _users(event: str) -> str:
    return str(decode_presence(event).users)


def _count(session_id: str, event: str) -> str:
    e = decode_presence(event)
    return encode(Count(session_id=session_id, users=e.users, max_users=e.capacity or 0)).decode()


async def counter(peer: PeerDep, broker: Broker, registry: Registry) -> None:
    """Users online: the number of /counter connections, pushed on connect and on change."""
    member = new_member_id()
    detach = registry.attach(presence_topic(COUNTER), peer, render=_users, coalesce=True)
    try:
        await broker.join(COUNTER, member, None)
        while await peer.receive(text_only=False) is not None:
            pass  # whatever clients send is ignored
    finally:
        detach()
        await broker.leave(COUNTER, member)


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
        capacity = parse_max_users(
            max_users, default=settings.DEFAULT_SESSION_USERS, cap=settings.MAX_SESSION_USERS
        )
    except BadParameter as exc:
        peer.close(Close.BAD_PARAMETER, str(exc))
        return
    group, room_topic, member = f"room:{sid}", f"room:{sid}:messages", new_member_id()
    peer.pause()  # counts may arrive while joining; the welcome goes out first
    detach_counts = registry.attach(presence_topic(group), peer, render=partial(_count, sid))
    detach_messages = registry.attach(room_topic, peer)
    try:
        admission = await broker.join(group, member, capacity)
        if not admission.admitted:
            peer.close(Close.FULL, full_reason(admission.users, admission.capacity or capacity))
            return
        try:
            welcome = Welcome(
                session_id=sid,
                member_id=member,
                users=admission.users,
                max_users=admission.capacity or capacity,
            )
            peer.resume(first=encode(welcome).decode())
            while (text := await peer.receive()) is not None:
                message = Message(session_id=sid, member_id=member, text=text)
                await broker.publish(room_topic, encode(message).decode())
        finally:
            await broker.leave(group, member)
    finally:
        detach_counts()
        detach_messages()


async def echo(peer: PeerDep) -> None:
    """Answers every text frame with OK! (the tutorial's echo endpoint)."""
    while await peer.receive() is not None:
        peer.send("OK!")


async def broadcast(peer: PeerDep, broker: Broker, registry: Registry) -> None:
    """Every text frame from any client goes to every client, sender included, in order."""
    detach = registry.attach(BROADCAST, peer)
    try:
        while (text := await peer.receive()) is not None:
            await broker.publish(BROADCAST, text)
    finally:
        detach()


def build_ws_routes() -> list[WebSocketRoute]:
    """Fresh WebSocketRoute objects for one app."""
    routes = []
    for path, handler in [
        ("/counter", counter),
        ("/web_socket/{session_id}", session_room),
        ("/ws/echo", echo),
        ("/ws/broadcast", broadcast),
    ]:
        route = WebSocketRoute(path)
        route.endpoint(handler)
        routes.append(route)
    return routes
