"""Domain errors and their RFC 9457 problem+json rendering."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskhub.models import OrderStatus
from taskhub.routing import allowed_methods

logger = logging.getLogger("taskhub.errors")

PROBLEM_JSON = "application/problem+json"


def _omitted(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# A member that is left out when it has no value, never sent as null.
_OMITTED: Any = Field(default=None, json_schema_extra=_omitted)


class Problem(BaseModel):
    """An RFC 9457 problem document (application/problem+json)."""

    type: str = Field(description="A URI naming the kind of problem")
    title: str = Field(description="The kind of problem, in words")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What went wrong with this request")
    instance: str | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_omitted, description="The request's path"
    )


class ValidationIssue(BaseModel):
    """One reason a request was refused."""

    loc: list[str | int] = Field(
        description="Where: `body`, `query`, `path` or `header`, then names"
    )
    msg: str
    type: str | SkipJsonSchema[None] = _OMITTED


class ValidationProblem(Problem):
    """A request refused as malformed (400) or invalid (422); `errors` says where."""

    errors: list[ValidationIssue] | SkipJsonSchema[None] = _OMITTED


class TransitionProblem(Problem):
    """The order's state machine refused the transition (409)."""

    current_status: OrderStatus = Field(description="The order's status when it refused")


class AppError(Exception):
    """Base of every error a service may raise; rendered as problem+json."""

    status: int = 500
    type_slug: str = "internal-error"
    title: str = "Internal Server Error"
    # How the OpenAPI document shows it: the body's schema, and the response headers it
    # carries (name → always present).
    problem: ClassVar[type[Problem]] = Problem
    documented_headers: ClassVar[dict[str, bool]] = {}

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra


class BadRequest(AppError):
    """The request is malformed."""

    status, type_slug, title = 400, "bad-request", "Bad Request"
    problem = ValidationProblem


class Unauthorized(AppError):
    """Missing or invalid credentials."""

    status, type_slug, title = 401, "unauthorized", "Unauthorized"
    documented_headers = {"WWW-Authenticate": True}

    def __init__(self, detail: str = "Could not validate credentials", **extra: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extra)


class Forbidden(AppError):
    """Authenticated, but the rank is too low."""

    status, type_slug, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    """Absent, or not visible to the caller."""

    status, type_slug, title = 404, "not-found", "Not Found"


class Conflict(AppError):
    """The request conflicts with the resource's current state."""

    status, type_slug, title = 409, "conflict", "Conflict"
    documented_headers = {"Retry-After": False}  # when retrying may succeed


class InvalidTransition(Conflict):
    """A state machine refused a transition; carries the current status."""

    type_slug, title = "invalid-transition", "Invalid State Transition"
    problem = TransitionProblem
    documented_headers = {}

    def __init__(self, detail: str, *, current_status: str) -> None:
        super().__init__(detail, current_status=current_status)


class ConcurrentUpdate(Conflict):
    """A concurrent transaction got in the way (a deadlock, a serialization failure, a row
    deleted under the request); the same request, retried, is decided afresh."""

    type_slug, title = "concurrent-update", "Concurrent Update"
    documented_headers = {"Retry-After": True}

    def __init__(self, detail: str = "A concurrent change got in the way; retry") -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class InsufficientStock(Conflict):
    """A stock change would make stock negative."""

    type_slug, title = "insufficient-stock", "Insufficient Stock"
    documented_headers = {}


class PayloadTooLarge(AppError):
    """The request body is over MAX_BODY_BYTES."""

    status, type_slug, title = 413, "payload-too-large", "Payload Too Large"


class Unprocessable(AppError):
    """The request is well-formed but semantically invalid."""

    status, type_slug, title = 422, "validation-error", "Unprocessable Content"
    problem = ValidationProblem


class TooManyRequests(AppError):
    """Rate or quota limit reached."""

    status, type_slug, title = 429, "rate-limited", "Too Many Requests"
    documented_headers = {"Retry-After": True}

    def __init__(self, detail: str, *, retry_after: int | None = None, **extra: Any) -> None:
        headers = {"Retry-After": str(max(1, retry_after))} if retry_after is not None else None
        super().__init__(detail, headers=headers, **extra)


