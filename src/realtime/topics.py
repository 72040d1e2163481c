"""Topics: which local peers listen to what, and how a topic's frames reach them.

The `Registry` owns every local `Peer` and maps topics to peers: a frame from the broker
(or another `Source`, such as the catalog feed) is rendered (encoded) once per topic and
handed to every subscribed peer; a coalesced topic (the /counter count) sends each peer only
the latest value, in rounds (see `_Topic`), and always ends on the latest value.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from lihil.vendors import WebSocket

from src.broker.base import PubSub
from src.realtime.metrics import WebSocketMetrics
from src.realtime.peers import Message, Peer, text_message

Render = Callable[[str, str], str]  # (topic, frame from the broker) -> frame for the peers


class Source(Protocol):
    """Where a topic's frames come from: the broker, or a process-local feed."""

    def subscribe(self, topic: str, deliver: Callable[[str], None]) -> Callable[[], None]: ...


@dataclass(frozen=True)
class Delivery:
    """How a topic's frames reach local peers. One per topic: its first subscription fixes
    it, and a later subscription asking for another is a bug (ValueError)."""

    render: Render | None = None  # encode once per frame for every peer; None: as published
    coalesce: bool = False  # only the latest value matters (see `_Topic` for the rounds)


AS_PUBLISHED = Delivery()
ROUND_CHUNK = 1000  # peers sent to per loop step in a coalesced round, so I/O interleaves
CHANGES_PER_FRAME = 2  # changes that pay for one frame per peer in a round
QUIET_PER_PEER = 20e-6  # seconds of quiet asked per peer before a round nobody paid for
# Under churn that never pauses a value waits at most this long: 2 s, or 2 ms per peer (a
# round costs ~15 us per peer, so such rounds take under 1% of a core whatever the crowd).
MAX_DELAY, MAX_DELAY_PER_PEER = 2.0, 2e-3


@dataclass
class _Topic:
    """One topic's local peers, and for a coalesced topic the rounds that update them.

    A coalesced topic (the /counter count) sends each peer only the latest value, in rounds
    over all its peers; a peer that has never been sent a value gets the latest at once,
    alone (O(1) per change: `fresh`). A round starts:
    - when the changes since the last round number at least CHANGES_PER_FRAME per peer
      (two changes pay for one frame: under a storm of joins rounds come at tripling
      sizes, so the storm costs one frame per join for newcomers, at most half a frame per
      join for rounds, and one final round: well under 3 frames per join in all);
    - when the topic has been quiet for `quiet` (the window, or 20 us per peer if longer,
      so a round's cost is paid by a pause of similar size): the first change after such
      a pause goes out at once, and the last change of a burst that long after it;
    - when a change has waited `max_delay` (churn that never pauses long enough).
    A round sends ROUND_CHUNK peers per loop step, so handshakes and requests run between
    its chunks; a value that changes meanwhile reaches the peers the round has not visited.
    """

    delivery: Delivery
    unsubscribe: Callable[[], None] = lambda: None
    peers: dict[Peer, str | None] = field(default_factory=dict)  # peer -> last text it got
    fresh: set[Peer] = field(default_factory=set)  # peers no value has been sent to yet
    latest: Message | None = None
    changes: int = 0  # since the last round began
    first_change: float = 0.0  # the oldest change no round has sent yet
    last_change: float = float("-inf")
    last_round: float = float("-inf")
    timer: asyncio.TimerHandle | None = None
    round: list[Peer] | None = None  # the peers a round in progress has still to visit

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.round = None


