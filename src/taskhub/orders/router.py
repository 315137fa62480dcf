"""Routes of orders: /orders."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from taskhub import idempotency
from taskhub.auth.dependencies import CurrentUser, TokenSubject, load_caller
from taskhub.auth.principal import Principal
from taskhub.dependencies import IdPath, SessionDep, session_scope
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
from taskhub.orders import documents, service
from taskhub.orders.schemas import OrderCreateIn, OrderItemOut, OrderOut
from taskhub.orders.service import OrderWithItems
from taskhub.pagination import (
    CursorQuery,
    LimitQuery,
    Page,
    decode_cursor,
    split_page,
)
from taskhub.responses import json_response, model_response
from taskhub.routing import V2, PrefixRouter

router = PrefixRouter(prefix=f"{V2}/orders", tags=["orders"])
TRANSITION_ERRORS = problem_responses(Unauthorized, NotFound, InvalidTransition)


def order_out(view: OrderWithItems) -> OrderOut:
    """The API shape of an order and its lines."""
    o = view.order
    return OrderOut(
        id=o.id,
        user_id=o.user_id,
        status=o.status,
        status_reason=o.status_reason,
        total_cents=o.total_cents,
        items=[
            OrderItemOut(
                product_id=i.product_id, quantity=i.quantity, unit_price_cents=i.unit_price_cents
            )
            for i in view.items
        ],
        created_at=o.created_at,
        updated_at=o.updated_at,
        reserved_at=o.reserved_at,
        confirmed_at=o.confirmed_at,
        paid_at=o.paid_at,
        cancelled_at=o.cancelled_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=OrderOut,
    responses={**problem_responses(Unauthorized, Conflict, Unprocessable), **replayable(201)},
)
async def create_order(
    request: Request,
    body: OrderCreateIn,
    user_id: TokenSubject,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Place an order (PENDING); a worker reserves its stock shortly after."""
    state = request.app.state
    max_open_orders = state.settings.max_open_orders_per_user
    if idempotency_key is None and state.engine.dialect.name == "postgresql":
        # The common case, as one statement on the driver: no session, no transaction block;
        # the statement also checks the account (the token alone was read so far).
        order = await service.place_order(
            state.engine, user_id=user_id, lines=body.items, max_open_orders=max_open_orders
        )
        state.announcer.announce()
        created = json_response(order, status_code=201)
        created.headers["Location"] = f"/api/v2/orders/{order['id']}"
        return created
    user = await load_caller(request, user_id)
    async with session_scope(request) as session:
        return await _create_in_session(session, body, user, max_open_orders, idempotency_key)


async def _create_in_session(
    session: AsyncSession,
    body: OrderCreateIn,
    user: Principal,
    max_open_orders: int,
    idempotency_key: str | None,
) -> Response:
    claim = await idempotency.claim(
        session,
        user_id=user.id,
        scope="POST /api/v2/orders",
        key=idempotency_key,
        fingerprint=body.model_dump_json().encode(),
    )
    if claim.replay is not None:
        return claim.replay
    view = await service.create_order(
        session, user=user, lines=body.items, max_open_orders=max_open_orders
    )
    out = order_out(view)
    location = f"/api/v2/orders/{view.order.id}"
    created = model_response(out, status_code=201)
    created.headers["Location"] = location
    claim.store(status=201, body=bytes(created.body), location=location)
    return created


@router.get("", responses=problem_responses(Unauthorized))
async def list_orders(
    user: CurrentUser,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: Annotated[OrderStatus | None, Query(description="Only orders in this state")] = None,
) -> Page[OrderOut]:
    """Newest first: your orders (site admins: everyone's)."""
    before = decode_cursor(cursor, size=1, kinds=(int,))
    views = await service.list_orders(
        session, user=user, limit=limit, before_id=before[0] if before else None, status=status
    )
    page, next_cursor = split_page(views, limit, lambda view: [view.order.id])
    return Page[OrderOut](items=[order_out(v) for v in page], next_cursor=next_cursor)


@router.get(
    "/{order_id}", response_model=OrderOut, responses=problem_responses(Unauthorized, NotFound)
)
async def read_order(order_id: IdPath, request: Request, user_id: TokenSubject) -> Response:
    """One order with its lines, total and state."""
    engine = request.app.state.engine
    return json_response(await documents.read_order(engine, order_id=order_id, user_id=user_id))


@router.post("/{order_id}/confirm", responses=TRANSITION_ERRORS)
async def confirm_order(order_id: IdPath, user: CurrentUser, session: SessionDep) -> OrderOut:
    """RESERVED → CONFIRMED (stops the reservation from expiring)."""
    return order_out(await service.confirm_order(session, order_id=order_id, user=user))


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
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """RESERVED | CONFIRMED → PAID; the reserved stock is sold."""
    claim = await idempotency.claim(
        session,
        user_id=user.id,
        scope=f"POST /api/v2/orders/{order_id}/pay",
        key=idempotency_key,
        fingerprint=await request.body(),
    )
    if claim.replay is not None:
        return claim.replay
    out = order_out(await service.pay_order(session, order_id=order_id, user=user))
    claim.store(status=200, body=out.model_dump_json().encode())
    return out


@router.post("/{order_id}/cancel", responses=TRANSITION_ERRORS)
async def cancel_order(order_id: IdPath, user: CurrentUser, session: SessionDep) -> OrderOut:
    """Cancel an order that is not PAID, CANCELLED or FAILED; held stock is released."""
    return order_out(await service.cancel_order(session, order_id=order_id, user=user))
