"""Orders: creation, reads, and the guarded transitions of design §3.

Every transition is one conditional UPDATE (`... WHERE status IN (...)`); when it matches
nothing the order is either invisible to the caller (404) or in another state (409, with the
current status). Stock is touched only through taskhub.catalog.inventory; events are written
only through taskhub.messaging.outbox. Each use case is one function; where the two databases
differ, the difference is one statement variant inside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Integer,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)

from taskhub import idempotency
from taskhub.auth.tokens import valid_caller
from taskhub.catalog import inventory
from taskhub.db import UTCDateTime, table_of, utcnow
from taskhub.driver import (
    Database,
    DriverStatement,
    Executor,
    claimed_once,
    in_constants,
    in_list,
)
from taskhub.errors import Conflict, InvalidTransition, NotFound, Unauthorized, Unprocessable
from taskhub.messaging import outbox
from taskhub.models import Order, OrderItem, OrderStatus, Product, User
from taskhub.models.order import OPEN_STATUSES
from taskhub.orders.documents import order_by_id, order_document
from taskhub.orders.events import (
    ORDER_CANCELLED,
    ORDER_CONFIRMED,
    ORDER_CREATED,
    ORDER_PAID,
    CancelReason,
    order_payload,
)
from taskhub.orders.schemas import MAX_QUANTITY, OrderLineIn
from taskhub.responses import json_bytes
from taskhub.security import TokenClaims

MAX_TOTAL_CENTS = 2**31 - 1
_orders, _items = table_of(Order), table_of(OrderItem)
_users, _products = table_of(User), table_of(Product)
_OPEN = [status.value for status in OPEN_STATUSES]


# --- creation ---------------------------------------------------------------------------------

# Serializes one user's creations while the open-order quota is counted: READ COMMITTED, so
# the count in the next statement sees every order committed before the lock was granted.
# FOR NO KEY UPDATE, not FOR UPDATE: the foreign keys of the idempotency key and the order
# take FOR KEY SHARE on this row, which FOR UPDATE would wait for (and deadlock with).
LOCK_CALLER = DriverStatement(valid_caller(_users.c.id).with_for_update(key_share=True))
# The token is still valid (auth.tokens.valid_caller), its account key-share locked so that it
# cannot be deleted under the statement that writes its order.
_account = valid_caller(_users.c.id, lock=True).cte("account")
_active = exists(select(_account.c.id))
# The user's open orders, counted only with a quota (:quota > 0): without one the count is
# never needed, and it grows with the user's orders.
_open_orders = case(
    (
        bindparam("quota", type_=Integer()) > 0,
        select(func.count())
        .where(
            _orders.c.user_id == bindparam("user_id", type_=Integer()),
            in_constants(_orders.c.status, _OPEN),
        )
        .scalar_subquery(),
    ),
    else_=0,
)
# What decides a creation, read in one statement: the account, the open orders, the prices.
CALLER_AND_QUOTA = DriverStatement(
    select(
        _active.label("active"),
        _open_orders.label("open_orders"),
    )
)
PRICES = DriverStatement(
    select(_products.c.id.label("product_id"), _products.c.price_cents).where(
        in_list(_products.c.id, "product_ids"), _products.c.deleted_at.is_(None)
    )
)
INSERT_ORDER = DriverStatement(
    insert(_orders)
    .values(
        user_id=bindparam("user_id"),
        status=OrderStatus.PENDING.value,
        total_cents=bindparam("total_cents"),
    )
    .returning(_orders.c.id, _orders.c.created_at, _orders.c.updated_at)
)
INSERT_ITEM = DriverStatement(
    insert(_items).values(
        order_id=bindparam("order_id"),
        product_id=bindparam("product_id"),
        quantity=bindparam("quantity"),
        unit_price_cents=bindparam("unit_price_cents"),
    )
)


def _place_order_statement() -> DriverStatement:
    """PostgreSQL: the whole creation as one statement (a data-modifying CTE).

    Prices, the order, its lines and its order.created event come from one snapshot and are
    written together or not at all. The order row is only inserted if the account is active,
    every product is orderable, the total fits and (with a quota) the user has room. Every
    priced line comes back with the new order's columns (NULL when nothing was written), the
    account's state and the open-order count, so that a refusal can be explained exactly as
    the step-by-step variant explains it. Products are read FOR KEY SHARE: an archive that
    commits first is seen (the row is rechecked), one that comes later waits for this order.
    """
    line = (
        func.unnest(
            bindparam("product_ids", type_=ARRAY(Integer())),
            bindparam("quantities", type_=ARRAY(Integer())),
        )
        .table_valued("product_id", "quantity")
        .render_derived(name="line")
    )
    priced = (
        select(line.c.product_id, line.c.quantity, _products.c.price_cents)
        .join(
            _products,
            and_(_products.c.id == line.c.product_id, _products.c.deleted_at.is_(None)),
        )
        .with_for_update(read=True, key_share=True, of=_products)
        .cte("priced")
    )
    total = func.sum(cast(priced.c.quantity, BigInteger()) * priced.c.price_cents)
    quota = bindparam("quota", type_=Integer())
    new_order = (
        insert(_orders)
        .from_select(
            ["user_id", "status", "total_cents"],
            select(
                bindparam("user_id", type_=Integer()),
                literal(OrderStatus.PENDING.value),
                total,
            )
            .select_from(priced)
            .having(
                and_(
                    func.count() == bindparam("lines", type_=Integer()),
                    _active,
                    total <= MAX_TOTAL_CENTS,
                    or_(quota == 0, _open_orders < quota),
                )
            ),
        )
        .returning(
            _orders.c.id,
            _orders.c.user_id,
            _orders.c.total_cents,
            _orders.c.created_at,
            _orders.c.updated_at,
        )
        .cte("new_order")
    )
    items = (
        insert(_items)
        .from_select(
            ["order_id", "product_id", "quantity", "unit_price_cents"],
            select(
                new_order.c.id, priced.c.product_id, priced.c.quantity, priced.c.price_cents
            ).select_from(new_order.join(priced, true())),
        )
        .cte("items")
    )
    # The payload `order_payload` builds on SQLite, built by the database.
    event = outbox.insert_selected(
        select(new_order.c.id).select_from(new_order),
        payload=func.json_build_object(
            literal_column("'order_id'"),
            new_order.c.id,
            literal_column("'user_id'"),
            new_order.c.user_id,
            literal_column("'status'"),
            literal_column(f"'{OrderStatus.PENDING.value}'"),
            literal_column("'total_cents'"),
            new_order.c.total_cents,
        ),
    ).cte("event")
    one = select(literal(1).label("one")).subquery("one")
    return DriverStatement(
        select(
            priced.c.product_id,
            priced.c.price_cents,
            new_order.c.id,
            new_order.c.created_at,
            new_order.c.updated_at,
            _active.label("active"),
            _open_orders.label("open_orders"),
        )
        .select_from(one.outerjoin(priced, true()).outerjoin(new_order, true()))
        .add_cte(items, event)
    )


PLACE_ORDER = _place_order_statement()


class _Lines:
    """An order's lines merged per product (quantities added), checked against the caps."""

    def __init__(self, lines: Sequence[OrderLineIn]) -> None:
        self.merged: dict[int, int] = {}
        self.first_index: dict[int, int] = {}
        for index, line in enumerate(lines):
            self.merged[line.product_id] = self.merged.get(line.product_id, 0) + line.quantity
            self.first_index.setdefault(line.product_id, index)
        too_many = [pid for pid, qty in self.merged.items() if qty > MAX_QUANTITY]
        if too_many:
            raise Unprocessable(
                f"At most {MAX_QUANTITY} units per product (after merging lines)",
                errors=[self._error(pid, "quantity", "too many units") for pid in too_many],
            )
        self.product_ids = sorted(self.merged)

    def total(self, prices: Mapping[int, int]) -> int:
        """The order total at these prices; 422 if a product is unknown or it is too large."""
        unknown = [pid for pid in self.product_ids if pid not in prices]
        if unknown:
            raise Unprocessable(
                "Unknown product(s): " + ", ".join(str(pid) for pid in unknown),
                errors=[
                    self._error(pid, "product_id", f"unknown product {pid}") for pid in unknown
                ],
            )
        total = sum(prices[pid] * qty for pid, qty in self.merged.items())
        if total > MAX_TOTAL_CENTS:
            raise Unprocessable(f"The order total may not exceed {MAX_TOTAL_CENTS} cents")
        return total

    def _error(self, pid: int, field: str, msg: str) -> dict[str, object]:
        return {"loc": ["body", "items", self.first_index[pid], field], "msg": msg}