class Registry:
    """Every open local peer, and which topics each of them listens to."""

    def __init__(
        self,
        broker: PubSub,
        *,
        window_ms: int,
        queue_limit: int,
        max_message_bytes: int,
        max_messages_per_s: float = float("inf"),
    ) -> None:
        self.broker = broker
        self.window = window_ms / 1000
        self.queue_limit = queue_limit
        self.max_message_bytes = max_message_bytes
        self.max_messages_per_s = max_messages_per_s
        self._peers: set[Peer] = set()
        self._topics: dict[str, _Topic] = {}
        self.metrics = WebSocketMetrics(self.peers)  # the app's /metrics collects it

    @property
    def open_peers(self) -> int:
        return len(self._peers)

    @asynccontextmanager
    async def connect(self, ws: WebSocket, endpoint: str = "") -> AsyncIterator[Peer]:
        """Accept `ws` and track it as a Peer until the block ends; then close (1000 unless
        closed already) and forget it. `endpoint` (the route's path template) labels it
        in metrics."""
        await ws.accept()
        peer = Peer(
            ws,
            queue_limit=self.queue_limit,
            max_message_bytes=self.max_message_bytes,
            max_messages_per_s=self.max_messages_per_s,
        )
        peer.endpoint = endpoint
        self._peers.add(peer)
        try:
            yield peer
        finally:
            self._peers.discard(peer)
            await peer.finish()
            self.metrics.ended(peer)

    def peers(self) -> frozenset[Peer]:
        return frozenset(self._peers)

    @contextmanager
    def subscription(
        self,
        topic: str,
        peer: Peer,
        delivery: Delivery = AS_PUBLISHED,
        source: Source | None = None,
    ) -> Iterator[None]:
        """Deliver `topic`'s frames to `peer` while the block runs. Frames come from the
        broker unless another `source` is given (the catalog feed)."""
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = _Topic(delivery)
            source = source or self.broker
            t.unsubscribe = source.subscribe(topic, lambda frame: self._deliver(topic, frame))
        elif t.delivery != delivery:
            raise ValueError(f"topic {topic!r} is delivered as {t.delivery}, not {delivery}")
        t.peers[peer] = None
        if delivery.coalesce:
            t.fresh.add(peer)
        try:
            yield
        finally:
            t.peers.pop(peer, None)
            t.fresh.discard(peer)
            if not t.peers and self._topics.get(topic) is t:
                t.unsubscribe()
                t.stop()
                del self._topics[topic]

    def _deliver(self, topic: str, frame: str) -> None:
        t = self._topics.get(topic)
        if t is None:
            return
        render = t.delivery.render
        rendered = render(topic, frame) if render else frame  # encoded once for every peer
        message = text_message(rendered)  # one message object for every peer
        if not t.delivery.coalesce:
            for peer in tuple(t.peers):
                peer.send_message(message)
            return
        now = time.monotonic()
        quiet_before, quiet = now - t.last_change, self._quiet(t)
        t.latest, t.last_change = message, now
        if t.changes == 0:
            t.first_change = now
        t.changes += 1
        for peer in t.fresh:  # newcomers get the value at once, alone
            t.peers[peer] = rendered
            peer.offer(message)
        t.fresh.clear()
        if t.round is not None:
            return  # the round in progress sends the newest value to the peers it has left
        since_round = now - t.last_round
        paid = t.changes >= CHANGES_PER_FRAME * len(t.peers) and since_round >= self.window
        if paid or (quiet_before >= quiet and since_round >= quiet):
            self._start_round(t)
        elif t.timer is None:
            self._arm(t, now)

    def _quiet(self, t: _Topic) -> float:
        return max(self.window, len(t.peers) * QUIET_PER_PEER)

    def _max_delay(self, t: _Topic) -> float:
        return max(MAX_DELAY, len(t.peers) * MAX_DELAY_PER_PEER)

    def _arm(self, t: _Topic, now: float) -> None:
        """Wake up when the topic will have been quiet long enough, or at its max delay."""
        due = min(t.last_change + self._quiet(t), t.first_change + self._max_delay(t))
        t.timer = asyncio.get_running_loop().call_later(max(0.0, due - now), self._tick, t)

    def _tick(self, t: _Topic) -> None:
        t.timer = None
        if t.round is not None or t.changes == 0:
            return
        now = time.monotonic()
        if now >= t.last_change + self._quiet(t) or now >= t.first_change + self._max_delay(t):
            self._start_round(t)
        else:
            self._arm(t, now)

    def _start_round(self, t: _Topic) -> None:
        if t.timer is not None:
            t.timer.cancel()
            t.timer = None
        t.changes, t.last_round = 0, time.monotonic()
        t.round = list(t.peers)
        self._continue_round(t)

    def _continue_round(self, t: _Topic) -> None:
        if t.round is None or t.latest is None:
            return
        message = t.latest
        text = message["text"]
        chunk = t.round[-ROUND_CHUNK:]
        del t.round[-ROUND_CHUNK:]  # in place: the rest is not copied at every chunk
        for peer in chunk:
            if t.peers.get(peer, text) != text:  # gone, or already showing it: nothing
                t.peers[peer] = text
                peer.offer(message)
        if t.round:
            asyncio.get_running_loop().call_soon(self._continue_round, t)
            return
        t.round = None
        if t.changes:  # values arrived during the round: the peers it visited first need them
            t.first_change = t.last_round
            self._arm(t, time.monotonic())

    def close_all(self, code: int, reason: str) -> list[asyncio.Task[None]]:
        """Close every open peer; returns the tasks sending their close frames."""
        for peer in tuple(self._peers):
            peer.close(code, reason)
        return [p.closing for p in self._peers if p.closing is not None]
