"""Stock: the only code that writes `products.stock`, always with a ledger row.

Invariant: for every product, stock == sum(stock_movements.delta) and stock >= 0.
Every decrement is a conditional UPDATE; multi-product changes touch rows in ascending
product id order, so concurrent reservations never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskhub.db import on_postgresql, table_of
from taskhub.driver import DriverStatement
from taskhub.errors import InsufficientStock, NotFound
from taskhub.models import MovementReason, Product, Reservation, ReservationState, StockMovement

# Kept well under the INTEGER column's 2**31 - 1, so that releases can never overflow it.
MAX_STOCK = 1_000_000_000


async def record_initial_stock(
    session: AsyncSession, *, product_id: int, quantity: int, actor_id: int | None
) -> None:
    """Ledger row for a new product's starting stock."""
    if quantity:
        await _ledger(
            session,
            [(product_id, quantity)],
            reason=MovementReason.INITIAL,
            order_id=None,
            actor_id=actor_id,
        )


async def adjust_stock(session: AsyncSession, *, product_id: int, delta: int, actor_id: int) -> int:
    """Add or remove stock by hand; 409 if it would go negative. Returns the new stock."""
    result = await session.execute(
        update(Product)
        .where(
            Product.id == product_id,
            Product.deleted_at.is_(None),
            Product.stock + delta >= 0,
            Product.stock + delta <= MAX_STOCK,
        )
        .values(stock=Product.stock + delta)
        .returning(Product.stock)
    )
    new_stock = result.scalar_one_or_none()
    if new_stock is None:
        current = await session.scalar(
            select(Product.stock).where(Product.id == product_id, Product.deleted_at.is_(None))
        )
        if current is None:
            raise NotFound("Product not found")
        if current + delta < 0:
            raise InsufficientStock(
                f"Stock is {current}; a change of {delta} would make it negative",
                stock=current,
            )
        raise InsufficientStock(f"Stock would exceed {MAX_STOCK}", stock=current)
    await _ledger(
        session,
        [(product_id, delta)],
        reason=MovementReason.ADJUST,
        order_id=None,
        actor_id=actor_id,
    )
    return int(new_stock)


async def prices_of(session: AsyncSession, *, product_ids: Sequence[int]) -> dict[int, int]:
    """Current prices of the orderable (not deleted) products among `product_ids`."""
    rows = await session.execute(
        select(Product.id, Product.price_cents).where(
            Product.id.in_(product_ids), Product.deleted_at.is_(None)
        )
    )
    return {int(pid): int(price) for pid, price in rows.all()}


_products, _reservations, _movements = (
    table_of(Product),
    table_of(Reservation),
    table_of(StockMovement),
)
# The reservation path runs once per order in the workers: plain statements, compiled once
# and sent straight to the driver (taskhub.driver).
TAKE_STOCK = DriverStatement(
    update(_products)
    .where(
        _products.c.id == bindparam("product_id"),
        _products.c.stock >= bindparam("quantity"),
        _products.c.deleted_at.is_(None),
    )
    .values(stock=_products.c.stock - bindparam("quantity"))
    .returning(_products.c.id)
)
HOLD = DriverStatement(
    insert(_reservations).values(
        order_id=bindparam("order_id"),
        product_id=bindparam("product_id"),
        quantity=bindparam("quantity"),
        state=ReservationState.HELD.value,
    )
)
RECORD_MOVEMENT = DriverStatement(
    insert(_movements).values(
        product_id=bindparam("product_id"),
        delta=bindparam("delta"),
        reason=bindparam("reason"),
        order_id=bindparam("order_id"),
        actor_id=bindparam("actor_id"),
    )
)


