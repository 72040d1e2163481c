"""The feed position a read reflects, read in the read's own statement."""

from typing import NamedTuple

# Each read also returns the feed position its snapshot saw, read by the same statement:
# the newest change committed before it began (ids are handed out in commit order). The
# answer carries it (Catalog-Position), and the response cache refuses to keep an answer
# older than a change it has already applied (src/edge/cache.py).
POSITION = """(SELECT greatest(max(id), (SELECT pruned_through FROM catalog_feed_state), 0)
    FROM catalog_change)"""


class Read(NamedTuple):
    """A body as PostgreSQL built it, and the feed position its snapshot saw."""

    position: int
    json: str
