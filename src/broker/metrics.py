"""The broker's metric for the app's /metrics: catalog_broker_up, read at scrape time."""

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from src.broker.base import PubSub


class BrokerMetrics(Collector):
    def __init__(self, broker: PubSub) -> None:
        self.broker = broker

    def collect(self) -> Iterator[Metric]:
        up = bool(self.broker.available)
        yield GaugeMetricFamily("catalog_broker_up", "1 while the broker answers.", value=up)