# PostgreSQL, one line: take the stock, hold it and write the ledger in one statement. The
# inserts only happen if the guarded UPDATE took the stock.
TAKE_AND_HOLD = DriverStatement(
    text(
        """
WITH taken AS (
    UPDATE products SET stock = products.stock - CAST(:quantity AS INTEGER)
    WHERE products.id = CAST(:product_id AS INTEGER)
        AND products.stock >= CAST(:quantity AS INTEGER)
        AND products.deleted_at IS NULL
    RETURNING products.id
), held AS (
    INSERT INTO reservations (order_id, product_id, quantity, state)
    SELECT CAST(:order_id AS INTEGER), taken.id, CAST(:quantity AS INTEGER),
        CAST(:held AS VARCHAR)
    FROM taken
), recorded AS (
    INSERT INTO stock_movements (product_id, delta, reason, order_id, actor_id)
    SELECT taken.id, -CAST(:quantity AS INTEGER), CAST(:reason AS VARCHAR),
        CAST(:order_id AS INTEGER), NULL
    FROM taken
)
SELECT taken.id FROM taken
"""
    )
)


async def reserve(
    session: AsyncSession, *, order_id: int, lines: Sequence[tuple[int, int]]
) -> int | None:
    """Hold stock for every line, or for none.

    Returns None on success, or the id of the first product short of stock, in which case
    nothing was changed. Several lines are taken inside a savepoint, so a short line rolls
    back the ones before it; a single line needs none (and on PostgreSQL is one statement).
    """
    ordered = sorted(lines)
    if len(ordered) == 1 and on_postgresql(session):
        [(product_id, quantity)] = ordered
        taken = await TAKE_AND_HOLD.run(
            session,
            product_id=product_id,
            quantity=quantity,
            order_id=order_id,
            held=ReservationState.HELD.value,
            reason=MovementReason.RESERVE.value,
        )
        return None if taken else product_id
    savepoint = await session.begin_nested() if len(ordered) > 1 else None
    for product_id, quantity in ordered:
        taken = await TAKE_STOCK.run(session, product_id=product_id, quantity=quantity)
        if not taken:
            if savepoint is not None:
                await savepoint.rollback()
            return product_id
    await HOLD.run_many(
        session,
        [{"order_id": order_id, "product_id": pid, "quantity": qty} for pid, qty in ordered],
    )
    await _ledger(
        session,
        [(pid, -qty) for pid, qty in ordered],
        reason=MovementReason.RESERVE,
        order_id=order_id,
        actor_id=None,
    )
    if savepoint is not None:
        await savepoint.commit()
    return None


async def release(session: AsyncSession, *, order_id: int) -> int:
    """Give back every held reservation of an order, once. Returns the units released."""
    held = (
        await session.execute(
            update(Reservation)
            .where(Reservation.order_id == order_id, Reservation.state == ReservationState.HELD)
            .values(state=ReservationState.RELEASED)
            .returning(Reservation.product_id, Reservation.quantity)
        )
    ).all()
    lines = sorted((int(pid), int(qty)) for pid, qty in held)
    for product_id, quantity in lines:
        await session.execute(
            update(Product).where(Product.id == product_id).values(stock=Product.stock + quantity)
        )
    if lines:
        await _ledger(
            session, lines, reason=MovementReason.RELEASE, order_id=order_id, actor_id=None
        )
    return sum(q for _, q in lines)


async def consume(session: AsyncSession, *, order_id: int) -> int:
    """Turn an order's held reservations into sold stock (on payment). Returns the rows."""
    result = await session.execute(
        update(Reservation)
        .where(Reservation.order_id == order_id, Reservation.state == ReservationState.HELD)
        .values(state=ReservationState.CONSUMED)
        .returning(Reservation.id)
    )
    return len(result.all())


async def _ledger(
    session: AsyncSession,
    lines: Sequence[tuple[int, int]],
    *,
    reason: MovementReason,
    order_id: int | None,
    actor_id: int | None,
) -> None:
    await RECORD_MOVEMENT.run_many(
        session,
        [
            {
                "product_id": pid,
                "delta": delta,
                "reason": reason.value,
                "order_id": order_id,
                "actor_id": actor_id,
            }
            for pid, delta in lines
        ],
    )