@dataclass(frozen=True, slots=True)
class _Written:
    """What writing an order found: the new order's row (None if refused), the prices of
    the orderable products, whether the account is active, and its open orders."""

    created: Mapping[str, Any] | None
    prices: dict[int, int]
    active: bool
    open_orders: int


@dataclass(frozen=True, slots=True)
class Placed:
    """The answer to a creation: a new order's document, or a replayed earlier answer."""

    status: int
    body: dict[str, Any] | bytes
    location: str | None
    replayed: bool = False


async def place_order(
    database: Database,
    *,
    token: TokenClaims,
    lines: Sequence[OrderLineIn],
    max_open_orders: int,
    idempotency_key: str | None = None,
    fingerprint: bytes = b"",
) -> Placed:
    """Create a PENDING order with prices snapshotted, and its order.created event.

    `token` has a verified signature; the writing statement checks that it is still valid
    itself (401 otherwise). Without a quota or an Idempotency-Key, on PostgreSQL the whole
    creation is one statement on a pooled connection; otherwise it is one transaction (the
    caller's row read and locked first, then the key, then the order).
    """
    checked = _Lines(lines)
    if not (max_open_orders or idempotency_key) and database.dialect == "postgresql":
        # One statement, atomic on its own: no transaction block, no lent connection.
        return await _place(
            database.pooled, token=token, checked=checked, max_open_orders=0, key=None
        )
    async with database.transaction() as db:
        # The account first: a key (or an order) of a deleted account cannot be stored.
        if not await db.run(LOCK_CALLER, **token.caller_params):
            raise Unauthorized()
        claim = await idempotency.claim(
            db,
            user_id=token.user_id,
            scope="POST /api/v2/orders",
            key=idempotency_key,
            fingerprint=fingerprint,
        )
        if claim.replay is not None:
            return Placed(
                status=claim.replay.status_code,
                body=bytes(claim.replay.body),
                location=claim.replay.headers.get("location"),
                replayed=True,
            )
        return await _place(
            db, token=token, checked=checked, max_open_orders=max_open_orders, key=claim
        )