class ServiceUnavailable(AppError):
    """A dependency (database, Redis) is down."""

    status, type_slug, title = 503, "service-unavailable", "Service Unavailable"
    documented_headers = {"Retry-After": True}

    def __init__(self, detail: str = "A dependency is unavailable", retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


# Statuses that plain HTTPExceptions (the framework, the edge middleware) also produce: they
# get the same `type` and `title` as the domain error of that status.
_HTTP_STATUS_ERRORS: dict[int, type[AppError]] = {413: PayloadTooLarge}


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_slug: str | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    **extra: Any,
) -> Response:
    """Render one problem+json response."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": f"https://taskhub.dev/problems/{type_slug or _slug(phrase)}",
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(
        orjson.dumps(body, default=str),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _slug(phrase: str) -> str:
    return phrase.lower().replace(" ", "-").replace("'", "")


PROBLEMS_KEY = "x-taskhub-problems"


def problem_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry naming the errors a route may answer with.

    taskhub.openapi turns each into its problem+json response (schema and headers), and adds
    the answers every operation may give.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for err in errors:
        entry = out.setdefault(err.status, {"description": err.title, PROBLEMS_KEY: []})
        entry[PROBLEMS_KEY].append(err.__name__)
    return out


def error_classes() -> dict[str, type[AppError]]:
    """Every AppError subclass, by name."""
    found: dict[str, type[AppError]] = {AppError.__name__: AppError}
    pending: list[type[AppError]] = [AppError]
    while pending:
        for sub in pending.pop().__subclasses__():
            found[sub.__name__] = sub
            pending.append(sub)
    return found


_UNAVAILABLE = "The database is unavailable; retry shortly"
# SQLSTATE prefixes that mean the database cannot serve the request right now: connection
# exceptions (08), insufficient resources such as too many connections (53), operator
# intervention such as a shutdown, the database starting up or a statement timeout (57),
# an unknown database (3D), refused credentials (28), a lock not available (55P03), a write
# refused as read-only (25006: after a failover, a connection left on a standby).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57", "3D", "28", "55P03", "25006")
_CONCURRENT_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock


def database_error(exc: BaseException) -> AppError | None:
    """The problem a database failure means for the client; None for one that is a bug.

    The one map of database errors, for SQLAlchemy's exceptions and the driver's (asyncpg,
    sqlite3) alike. Nothing in it echoes the database's own message.
    """
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, PoolTimeoutError | OSError | TimeoutError | asyncpg.InterfaceError):
        return ServiceUnavailable(_UNAVAILABLE)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return ServiceUnavailable(_UNAVAILABLE)
    sqlstate = _sqlstate(exc)
    if sqlstate is None:
        if isinstance(exc, OperationalError | InterfaceError):
            return ServiceUnavailable(_UNAVAILABLE)  # SQLite busy or locked, a lost connection
        if isinstance(exc, IntegrityError):
            return ConcurrentUpdate()  # SQLite: a row referenced was deleted meanwhile
        if isinstance(exc, DataError):
            return _refused_value()
        return None
    if sqlstate.startswith("22"):
        return _refused_value()
    if sqlstate in _CONCURRENT_SQLSTATES or sqlstate.startswith("23"):
        # An integrity violation the service did not anticipate is a race: a referenced row
        # deleted, a unique value taken, meanwhile.
        return ConcurrentUpdate()
    if sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
        return ServiceUnavailable(_UNAVAILABLE)
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same work later may succeed: the database (or the pool) was
    unavailable, or a concurrent transaction got in the way."""
    return isinstance(database_error(exc), ServiceUnavailable | ConcurrentUpdate)


def _sqlstate(exc: BaseException) -> str | None:
    for candidate in (exc, getattr(exc, "orig", None), getattr(exc, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None)
    code = getattr(cause, "sqlstate", None)
    return code if isinstance(code, str) else None


def _refused_value() -> Unprocessable:
    return Unprocessable(
        "A value in the request cannot be stored "
        "(for example a NUL character in text, or a number out of range)"
    )


def _json_safe_errors(errors: Any) -> list[dict[str, Any]]:
    safe: list[dict[str, Any]] = []
    for err in errors:
        item = {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
        safe.append(item)
    return safe


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, from the domain, routing, validation or the database, as a problem.

    The OpenAPI document describes the same answers (taskhub.openapi).
    """

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return problem_response(
            exc.status,
            exc.detail,
            title=exc.title,
            type_slug=exc.type_slug,
            headers=exc.headers,
            instance=request.url.path,
            **exc.extra,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Some route serves this path: name every method of every such route.
            allow = ", ".join(allowed_methods(request.app, request.url.path))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            headers = {**(headers or {}), "Allow": allow}
        known = _HTTP_STATUS_ERRORS.get(exc.status_code)
        return problem_response(
            exc.status_code,
            str(exc.detail),
            title=known.title if known else None,
            type_slug=known.type_slug if known else None,
            headers=headers,
            instance=request.url.path,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = _json_safe_errors(exc.errors())
        # A body that is not valid JSON at all is a malformed request, not a validation error.
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(
                400, "The request body is not valid JSON", errors=errors, instance=request.url.path
            )
        return problem_response(
            422,
            "The request failed validation",
            title="Unprocessable Content",
            type_slug="validation-error",
            errors=errors,
            instance=request.url.path,
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeoutError)
    @app.exception_handler(OSError)
    @app.exception_handler(asyncpg.PostgresError)
    @app.exception_handler(asyncpg.InterfaceError)
    async def _database_error(request: Request, exc: Exception) -> Response:
        error = database_error(exc)
        if error is None:
            logger.exception("database error")
            return problem_response(
                500, "An unexpected database error occurred", instance=request.url.path
            )
        if isinstance(error, ServiceUnavailable):
            logger.warning("dependency unavailable: %s", exc.__class__.__name__)
        return await _app_error(request, error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> Response:
        logger.exception("unhandled error")
        return problem_response(500, "An unexpected error occurred", instance=request.url.path)
