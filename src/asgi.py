"""The ASGI types the middlewares share (plain ASGI: a scope, receive, send)."""

from collections.abc import Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Any]