async def _place(
    db: Executor,
    *,
    token: TokenClaims,
    checked: _Lines,
    max_open_orders: int,
    key: idempotency.Claim | None,
) -> Placed:
    """Write the order (or explain why not), and remember the answer for the key."""
    written = await _write_order(db, token=token, checked=checked, max_open_orders=max_open_orders)
    if written.created is None:
        raise _refusal(written, checked=checked, max_open_orders=max_open_orders)
    document = _pending_document(written, user_id=token.user_id, checked=checked)
    location = f"/api/v2/orders/{document['id']}"
    if key is not None and key.key is not None:
        await key.store(db, status=201, body=json_bytes(document), location=location)
    return Placed(status=201, body=document, location=location)


async def _write_order(
    db: Executor, *, token: TokenClaims, checked: _Lines, max_open_orders: int
) -> _Written:
    """Insert the order, its lines and its event if everything allows it.

    PostgreSQL: one statement (`PLACE_ORDER`). SQLite, which has no data-modifying CTEs:
    the same reads and writes one by one, inside the caller's transaction.
    """
    pids = checked.product_ids
    if db.dialect == "postgresql":
        rows = await db.run(
            PLACE_ORDER,
            product_ids=pids,
            quantities=[checked.merged[pid] for pid in pids],
            lines=len(pids),
            quota=max_open_orders,
            **token.caller_params,
            **outbox.event_params(type=ORDER_CREATED),
        )
        first = rows[0]
        if first["id"] is not None:
            db.events_written()  # the statement wrote the order.created event
        return _Written(
            created=first if first["id"] is not None else None,
            prices={int(r["product_id"]): int(r["price_cents"]) for r in rows if r["product_id"]},
            active=bool(first["active"]),
            open_orders=int(first["open_orders"]),
        )
    user_id = token.user_id
    caller = (await db.run(CALLER_AND_QUOTA, quota=max_open_orders, **token.caller_params))[0]
    prices = {
        int(row["product_id"]): int(row["price_cents"])
        for row in await db.run(PRICES, product_ids=pids)
    }
    written = _Written(
        created=None,
        prices=prices,
        active=bool(caller["active"]),
        open_orders=int(caller["open_orders"]),
    )
    total = sum(prices.get(pid, 0) * qty for pid, qty in checked.merged.items())
    if (
        not written.active
        or len(prices) != len(pids)
        or total > MAX_TOTAL_CENTS
        or (max_open_orders and written.open_orders >= max_open_orders)
    ):
        return written
    created = (await db.run(INSERT_ORDER, user_id=user_id, total_cents=total))[0]
    await db.run_many(
        INSERT_ITEM,
        [
            {
                "order_id": created["id"],
                "product_id": pid,
                "quantity": checked.merged[pid],
                "unit_price_cents": prices[pid],
            }
            for pid in pids
        ],
    )
    await outbox.emit(
        db,
        type=ORDER_CREATED,
        payload=order_payload(
            order_id=int(created["id"]),
            user_id=user_id,
            status=OrderStatus.PENDING,
            total_cents=total,
        ),
    )
    return _Written(
        created=created,
        prices=prices,
        active=True,
        open_orders=written.open_orders,
    )


