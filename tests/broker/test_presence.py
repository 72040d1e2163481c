"""The sans-I/O presence core: counts, capacity admission, rooms that come and go; and the
one encoding of its announcements."""

from src.broker.presence import (
    Admission,
    Departure,
    Groups,
    PresenceEvent,
    decode_presence,
    presence_frame,
)


def test_join_counts_members_and_reports_capacity() -> None:
    """Each join is admitted with the new count and the group's capacity."""
    p = Groups()
    assert p.join("room:a", "m1", 3) == Admission(True, 1, 3)
    assert p.join("room:a", "m2", 3) == Admission(True, 2, 3)
    assert p.count("room:a") == 2 and p.count("room:b") == 0


def test_full_group_refuses_and_never_exceeds_capacity() -> None:
    """Joins past the capacity are refused with the current count."""
    p = Groups()
    results = [p.join("room:a", f"m{i}", 5) for i in range(50)]
    assert sum(r.admitted for r in results) == 5
    assert results[-1] == Admission(False, 5, 5)
    assert p.count("room:a") == 5


def test_first_member_fixes_capacity() -> None:
    """A later, different capacity does not change the room's."""
    p = Groups()
    p.join("room:a", "m1", 2)
    assert p.join("room:a", "m2", 10) == Admission(True, 2, 2)
    assert p.join("room:a", "m3", 10).admitted is False


def test_emptied_group_is_forgotten_and_created_afresh() -> None:
    """When the last member leaves, the next joiner sets a new capacity."""
    p = Groups()
    p.join("room:a", "m1", 1)
    assert p.leave("room:a", "m1") == Departure(True, 0, 1)
    assert p.join("room:a", "m2", 4) == Admission(True, 1, 4)


def test_leave_is_idempotent() -> None:
    """Leaving twice, or leaving an unknown group, changes nothing and says so."""
    p = Groups()
    p.join("g", "m1", None)
    p.join("g", "m2", None)
    assert p.leave("g", "m1") == Departure(True, 1, None)
    assert p.leave("g", "m1") == Departure(False, 1, None)
    assert p.leave("nope", "m1") == Departure(False, 0, None)
    assert p.count("g") == 1


def test_uncapped_group_admits_everyone() -> None:
    """The /counter audience has no capacity."""
    p = Groups()
    assert all(p.join("counter", f"m{i}", None).admitted for i in range(1000))
    assert p.count("counter") == 1000


def test_presence_frame_is_the_json_of_the_count_and_the_capacity() -> None:
    """The one encoding of an announcement, and its decoder's inverse of it."""
    assert presence_frame(3, None) == '{"users":3,"capacity":null}'
    assert presence_frame(2, 5) == '{"users":2,"capacity":5}'
    assert decode_presence(presence_frame(2, 5)) == PresenceEvent(users=2, capacity=5)
