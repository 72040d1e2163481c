"""The app's errors and the one place that maps them to the wire.

    Exception
    ├── AppError                 domain errors, raised by queries and routes
    │   ├── NotFound             404  a product or brand that does not exist
    │   ├── UnknownBrand         409  a write names a brand_id that does not exist
    │   └── DatabaseUnavailable  503  the database does not answer (see DB_OUTAGE_ERRORS)
    ├── lihil HTTPException      lihil's own; InvalidRequestErrors (422) carries the bad fields
    └── anything else            500  logged with its traceback, never shown to the client

Every HTTP error leaves as RFC 9457 `application/problem+json`: `type`, `title`,
`status`, `detail`, `instance`, plus `errors` (location, field, message per bad field)
for validation failures. WebSocket close codes live in `src.realtime.protocol`.
"""

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, MutableMapping
from typing import Annotated, Any, ClassVar

import asyncpg
import msgspec
from lihil import HTTPException, Request, Response
from lihil.problems import InvalidRequestErrors, problem_solver

log = logging.getLogger("catalog.errors")
PROBLEM_JSON = "application/problem+json"


class FieldError(msgspec.Struct, frozen=True):
    """One bad field of a request: where it was, which one, and why it was refused."""

    location: Annotated[str, msgspec.Meta(examples=["body"])]  # path | query | header | body
    field: Annotated[str, msgspec.Meta(examples=["product_name"])]
    message: Annotated[str, msgspec.Meta(examples=["Expected `str` of length >= 1"])]


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """An RFC 9457 problem details object, exactly as it goes over the wire."""

    type: Annotated[str, msgspec.Meta(description="The problem type.", examples=["not-found"])]
    title: Annotated[str, msgspec.Meta(description="A short summary of the problem type.")]
    status: Annotated[int, msgspec.Meta(description="The HTTP status code.", examples=[404])]
    detail: Annotated[str, msgspec.Meta(description="What went wrong this time.")] = ""
    instance: Annotated[str, msgspec.Meta(description="The request path.")] = ""
    errors: Annotated[
        list[FieldError], msgspec.Meta(description="Validation failures: one per bad field.")
    ] = msgspec.field(default_factory=list)


class AppError(Exception):
    status = 500
    type = "internal-error"
    title = "Internal server error"
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def field_errors(self) -> list[FieldError]:
        return []


class NotFound(AppError):
    status = 404
    type = "not-found"
    title = "Resource not found"


class UnknownBrand(AppError):
    # 409, not 422: the request is well formed; it conflicts with the catalog's state.
    status = 409
    type = "unknown-brand"
    title = "Referenced brand does not exist"

    def __init__(self, brand_id: int) -> None:
        super().__init__(f"brand {brand_id} does not exist")
        self.brand_id = brand_id

    def field_errors(self) -> list[FieldError]:
        return [FieldError("body", "brand_id", self.detail)]


class DatabaseUnavailable(AppError):
    status = 503
    type = "database-unavailable"
    title = "Database unavailable"
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "1"}


# What an unreachable, restarting or stopped PostgreSQL raises through asyncpg.
DB_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused / reset / unreachable; includes TimeoutError
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed" after the server went away
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
)

# msgspec names the field inside a body either as " - at `$.field`" at the end of its
# message or as "... field `name`" (missing or unknown fields).
_AT_FIELD = re.compile(r" - at `\$\.?([^`]*)`$")
_NAMED_FIELD = re.compile(r"field `([^`]*)`$")


def _validation_errors(exc: InvalidRequestErrors) -> list[FieldError]:
    errors = []
    for problem in exc.detail:
        message, field = problem.message, problem.param
        if match := _AT_FIELD.search(message):
            message = message[: match.start()]
            field = match.group(1) or field
        elif match := _NAMED_FIELD.search(message):
            field = match.group(1)
        errors.append(FieldError(str(problem.location), field, message))
    return errors


def to_problem(exc: BaseException, instance: str) -> tuple[Problem, dict[str, str] | None]:
    """Map any exception to the problem we answer with (and extra headers)."""
    if isinstance(exc, DB_OUTAGE_ERRORS) and not isinstance(exc, AppError):
        log.warning("database unavailable: %r", exc)
        exc = DatabaseUnavailable("the database did not answer; try again shortly")
    if isinstance(exc, AppError):
        problem = Problem(
            type=exc.type,
            title=exc.title,
            status=exc.status,
            detail=exc.detail,
            instance=instance,
            errors=exc.field_errors(),
        )
        return problem, exc.headers
    if isinstance(exc, InvalidRequestErrors):
        errors = _validation_errors(exc)
        detail = "; ".join(f"{e.location} {e.field}: {e.message}" for e in errors)
        return Problem(
            type="invalid-request",
            title="The request is invalid",
            status=422,
            detail=detail,
            instance=instance,
            errors=errors,
        ), exc.headers
    if isinstance(exc, HTTPException):
        pd = exc.__problem_detail__(instance)
        return Problem(
            type=pd.type_,
            title=pd.title,
            status=pd.status,
            detail=str(pd.detail),
            instance=instance,
        ), exc.headers
    log.error("unhandled error at %s", instance, exc_info=exc)
    return Problem(
        type="internal-error",
        title="Internal server error",
        status=500,
        detail="the server failed to handle this request; it has been logged",
        instance=instance,
    ), None


_encode = msgspec.json.Encoder().encode


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _encode(problem), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers
    )


# LIHIL TRAP (problem details say `type_` on the wire): lihil's default handler encodes its
# ProblemDetail with a `type_` member. This solver replaces it for HTTPException (and, via
# `Exception`, for everything an endpoint raises), so every error is RFC 9457 on the wire.
@problem_solver  # type: ignore[untyped-decorator]
def _solve(req: Request, exc: HTTPException | Exception) -> Response:  # type: ignore[type-arg]
    problem, headers = to_problem(exc, req.url.path)
    return problem_response(problem, headers)


class ProblemMiddleware:
    """Plain ASGI middleware: lihil's own text/plain 404, 405 and 500 become problems.

    Unknown routes and wrong methods never reach an endpoint, so the solver above never
    sees them; exceptions raised outside an endpoint (a dependency's clean-up, say) too.
    """

    def __init__(
        self, app: Any, allowed_methods: Callable[[MutableMapping[str, Any]], Iterable[str]]
    ):
        self.app = app
        self.allowed_methods = allowed_methods

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = replaced = False

        async def _send(message: dict[str, Any]) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                ctype = dict(message.get("headers", ())).get(b"content-type", b"")
                if message["status"] in (404, 405) and ctype.startswith(b"text/plain"):
                    replaced = True
                    problem, headers = self._routing_problem(scope, message["status"])
                    return await problem_response(problem, headers)(scope, receive, send)
            elif replaced:
                return  # lihil's plain-text body: the problem went out instead
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except Exception as exc:
            if started:
                raise
            problem, headers = to_problem(exc, scope["path"])
            await problem_response(problem, headers)(scope, receive, send)

    def _routing_problem(
        self, scope: MutableMapping[str, Any], status: int
    ) -> tuple[Problem, dict[str, str] | None]:
        path = scope["path"]
        if status == 404:
            return Problem(
                "not-found", "Resource not found", 404, f"no route matches {path}", path
            ), None
        allow = ", ".join(sorted(self.allowed_methods(scope)))
        detail = f"{scope['method']} is not allowed on {path}; allowed: {allow}"
        return Problem("method-not-allowed", "Method not allowed", 405, detail, path), {
            "Allow": allow
        }