def _refusal(written: _Written, *, checked: _Lines, max_open_orders: int) -> Exception:
    """Why nothing was written, as the error to answer with."""
    if not written.active:
        return Unauthorized()
    if max_open_orders and written.open_orders >= max_open_orders:
        return _quota_exceeded(written.open_orders, max_open_orders)
    try:
        checked.total(written.prices)
    except Unprocessable as refused:
        return refused
    return RuntimeError("the order was refused for no reason it can tell")  # pragma: no cover


def _pending_document(written: _Written, *, user_id: int, checked: _Lines) -> dict[str, Any]:
    created = written.created
    assert created is not None  # noqa: S101 (checked by the caller)
    order = {
        **created,
        "user_id": user_id,
        "status": OrderStatus.PENDING.value,
        "total_cents": checked.total(written.prices),
    }
    lines = [(pid, checked.merged[pid], written.prices[pid]) for pid in checked.product_ids]
    return order_document(order, lines)


def _quota_exceeded(open_orders: int, limit: int) -> Conflict:
    return Conflict(
        f"You have {open_orders} open orders, the most allowed; pay or cancel some first",
        limit=limit,
    )


# --- transitions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Move:
    """A transition: from which states, to which, and the timestamp column it sets."""

    verb: str
    allowed: tuple[OrderStatus, ...]
    to: OrderStatus
    stamp: str
    # RESERVED orders past their reservation's time are refused (they are being expired).
    live_reservation: bool


CONFIRM = _Move("confirm", (OrderStatus.RESERVED,), OrderStatus.CONFIRMED, "confirmed_at", True)
PAY = _Move("pay", (OrderStatus.RESERVED, OrderStatus.CONFIRMED), OrderStatus.PAID, "paid_at", True)
CANCEL = _Move("cancel", OPEN_STATUSES, OrderStatus.CANCELLED, "cancelled_at", False)
_visible = or_(
    _orders.c.user_id == bindparam("caller_id", type_=Integer()),
    bindparam("everyone", type_=Integer()) == 1,
)


def _transition_statement(move: _Move) -> DriverStatement:
    now = bindparam("now", type_=UTCDateTime())
    guard = [
        _orders.c.id == bindparam("order_id", type_=Integer()),
        _visible,
        in_constants(_orders.c.status, [s.value for s in move.allowed]),
    ]
    if move.live_reservation:
        guard.append(
            or_(
                _orders.c.status != OrderStatus.RESERVED.value,
                _orders.c.reserved_at > bindparam("cutoff", type_=UTCDateTime()),
            )
        )
    values: dict[str, Any] = {"status": move.to.value, "updated_at": now, move.stamp: now}
    if move.to is OrderStatus.CANCELLED:
        values["status_reason"] = bindparam("reason")
    return DriverStatement(
        update(_orders).where(*guard).values(**values).returning(_orders.c.user_id)
    )


TRANSITIONS = {move.verb: _transition_statement(move) for move in (CONFIRM, PAY, CANCEL)}
CURRENT_STATE = DriverStatement(
    select(_orders.c.status, _orders.c.reserved_at).where(
        _orders.c.id == bindparam("order_id", type_=Integer()), _visible
    )
)
_CANCEL_REASONS: dict[CancelReason, str] = {
    "user": "cancelled by the customer",
    "admin": "cancelled by an admin",
    "expired": "expired",
}


async def confirm_order(
    db: Executor, *, order_id: int, user_id: int, is_admin: bool, reservation_ttl: timedelta
) -> dict[str, Any]:
    """RESERVED → CONFIRMED (stops the reservation from expiring); emits order.confirmed."""
    owner = await _transition(db, CONFIRM, order_id, user_id, is_admin, reservation_ttl)
    await outbox.emit(
        db,
        type=ORDER_CONFIRMED,
        payload=order_payload(order_id=order_id, user_id=owner, status=OrderStatus.CONFIRMED),
    )
    return await order_by_id(db, order_id=order_id)


