"""The WebSocket protocol of API.md: close codes, message shapes, parameter rules. No I/O."""

import re
from enum import IntEnum

import msgspec


class Close(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down
    ABNORMAL = 1006  # recorded, never sent: the connection dropped without a close frame
    UNSUPPORTED = 1003  # a binary frame where only text is accepted
    POLICY = 1008  # too slow to read: send queue overflowed
    TOO_BIG = 1009  # larger than WS_MAX_MESSAGE_BYTES
    TRY_AGAIN_LATER = 1013  # the broker cannot admit to a room now (Redis unreachable)
    BAD_PARAMETER = 4400
    FORBIDDEN = 4403
    FULL = 4429


class Welcome(msgspec.Struct, tag="welcome", tag_field="type"):
    session_id: str
    member_id: str
    users: int
    max_users: int


class Count(msgspec.Struct, tag="count", tag_field="type"):
    session_id: str
    users: int
    max_users: int


class Message(msgspec.Struct, tag="message", tag_field="type"):
    session_id: str
    member_id: str
    text: str


class PresenceEvent(msgspec.Struct, frozen=True):
    """What a broker announces when a group's membership changes."""

    users: int
    capacity: int | None


encode = msgspec.json.Encoder().encode
decode_presence = msgspec.json.Decoder(PresenceEvent).decode


class BadParameter(ValueError):
    """A path or query parameter is invalid; str() is the close reason (4400)."""


SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def parse_session_id(raw: str) -> str:
    if not SESSION_ID.fullmatch(raw):
        raise BadParameter("session_id must be 1-64 characters of A-Z a-z 0-9 _ -")
    return raw


def parse_max_users(raw: str | None, *, default: int, cap: int) -> int:
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= cap:
        raise BadParameter(f"max_users must be an integer from 1 to {cap}")
    return int(raw)


def full_reason(users: int, capacity: int) -> str:
    return f"session full ({users}/{capacity})"
