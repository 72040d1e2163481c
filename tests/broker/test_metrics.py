"""catalog_broker_up follows the broker's `available`."""

from prometheus_client import CollectorRegistry, generate_latest

from src.broker.memory import MemoryBroker
from src.broker.metrics import BrokerMetrics
from src.broker.redis import RedisBroker


def scrape(collector: BrokerMetrics) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_broker_up_is_1_while_the_broker_is_available() -> None:
    """A memory broker is always available."""
    assert "\ncatalog_broker_up 1.0\n" in scrape(BrokerMetrics(MemoryBroker()))


def test_broker_up_is_0_while_redis_is_not_reached() -> None:
    """A Redis broker not connected (here: never started) reports 0."""
    broker = RedisBroker("redis://127.0.0.1:1/0", ttl_s=5, node_id="n")
    text = scrape(BrokerMetrics(broker))
    assert "# HELP catalog_broker_up 1 while the broker answers.\n" in text
    assert "\ncatalog_broker_up 0.0\n" in text
