"""The web feature's wiring: the live page, the offline docs page and the contract
documents (built by the app, which knows every component's routes)."""

from collections.abc import Callable
from typing import Any

from src.component import Component
from src.web.routes import build_page_routes


class Web(Component):
    def __init__(self, openapi: Callable[[], Any], asyncapi: Callable[[], Any]) -> None:
        self.openapi, self.asyncapi = openapi, asyncapi

    def routes(self) -> list[Any]:
        return build_page_routes(self.openapi, self.asyncapi)