async def pay_order(
    db: Executor, *, order_id: int, user_id: int, is_admin: bool, reservation_ttl: timedelta
) -> dict[str, Any]:
    """RESERVED | CONFIRMED → PAID; the held stock is consumed; emits order.paid."""
    owner = await _transition(db, PAY, order_id, user_id, is_admin, reservation_ttl)
    await inventory.consume(db, order_id=order_id)
    await outbox.emit(
        db,
        type=ORDER_PAID,
        payload=order_payload(order_id=order_id, user_id=owner, status=OrderStatus.PAID),
    )
    return await order_by_id(db, order_id=order_id)


async def cancel_order(
    db: Executor, *, order_id: int, user_id: int, is_admin: bool
) -> dict[str, Any]:
    """PENDING | RESERVED | CONFIRMED → CANCELLED; the release handler gives stock back."""
    reason: CancelReason = "admin" if is_admin else "user"
    owner = await _transition(db, CANCEL, order_id, user_id, is_admin, None, reason=reason)
    await outbox.emit(
        db,
        type=ORDER_CANCELLED,
        payload=order_payload(
            order_id=order_id, user_id=owner, status=OrderStatus.CANCELLED, reason=reason
        ),
    )
    return await order_by_id(db, order_id=order_id)


async def _transition(
    db: Executor,
    move: _Move,
    order_id: int,
    user_id: int,
    is_admin: bool,
    reservation_ttl: timedelta | None,
    *,
    reason: CancelReason | None = None,
) -> int:
    """Apply the move; the order owner's id. 404 or 409 when it does not apply."""
    now = utcnow()
    params: dict[str, Any] = {
        "order_id": order_id,
        "caller_id": user_id,
        "everyone": int(is_admin),
        "now": now,
    }
    if reservation_ttl is not None:
        params["cutoff"] = now - reservation_ttl
    if reason is not None:
        params["reason"] = _CANCEL_REASONS[reason]
    moved = await db.run(TRANSITIONS[move.verb], **params)
    if moved:
        return int(moved[0]["user_id"])
    current = await db.run(
        CURRENT_STATE, order_id=order_id, caller_id=user_id, everyone=int(is_admin)
    )
    if not current:
        raise NotFound("Order not found")
    status = str(current[0]["status"])
    if status == OrderStatus.RESERVED.value and status in {s.value for s in move.allowed}:
        raise InvalidTransition(
            f"Cannot {move.verb} the order: its reservation expired and it is being cancelled",
            current_status=status,
        )
    raise InvalidTransition(f"Cannot {move.verb} an order that is {status}", current_status=status)


# --- expiry -----------------------------------------------------------------------------------

_expirable = (
    select(_orders.c.id)
    .where(
        _orders.c.status == OrderStatus.RESERVED.value,
        _orders.c.reserved_at < bindparam("cutoff", type_=UTCDateTime()),
    )
    .order_by(_orders.c.id)
    .limit(bindparam("batch", type_=Integer()))
    .with_for_update(skip_locked=True)
)
EXPIRE = DriverStatement(
    update(_orders)
    .where(
        _orders.c.id.in_(claimed_once(_expirable, "expirable")),
        _orders.c.status == OrderStatus.RESERVED.value,
    )
    .values(
        status=OrderStatus.CANCELLED.value,
        status_reason=_CANCEL_REASONS["expired"],
        cancelled_at=bindparam("now", type_=UTCDateTime()),
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
    .returning(_orders.c.id, _orders.c.user_id)
)


async def expire_reservations(db: Executor, *, cutoff: datetime, batch: int = 500) -> int:
    """Cancel RESERVED orders reserved before `cutoff` (reason "expired"); returns how many.

    Their order.cancelled events (reason "expired") release the stock through the
    pipeline, like any cancel.
    """
    expired = await db.run(EXPIRE, cutoff=cutoff, batch=batch, now=utcnow())
    await outbox.emit_many(
        db,
        [
            (
                ORDER_CANCELLED,
                order_payload(
                    order_id=int(row["id"]),
                    user_id=int(row["user_id"]),
                    status=OrderStatus.CANCELLED,
                    reason="expired",
                ),
            )
            for row in sorted(expired, key=lambda row: int(row["id"]))
        ],
    )
    return len(expired)
