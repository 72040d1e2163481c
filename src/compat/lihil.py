"""lihil 0.2.41: patches of its bugs and uses of its private API (LIHIL TRAPs).

Nothing happens at import: `patch_lihil()` applies the module-wide patch (the app factory
calls it), `without_builtin_pages(app)` applies to one app.
"""

from typing import Any, Literal, get_args, get_origin

from lihil import Lihil
from lihil.asgi import ASGIRoute
from lihil.signature import returns

PACKAGE = "lihil"
WRITTEN_FOR = "0.2.41"


def _is_empty_return(t: Any) -> bool:
    return t is None or (get_origin(t) is Literal and get_args(t) == (None,))


def patch_lihil() -> None:
    """LIHIL TRAP (`Empty` checked by identity): lihil tests a 204 route's return type with
    `t is Literal[None]`. typing caches Literal[...] objects in a bounded cache; once an
    import heavy in Literals (playwright, say) evicts that entry, a fresh `Literal[None]` is
    another object and every `-> Annotated[Empty, status.NO_CONTENT]` route fails to set up.
    Idempotent."""
    returns.is_empty_return = _is_empty_return


def _no_builtin_pages() -> tuple[ASGIRoute, ...]:
    return ()


def without_builtin_pages(app: Lihil) -> None:
    """LIHIL TRAP (the docs page loads Swagger UI from a CDN): at start-up lihil appends its
    own /openapi, /docs (Swagger UI from cdn.jsdelivr.net) and /problems (jQuery and
    Bootstrap from CDNs, describing lihil's `type_` problems) after our routes, and has no
    switch to leave them out (`Lihil` is final). This replaces the private method that
    builds them; src.web serves our /openapi and an offline /docs."""
    app._generate_builtin_routes = _no_builtin_pages  # type: ignore[method-assign]


def generated_openapi(app: Lihil) -> Any:
    """lihil's generated OpenAPI document (its public method is misspelt `genereate_oas`,
    and sets the app up if it was not: works offline, with no lifespan run)."""
    return app.genereate_oas()
