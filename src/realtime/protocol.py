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
    TRY_AGAIN_LATER = 1013  # a resource this endpoint needs is unavailable for now
    BAD_PARAMETER = 4400
    FORBIDDEN = 4403
    GONE = 4410  # /ws/catalog: `after` is older than the retained window
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


encode = msgspec.json.Encoder().encode


class BadParameter(ValueError):
    """A path or query parameter is invalid; str() is the close reason (4400)."""


SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def parse_session_id(raw: str) -> str:
    if not SESSION_ID.fullmatch(raw):
        raise BadParameter("session_id must be 1-64 characters of A-Z a-z 0-9 _ -")
    return raw


def _integer(raw: str, low: int, high: int) -> int | None:
    """`raw` as a decimal integer within [low, high], or None. The length is checked before
    int(), which refuses strings over 4,300 digits with a ValueError of its own."""
    digits = raw.lstrip("0") or "0"
    if not raw.isascii() or not raw.isdigit() or len(digits) > len(str(high)):
        return None
    value = int(digits)
    return value if low <= value <= high else None


def parse_max_users(raw: str | None, *, default: int, cap: int) -> int:
    if raw is None:
        return default
    value = _integer(raw, 1, cap)
    if value is None:
        raise BadParameter(f"max_users must be an integer from 1 to {cap}")
    return value


MAX_CHANGE_ID = 2**63 - 1  # change ids are PostgreSQL BIGINTs


def parse_after(raw: str | None) -> int | None:
    """/ws/catalog's `after`: absent (live only) or a change id, 0 meaning "from the start"."""
    if raw is None:
        return None
    value = _integer(raw, 0, MAX_CHANGE_ID)
    if value is None:
        raise BadParameter(f"after must be a change id: an integer from 0 to {MAX_CHANGE_ID}")
    return value


def full_reason(users: int, capacity: int) -> str:
    return f"session full ({users}/{capacity})"
