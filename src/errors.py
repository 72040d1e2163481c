"""The app's errors and the one place that maps them to the wire.

    Exception
    ├── AppError                 domain errors, raised by queries and routes
    │   ├── BadRequest           400  a request the edge will not route (its Host)
    │   ├── NotFound             404  a product or brand that does not exist, or no route
    │   ├── MethodNotAllowed     405  a method the route does not serve (`Allow` lists them)
    │   ├── UpgradeRequired      426  plain HTTP to a WebSocket endpoint
    │   ├── UnknownBrand         409  a write names a brand_id that does not exist
    │   ├── BrandInUse           409  a brand deleted while a product names it
    │   ├── InsufficientStock    409  a stock change that would take a SKU's stock below 0
    │   ├── StockOverflow        409  a stock change that would take it past 2,147,483,647
    │   ├── PreconditionFailed   412  If-Match names a version the resource no longer has
    │   ├── Unauthorized         401  a catalog write without a valid token (`src.auth`)
    │   ├── TooManyRequests      429  writes over WRITE_RATE_PER_MIN (`src.limits`)
    │   ├── BodyTooLarge         413  a body over MAX_BODY_BYTES (the edge)
    │   ├── UnsupportedMediaType 415  a body not declared as JSON (the edge)
    │   ├── InvalidRequest       422  bad input (lihil's InvalidRequestErrors, translated)
    │   ├── ClientGone           499  the client left mid-request (starlette's
    │                                 ClientDisconnect, translated): counted, never logged
    │   ├── DatabaseUnavailable  503  raised at the database boundary (`src.db.pool`) from
    │                                 connection errors only
    │   └── BrokerUnavailable    503  the broker (Redis) cannot be reached: GET /ready; a
    │                                 session room it cannot admit to globally closes 1013
    ├── lihil HTTPException      lihil's own
    └── anything else            500  logged with its traceback, never shown to the client

Every HTTP error leaves as RFC 9457 `application/problem+json`: `type`, `title`,
`status`, `detail`, `instance`, plus `errors` (location, field, message per bad field)
for validation failures. `to_problem` is the one mapping; `src.edge` puts problems on the
wire for errors no endpoint saw. WebSocket close codes are `Close`, below.
Each AppError's docstring describes it in the OpenAPI document.
"""

import logging
import re
from enum import IntEnum
from typing import Annotated

import msgspec
from lihil import HTTPException, Request, Response
from lihil.problems import InvalidRequestErrors, problem_solver
from starlette.requests import ClientDisconnect

from src.logs import request_id

log = logging.getLogger("catalog.errors")
PROBLEM_JSON = "application/problem+json"


