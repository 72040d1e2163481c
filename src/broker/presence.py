"""Presence: groups of members with counts and an optional capacity, and how a change is
announced. Pure state and encoding, no I/O.

A group is the /counter audience or one session room. The first member of a room fixes
its capacity; a group that empties is forgotten, so the next member creates it afresh.
Every operation is synchronous, so in one event loop a join is atomic: a storm of joins
can never put more members in a group than its capacity.

A broker announces each change of a group on the topic `presence_topic(group)`, as a
`PresenceEvent` encoded by `presence_frame`, the one encoder of these frames (the Redis
broker's scripts announce two numbers, which it encodes with it).
"""

from dataclasses import dataclass, field

import msgspec


@dataclass(frozen=True)
class Admission:
    """The outcome of a join: admitted or not, and the group's count and capacity after it."""

    admitted: bool
    users: int
    capacity: int | None


@dataclass(frozen=True)
class Departure:
    """The outcome of a leave: whether the member was there, and the count after it."""

    removed: bool
    users: int
    capacity: int | None


@dataclass
class _Group:
    capacity: int | None
    members: set[str] = field(default_factory=set)


class Groups:
    """Every group's members and capacity (the memory broker's presence, and the pure core
    its behaviour is tested on)."""

    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}

    def join(self, group: str, member_id: str, capacity: int | None) -> Admission:
        """Admit a member unless the group is full; the first member fixes the capacity."""
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group(capacity)
        if g.capacity is not None and len(g.members) >= g.capacity:
            return Admission(False, len(g.members), g.capacity)
        g.members.add(member_id)
        return Admission(True, len(g.members), g.capacity)

    def leave(self, group: str, member_id: str) -> Departure:
        """Remove a member (idempotent: `removed` is False if absent); an emptied group is
        forgotten."""
        g = self._groups.get(group)
        if g is None:
            return Departure(False, 0, None)
        if member_id not in g.members:
            return Departure(False, len(g.members), g.capacity)
        g.members.remove(member_id)
        if not g.members:
            del self._groups[group]
        return Departure(True, len(g.members), g.capacity)

    def count(self, group: str) -> int:
        g = self._groups.get(group)
        return len(g.members) if g else 0


class PresenceEvent(msgspec.Struct, frozen=True):
    """What a broker announces when a group's membership changes."""

    users: int
    capacity: int | None


def presence_topic(group: str) -> str:
    return f"presence:{group}"


_encode = msgspec.json.Encoder().encode
decode_presence = msgspec.json.Decoder(PresenceEvent).decode


def presence_frame(users: int, capacity: int | None) -> str:
    """The frame announcing that a group now has `users` members (and this capacity)."""
    return _encode(PresenceEvent(users=users, capacity=capacity)).decode()
