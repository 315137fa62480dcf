"""Routes of orders: /orders."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from taskhub import idempotency
from taskhub.auth.dependencies import CurrentUser, VerifiedToken
from taskhub.dependencies import IdPath, SettingsDep, TransactionDep
from taskhub.errors import (
    Conflict,
    InvalidTransition,
    NotFound,
    Unauthorized,
    Unprocessable,
    problem_responses,
)
from taskhub.idempotency import IdempotencyKeyHeader
from taskhub.models import OrderStatus
from taskhub.openapi import replayable
from taskhub.orders import documents as service_documents
from taskhub.orders import service
from taskhub.orders.schemas import OrderCreateIn, OrderOut
from taskhub.pagination import (
    CursorQuery,
    LimitQuery,
    Page,
    decode_cursor,
    page_response,
    split_page,
)
from taskhub.responses import json_bytes, json_response
from taskhub.routing import V2, PrefixRouter

router = PrefixRouter(prefix=f"{V2}/orders", tags=["orders"])
TRANSITION_ERRORS = problem_responses(Unauthorized, NotFound, InvalidTransition)


@router.post(
    "",
    status_code=201,
    response_model=OrderOut,
    responses={**problem_responses(Unauthorized, Conflict, Unprocessable), **replayable(201)},
)
async def create_order(
    request: Request,
    body: OrderCreateIn,
    token: VerifiedToken,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Place an order (PENDING); a worker reserves its stock shortly after."""
    state = request.app.state
    placed = await service.place_order(
        state.database,
        token=token,
        lines=body.items,
        max_open_orders=state.settings.max_open_orders_per_user,
        idempotency_key=idempotency_key,
        fingerprint=body.model_dump_json().encode() if idempotency_key else b"",
    )
    if isinstance(placed.body, bytes):
        created = Response(placed.body, status_code=placed.status, media_type="application/json")
    else:
        created = json_response(placed.body, status_code=placed.status)
    if placed.location:
        created.headers["Location"] = placed.location
    if placed.replayed:
        created.headers["Idempotent-Replayed"] = "true"
    return created


@router.get("", response_model=Page[OrderOut], responses=problem_responses(Unauthorized))
async def list_orders(
    user: CurrentUser,
    db: TransactionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: Annotated[OrderStatus | None, Query(description="Only orders in this state")] = None,
) -> Response:
    """Newest first: your orders (site admins: everyone's)."""
    before = decode_cursor(cursor, size=1, kinds=(int,))
    documents = await service_documents.list_orders(
        db,
        user_id=user.id,
        everyone=user.is_superuser,
        limit=limit + 1,
        before_id=before[0] if before else None,
        status=status.value if status is not None else None,
    )
    page, next_cursor = split_page(documents, limit, lambda document: [document["id"]])
    return page_response(page, next_cursor)


@router.get(
    "/{order_id}", response_model=OrderOut, responses=problem_responses(Unauthorized, NotFound)
)
async def read_order(order_id: IdPath, request: Request, token: VerifiedToken) -> Response:
    """One order with its lines, total and state."""
    db = request.app.state.database.pooled
    return json_response(await service_documents.read_order(db, order_id=order_id, token=token))


@router.post("/{order_id}/confirm", response_model=OrderOut, responses=TRANSITION_ERRORS)
async def confirm_order(
    order_id: IdPath, user: CurrentUser, db: TransactionDep, settings: SettingsDep
) -> Response:
    """RESERVED → CONFIRMED (stops the reservation from expiring)."""
    return json_response(
        await service.confirm_order(
            db,
            order_id=order_id,
            user_id=user.id,
            is_admin=user.is_superuser,
            reservation_ttl=settings.reservation_ttl,
        )
    )


@router.post(
    "/{order_id}/pay",
    response_model=OrderOut,
    responses={
        **problem_responses(Unauthorized, NotFound, InvalidTransition, Conflict, Unprocessable),
        **replayable(200),
    },
)
async def pay_order(
    order_id: IdPath,
    request: Request,
    user: CurrentUser,
    db: TransactionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """RESERVED | CONFIRMED → PAID; the reserved stock is sold."""
    claim = await idempotency.claim(
        db,
        user_id=user.id,
        scope=f"POST /api/v2/orders/{order_id}/pay",
        key=idempotency_key,
        fingerprint=await request.body(),
    )
    if claim.replay is not None:
        return claim.replay
    document = await service.pay_order(
        db,
        order_id=order_id,
        user_id=user.id,
        is_admin=user.is_superuser,
        reservation_ttl=settings.reservation_ttl,
    )
    await claim.store(db, status=200, body=json_bytes(document))
    return json_response(document)


@router.post("/{order_id}/cancel", response_model=OrderOut, responses=TRANSITION_ERRORS)
async def cancel_order(order_id: IdPath, user: CurrentUser, db: TransactionDep) -> Response:
    """Cancel an order that is not PAID, CANCELLED or FAILED; held stock is released."""
    return json_response(
        await service.cancel_order(
            db, order_id=order_id, user_id=user.id, is_admin=user.is_superuser
        )
    )