class Close(IntEnum):
    """WebSocket close codes (API.md "WebSockets")."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down
    ABNORMAL = 1006  # recorded, never sent: the connection dropped without a close frame
    UNSUPPORTED = 1003  # a binary frame where only text is accepted
    POLICY = 1008  # too slow to read: send queue overflowed
    TOO_BIG = 1009  # larger than WS_MAX_MESSAGE_BYTES
    TRY_AGAIN_LATER = 1013  # a resource this endpoint needs is unavailable for now
    BAD_PARAMETER = 4400
    FORBIDDEN = 4403
    GONE = 4410  # /ws/catalog: `after` is older than the retained window
    FULL = 4429


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
    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def field_errors(self) -> list[FieldError]:
        return []


class BadRequest(AppError):
    """`bad-request`: the request is malformed, or names a host this server does not serve."""

    status = 400
    type = "bad-request"
    title = "Bad request"


class MethodNotAllowed(AppError):
    """`method-not-allowed`: the route does not serve this method (`Allow` lists those it
    does)."""

    status = 405
    type = "method-not-allowed"
    title = "Method not allowed"

    def __init__(self, method: str, path: str, allow: str) -> None:
        super().__init__(f"{method} is not allowed on {path}; allowed: {allow}")
        self.headers = {"Allow": allow}


class UpgradeRequired(AppError):
    """`upgrade-required`: a WebSocket endpoint asked with plain HTTP."""

    status = 426
    type = "upgrade-required"
    title = "Upgrade required"
    headers = {"Upgrade": "websocket"}  # noqa: RUF012  (never mutated)


class ClientGone(AppError):
    """The client closed the connection before the request was read (never reaches it)."""

    status = 499
    type = "client-closed-request"
    title = "Client closed request"


class NotFound(AppError):
    """Not found (`not-found`)."""

    status = 404
    type = "not-found"
    title = "Resource not found"


class UnknownBrand(AppError):
    """`unknown-brand`: brand_id names no brand (the `errors` entry says so)."""

    # 409, not 422: the request is well formed; it conflicts with the catalog's state.
    status = 409
    type = "unknown-brand"
    title = "Referenced brand does not exist"

    def __init__(self, brand_id: int) -> None:
        super().__init__(f"brand {brand_id} does not exist")
        self.brand_id = brand_id

    def field_errors(self) -> list[FieldError]:
        return [FieldError("body", "brand_id", self.detail)]


class BrandInUse(AppError):
    """`brand-in-use`: the brand cannot be deleted while a product names it."""

    status = 409
    type = "brand-in-use"
    title = "Brand in use"

    def __init__(self, brand_id: int) -> None:
        super().__init__(f"brand {brand_id} is named by products: move or delete them first")


class InsufficientStock(AppError):
    """`insufficient-stock`: the SKU has fewer in stock than the change takes away; nothing
    changed (GET the SKU for its stock)."""

    status = 409
    type = "insufficient-stock"
    title = "Insufficient stock"

    def __init__(self, sku_id: int, delta: int) -> None:
        super().__init__(
            f"sku {sku_id} has fewer than {-delta} in stock, so a delta of {delta} would take"
            " it below 0; nothing changed: GET the SKU for its stock"
        )


class StockOverflow(AppError):
    """`stock-overflow`: the change would take the SKU's stock past 2,147,483,647; nothing
    changed."""

    status = 409
    type = "stock-overflow"
    title = "Stock limit exceeded"

    def __init__(self, sku_id: int, delta: int) -> None:
        super().__init__(
            f"a delta of {delta} would take the stock of sku {sku_id} past 2147483647,"
            " the most it can hold; nothing changed"
        )


class PreconditionFailed(AppError):
    """`precondition-failed`: the resource changed since the ETag given in If-Match (GET it
    again); nothing was changed."""

    status = 412
    type = "precondition-failed"
    title = "Precondition failed"


class InvalidRequest(AppError):
    """`invalid-request`: one `errors` entry per bad field (location, field, message)."""

    status = 422
    type = "invalid-request"
    title = "The request is invalid"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.location} {e.field}: {e.message}" for e in errors))
        self.errors = errors

    def field_errors(self) -> list[FieldError]:
        return self.errors


class Unauthorized(AppError):
    """`unauthorized`: a catalog write without a valid bearer token (`WWW-Authenticate`
    says why, as RFC 6750 asks)."""

    status = 401
    type = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(detail)
        challenge = 'Bearer realm="catalog"'
        if error:  # no error code when the request carried no credentials at all
            challenge += f', error="{error}", error_description="{detail}"'
        self.headers = {"WWW-Authenticate": challenge}


class TooManyRequests(AppError):
    """`too-many-requests`: over WRITE_RATE_PER_MIN for this client address; retry after
    `Retry-After` seconds."""

    status = 429
    type = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}


class BodyTooLarge(AppError):
    """`body-too-large`: the request body exceeds MAX_BODY_BYTES."""

    status = 413
    type = "body-too-large"
    title = "Request body too large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes (MAX_BODY_BYTES)")


class UnsupportedMediaType(AppError):
    """`unsupported-media-type`: a request body that is not declared as JSON."""

    status = 415
    type = "unsupported-media-type"
    title = "Unsupported media type"


class Unavailable(AppError):
    """A 503: something the service needs does not answer; retry after `Retry-After`."""

    status = 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": "1"}


class DatabaseUnavailable(Unavailable):
    """The database did not answer (`database-unavailable`); retry after `Retry-After`."""

    type = "database-unavailable"
    title = "Database unavailable"


class BrokerUnavailable(Unavailable):
    """The broker (Redis) cannot be reached (`broker-unavailable`): each process serves its
    own WebSocket clients only until it is back; retry after `Retry-After`."""

    type = "broker-unavailable"
    title = "Broker unavailable"


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
    if isinstance(exc, InvalidRequestErrors):
        exc = InvalidRequest(_validation_errors(exc))
    elif isinstance(exc, ClientDisconnect):  # mid-body: nobody to answer, nothing to log
        exc = ClientGone("the client closed the connection before its body arrived")
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
    rid = request_id.get()
    return Problem(
        type="internal-error",
        title="Internal server error",
        status=500,
        detail="the server failed to handle this request; it has been logged"
        + (f" (request {rid})" if rid else ""),
        instance=instance,
    ), None


_encode = msgspec.json.Encoder().encode


def encode_problem(problem: Problem) -> bytes:
    return _encode(problem)


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _encode(problem), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers
    )


def _solve(req: Request, exc: HTTPException | Exception) -> Response:  # type: ignore[type-arg]
    problem, headers = to_problem(exc, req.url.path)
    return problem_response(problem, headers)


def install_problem_solver() -> None:
    """LIHIL TRAP (problem details say `type_` on the wire): lihil's default handler encodes
    its ProblemDetail with a `type_` member. This solver replaces it for HTTPException (and,
    via `Exception`, for everything an endpoint raises), so every error is RFC 9457 on the
    wire. lihil keeps solvers in a module-wide registry, by exception type: installing it
    again replaces it. The app factory calls it."""
    problem_solver(_solve)
