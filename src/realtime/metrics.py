"""The WebSocket metrics: the collector the realtime feature gives the app's /metrics.

catalog_ws_connections (open sockets), catalog_ws_frames_sent and catalog_ws_closes, by
endpoint (the route's path template, a bounded set of labels). Read at scrape time from the
live peers, plus what this collector counted of the peers already gone, so the fan-out pays
nothing per frame but an integer increment (`Peer.sent`).
"""

from collections import Counter
from collections.abc import Callable, Collection, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from src.realtime.peers import Peer
from src.realtime.protocol import Close


class WebSocketMetrics(Collector):
    """Counts what ended peers sent and how they closed; reads the open ones when scraped."""

    def __init__(self, peers: Callable[[], Collection[Peer]]) -> None:
        self._peers = peers
        self.sent_by_gone: Counter[str] = Counter()
        self.closes: Counter[tuple[str, int]] = Counter()

    def ended(self, peer: Peer) -> None:
        """Record a peer that is gone: the frames it sent, and its close code."""
        self.sent_by_gone[peer.endpoint] += peer.sent
        self.closes[peer.endpoint, peer.close_code or Close.NORMAL] += 1

    def collect(self) -> Iterator[Metric]:
        peers = self._peers()
        open_by = Counter(p.endpoint for p in peers)
        sent_by = Counter(self.sent_by_gone)
        for peer in peers:
            sent_by[peer.endpoint] += peer.sent
        connections = GaugeMetricFamily(
            "catalog_ws_connections", "Open WebSocket connections.", labels=["endpoint"]
        )
        for endpoint, count in sorted(open_by.items()):
            connections.add_metric([endpoint], count)
        yield connections
        sent = CounterMetricFamily(
            "catalog_ws_frames_sent", "Frames sent to WebSocket clients.", labels=["endpoint"]
        )
        for endpoint, count in sorted(sent_by.items()):
            sent.add_metric([endpoint], count)
        yield sent
        closes = CounterMetricFamily(
            "catalog_ws_closes",
            "WebSocket connections ended, by close code (1006: dropped without a close).",
            labels=["endpoint", "code"],
        )
        for (endpoint, code), count in sorted(self.closes.items()):
            closes.add_metric([endpoint, str(code)], count)
        yield closes
