"""The accepted socket as an injected resource, and member ids.

The edge (`src.edge`) has already refused what must not reach a handler;
a handler that asks for `PeerDep` gets the socket accepted and tracked by the Registry,
and closed (1000 unless closed already) once the handler returns.
"""

import itertools
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated

from lihil import Ignore, use
from lihil.vendors import WebSocket

from src.broker import NODE_ID
from src.edge.checks import repeated_parameters
from src.realtime.peers import Peer
from src.realtime.protocol import BadParameter
from src.realtime.topics import Registry

# Member ids are unique across processes and hosts: the node id plus a sequence.
_sequence = itertools.count(1)


def new_member_id() -> str:
    return f"{NODE_ID}-{next(_sequence)}"


def given_once(peer: Peer, name: str) -> None:
    """BadParameter (4400) when the query gives `name` more than once: lihil hands the
    handler the last value, which would silently win."""
    if name in repeated_parameters(peer.ws.scope.get("query_string", b"")):
        raise BadParameter(f"{name} given more than once; give it once")


def accepted(ws: WebSocket, registry: Registry) -> AbstractAsyncContextManager[Peer]:
    """Accept `ws` and track it as a Peer for the block; close and clean up after. The peer
    is labelled with its route's template (a bounded set of metric labels), which the edge
    put in the scope when it matched the route."""
    return registry.connect(ws, ws.scope["route"].path)


async def open_peer(ws: Ignore[WebSocket], registry: Registry) -> Ignore[AsyncIterator[Peer]]:
    """Accept, hand the handler a Peer (queue + writer task), close and clean up after."""
    async with accepted(ws, registry) as peer:
        yield peer


PeerDep = Annotated[Peer, use(open_peer)]
