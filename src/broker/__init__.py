"""The broker: infrastructure below the features. Topics (publish/subscribe) and presence
(groups with counts and capacities), in one process or across every process sharing a Redis.

`base.py` holds the two interfaces (`PubSub`, `Presence`) and the injectable `Broker`;
`presence.py` the pure presence core and its announcements; `memory.py` and `redis.py` the
two implementations; `embedded_redis.py` a local redis-server for `make run` and the tests.
Nothing here imports a feature (`src.realtime`, `src.catalog`, `src.web`) or the app.
"""

import os
import secrets

from src.broker.base import Broker
from src.broker.memory import MemoryBroker
from src.broker.redis import RedisBroker
from src.config import Settings

# This process among those sharing a Redis: a random node id (member ids extend it, so
# they are unique across processes and hosts).
NODE_ID = f"{os.getpid():x}{secrets.token_hex(3)}"


def build_broker(settings: Settings) -> Broker:
    """One process (memory), or every process sharing the Redis at REDIS_URL."""
    if settings.BROKER == "memory":
        return MemoryBroker()
    assert settings.REDIS_URL, "Settings refuse BROKER=redis without REDIS_URL"
    return RedisBroker(settings.REDIS_URL, ttl_s=settings.PRESENCE_TTL_S, node_id=NODE_ID)
