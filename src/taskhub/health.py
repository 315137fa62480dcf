"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import text

from taskhub.errors import Problem, problem_response
from taskhub.fields import OMITTED
from taskhub.migrate import current_revision, head_revision
from taskhub.openapi import header

router = APIRouter(tags=["operations"])


class HealthOut(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class ReadyChecks(BaseModel):
    """Each dependency's state: `ok`, or why not."""

    database: str = Field(description="`ok`, or `unavailable: <error>`")
    migrations: Annotated[
        str | SkipJsonSchema[None],
        Field(
            description="`ok`, or `at <revision>, head is <revision>`; absent when the "
            "database is unavailable"
        ),
    ] = OMITTED
    redis: str = Field(
        description="`ok`, `unavailable: <error>`, or `not configured (embedded events)`"
    )


class ReadyOut(BaseModel):
    """Every dependency is ready."""

    status: Literal["ready"]
    checks: ReadyChecks


class ReadinessProblem(Problem):
    """Not ready: `checks` says which dependency is not."""

    checks: ReadyChecks


@router.get("/health")
async def health() -> HealthOut:
    """Liveness: the process answers."""
    return HealthOut(status="ok")


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={
        503: {
            "model": ReadinessProblem,
            "description": "A dependency is not ready",
            "headers": {"Retry-After": header("Retry-After", required=True)},
        },
    },
)
async def ready(request: Request) -> Response:
    """Readiness: the database answers at the head migration, and Redis answers if configured."""
    state = request.app.state
    checks: dict[str, Any] = {}
    ok = True
    try:
        async with asyncio.timeout(3):
            async with state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                revision = await conn.run_sync(current_revision)
        head = head_revision()
        checks["database"] = "ok"
        checks["migrations"] = "ok" if revision == head else f"at {revision}, head is {head}"
        ok = ok and revision == head
    except Exception as exc:  # any failure to reach the database means not ready
        checks["database"] = f"unavailable: {exc.__class__.__name__}"
        ok = False
    if state.redis is not None:
        try:
            async with asyncio.timeout(2):
                await state.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # Redis down: orders still work through the outbox
            checks["redis"] = f"unavailable: {exc.__class__.__name__}"
            ok = False
    else:
        checks["redis"] = "not configured (embedded events)"
    if not ok:
        failing = [
            f"{name}: {state}"
            for name, state in checks.items()
            if state != "ok" and not str(state).startswith("not configured")
        ]
        return problem_response(
            503,
            "Not ready (" + "; ".join(failing) + ")",
            type_slug="service-unavailable",
            headers={"Retry-After": "5"},
            instance=request.url.path,
            checks=checks,
        )
    return Response(
        orjson.dumps({"status": "ready", "checks": checks}), media_type="application/json"
    )


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus exposition, with the pipeline gauges refreshed first."""
    refresh = getattr(request.app.state, "refresh_metrics", None)
    if refresh is not None:
        await refresh()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
