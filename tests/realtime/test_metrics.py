"""The WebSocket collector: open sockets, frames sent and closes, by endpoint."""

from prometheus_client import CollectorRegistry, generate_latest

from src.broker.memory import MemoryBroker
from src.realtime.topics import Registry
from tests.realtime.test_peers import RecordingSocket


async def test_open_and_ended_peers_are_counted_by_endpoint() -> None:
    """Frames of open and ended peers add up; an ended peer is counted by its close code."""
    registry = Registry(MemoryBroker(), window_ms=0, queue_limit=4, max_message_bytes=1024)
    prometheus = CollectorRegistry()
    prometheus.register(registry.metrics)
    staying, leaving = RecordingSocket(), RecordingSocket()
    async with registry.connect(staying, "/ws/echo") as peer:  # type: ignore[arg-type]
        peer.send("a")
        async with registry.connect(leaving, "/ws/echo") as gone:  # type: ignore[arg-type]
            gone.send("b")
            gone.send("c")
            gone.close(4400, "bad")
        text = generate_latest(prometheus).decode()
    assert 'catalog_ws_connections{endpoint="/ws/echo"} 1.0\n' in text
    assert 'catalog_ws_frames_sent_total{endpoint="/ws/echo"} 3.0\n' in text
    assert 'catalog_ws_closes_total{code="4400",endpoint="/ws/echo"} 1.0\n' in text
    assert "1000" not in text  # the open peer has not closed yet
