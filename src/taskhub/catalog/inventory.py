"""Stock: the only code that writes `products.stock`, `stock_movements` and `reservations`.

Invariant: for every product, stock == sum(stock_movements.delta) and stock >= 0. Every
decrement is a conditional UPDATE (`... WHERE stock >= :n`), and every change of stock
writes its ledger row in the same transaction. Rows are locked and written in ascending
product id order, so concurrent reservations, releases and adjustments never deadlock.
Reservations (`held` → `released` | `consumed`) make release and consumption idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, func, insert, select, text, update

from taskhub.db import table_of
from taskhub.driver import DriverStatement, Executor, in_list
from taskhub.errors import InsufficientStock, NotFound
from taskhub.models import MovementReason, Product, Reservation, ReservationState, StockMovement

# Kept well under the INTEGER column's 2**31 - 1, so that releases can never overflow it.
MAX_STOCK = 1_000_000_000

_products, _reservations, _movements = (
    table_of(Product),
    table_of(Reservation),
    table_of(StockMovement),
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
ADJUST = DriverStatement(
    update(_products)
    .where(
        _products.c.id == bindparam("product_id"),
        _products.c.deleted_at.is_(None),
        _products.c.stock + bindparam("delta") >= 0,
        _products.c.stock + bindparam("delta") <= MAX_STOCK,
    )
    .values(stock=_products.c.stock + bindparam("delta"))
    .returning(_products.c.stock)
)
SET_INITIAL = DriverStatement(
    update(_products)
    .where(_products.c.id == bindparam("product_id"), _products.c.stock == 0)
    .values(stock=bindparam("quantity"))
)
CURRENT_STOCK = DriverStatement(
    select(_products.c.stock).where(
        _products.c.id == bindparam("product_id"), _products.c.deleted_at.is_(None)
    )
)
# The rows a reservation decides on, locked in ascending id order. FOR NO KEY UPDATE (the
# strength of an UPDATE) and not FOR UPDATE: the foreign-key checks of orders being created
# take FOR KEY SHARE on their products, which FOR UPDATE would block.
LOCK_PRODUCTS = DriverStatement(
    select(_products.c.id, _products.c.stock, _products.c.deleted_at.is_not(None).label("gone"))
    .where(in_list(_products.c.id, "product_ids"))
    .order_by(_products.c.id)
    .with_for_update(key_share=True)
)
TAKE = DriverStatement(
    update(_products)
    .where(_products.c.id == bindparam("product_id"), _products.c.stock >= bindparam("quantity"))
    .values(stock=_products.c.stock - bindparam("quantity"))
    .returning(_products.c.id)
)
GIVE_BACK = DriverStatement(
    update(_products)
    .where(_products.c.id == bindparam("product_id"))
    .values(stock=_products.c.stock + bindparam("quantity"))
)
HOLD = DriverStatement(
    insert(_reservations).values(
        order_id=bindparam("order_id"),
        product_id=bindparam("product_id"),
        quantity=bindparam("quantity"),
        state=ReservationState.HELD.value,
    )
)
RELEASE = DriverStatement(
    update(_reservations)
    .where(
        in_list(_reservations.c.order_id, "order_ids"),
        _reservations.c.state == ReservationState.HELD.value,
    )
    .values(state=ReservationState.RELEASED.value, updated_at=func.now())
    .returning(_reservations.c.order_id, _reservations.c.product_id, _reservations.c.quantity)
)
CONSUME = DriverStatement(
    update(_reservations)
    .where(
        _reservations.c.order_id == bindparam("paid_order"),
        _reservations.c.state == ReservationState.HELD.value,
    )
    .values(state=ReservationState.CONSUMED.value, updated_at=func.now())
    .returning(_reservations.c.id)
)

# PostgreSQL: a reservation's writes in one statement (the stock taken per product, the
# reservation and ledger rows per line), so the product rows locked by `reserve` are held
# for as few round trips as possible: they are the hot rows every order of a product waits
# for. SQLite runs the same writes one by one (TAKE, HOLD, RECORD_MOVEMENT).
TAKE_AND_HOLD_MANY = DriverStatement(
    text(
        """
WITH taken AS (
    UPDATE products SET stock = products.stock - t.quantity, updated_at = now()
    FROM unnest(CAST(:take_products AS INTEGER[]), CAST(:take_quantities AS INTEGER[]))
        AS t(id, quantity)
    WHERE products.id = t.id AND products.stock >= t.quantity
    RETURNING products.id
), held AS (
    INSERT INTO reservations (order_id, product_id, quantity, state)
    SELECT h.order_id, h.product_id, h.quantity, CAST(:held AS VARCHAR)
    FROM unnest(CAST(:order_ids AS INTEGER[]), CAST(:product_ids AS INTEGER[]),
        CAST(:quantities AS INTEGER[])) AS h(order_id, product_id, quantity)
), recorded AS (
    INSERT INTO stock_movements (product_id, delta, reason, order_id, actor_id)
    SELECT h.product_id, -h.quantity, CAST(:reason AS VARCHAR), h.order_id, NULL
    FROM unnest(CAST(:order_ids AS INTEGER[]), CAST(:product_ids AS INTEGER[]),
        CAST(:quantities AS INTEGER[])) AS h(order_id, product_id, quantity)
)
SELECT count(*) AS taken FROM taken
"""
    )
)

Lines = Sequence[tuple[int, int]]  # (product_id, quantity)


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why an order's stock could not be held: the first product that fell short."""

    product_id: int
    gone: bool  # archived (or never existed), rather than short of stock


async def record_initial_stock(
    db: Executor, *, product_id: int, quantity: int, actor_id: int | None
) -> None:
    """A new product's starting stock, with the ledger's first row."""
    if quantity:
        await _change(
            db,
            product_id=product_id,
            delta=quantity,
            reason=MovementReason.INITIAL,
            actor_id=actor_id,
        )


async def record_initial_stocks(
    db: Executor, *, stocks: Sequence[tuple[int, int]], actor_id: int | None
) -> None:
    """New products' starting stock in bulk (demo data), with the ledger's first rows:
    (product_id, quantity) for products whose stock is still 0."""
    stocked = [(pid, quantity) for pid, quantity in stocks if quantity]
    if any(not 0 < quantity <= MAX_STOCK for _, quantity in stocked):
        raise ValueError(f"an initial stock is between 0 and {MAX_STOCK}")
    await db.run_many(SET_INITIAL, [{"product_id": p, "quantity": q} for p, q in stocked])
    await _ledger(
        db, [(p, q, None) for p, q in stocked], reason=MovementReason.INITIAL, actor_id=actor_id
    )


async def adjust_stock(db: Executor, *, product_id: int, delta: int, actor_id: int) -> int:
    """Add or remove stock by hand; 409 if it would go negative. Returns the new stock."""
    return await _change(
        db, product_id=product_id, delta=delta, reason=MovementReason.ADJUST, actor_id=actor_id
    )


async def _change(
    db: Executor, *, product_id: int, delta: int, reason: MovementReason, actor_id: int | None
) -> int:
    rows = await db.run(ADJUST, product_id=product_id, delta=delta)
    if not rows:
        current = await db.run(CURRENT_STOCK, product_id=product_id)
        if not current:
            raise NotFound("Product not found")
        stock = int(current[0]["stock"])
        if stock + delta < 0:
            raise InsufficientStock(
                f"Stock is {stock}; a change of {delta} would make it negative", stock=stock
            )
        raise InsufficientStock(f"Stock would exceed {MAX_STOCK}", stock=stock)
    await _ledger(db, [(product_id, delta, None)], reason=reason, actor_id=actor_id)
    return int(rows[0]["stock"])


async def reserve(db: Executor, *, orders: Mapping[int, Lines]) -> dict[int, Shortfall | None]:
    """Hold stock for each order's lines: all of an order's lines, or none of them.

    Orders are decided in ascending id order against the stock the earlier ones left; an
    order that does not fit gets the first product (by id) that fell short, and changes
    nothing. Returns each order's outcome (None: held). One order or a batch of them, the
    same statements: the products locked once, then one write per product and per line.
    """
    wanted = sorted({pid for lines in orders.values() for pid, _ in lines})
    locked = await db.run(LOCK_PRODUCTS, product_ids=wanted)
    stock = {int(row["id"]): int(row["stock"]) for row in locked if not row["gone"]}
    outcomes: dict[int, Shortfall | None] = {}
    taken: dict[int, int] = {}
    held: list[tuple[int, int, int]] = []
    for order_id in sorted(orders):
        lines = sorted(orders[order_id])
        short = next((pid for pid, qty in lines if stock.get(pid, -1) < qty), None)
        if short is not None:
            outcomes[order_id] = Shortfall(product_id=short, gone=short not in stock)
            continue
        for pid, qty in lines:
            stock[pid] -= qty
            taken[pid] = taken.get(pid, 0) + qty
            held.append((order_id, pid, qty))
        outcomes[order_id] = None
    if held:
        await _take_and_hold(db, taken=sorted(taken.items()), held=held)
    return outcomes


async def _take_and_hold(
    db: Executor, *, taken: Sequence[tuple[int, int]], held: Sequence[tuple[int, int, int]]
) -> None:
    """Take stock per product, and write a reservation and a ledger row per held line."""
    if db.dialect == "postgresql":
        written = await db.run(
            TAKE_AND_HOLD_MANY,
            take_products=[pid for pid, _ in taken],
            take_quantities=[qty for _, qty in taken],
            order_ids=[oid for oid, _, _ in held],
            product_ids=[pid for _, pid, _ in held],
            quantities=[qty for _, _, qty in held],
            held=ReservationState.HELD.value,
            reason=MovementReason.RESERVE.value,
        )
        if written[0]["taken"] != len(taken):
            raise _changed_under_lock()
        return
    for pid, qty in taken:
        if not await db.run(TAKE, product_id=pid, quantity=qty):
            raise _changed_under_lock()
    await db.run_many(
        HOLD, [{"order_id": oid, "product_id": pid, "quantity": qty} for oid, pid, qty in held]
    )
    await _ledger(db, [(pid, -qty, oid) for oid, pid, qty in held], reason=MovementReason.RESERVE)


def _changed_under_lock() -> RuntimeError:
    # The rows are locked and their stock was just read: this cannot happen unless something
    # wrote stock around this module. Raising rolls the whole transaction back.
    return RuntimeError("stock changed under its lock")


async def release(db: Executor, *, order_ids: Sequence[int]) -> int:
    """Give back every held reservation of these orders, once. Returns the units released."""
    released = await db.run(RELEASE, order_ids=sorted(order_ids))
    if not released:
        return 0
    back: dict[int, int] = {}
    for row in released:
        back[int(row["product_id"])] = back.get(int(row["product_id"]), 0) + int(row["quantity"])
    await db.run_many(
        GIVE_BACK, [{"product_id": pid, "quantity": qty} for pid, qty in sorted(back.items())]
    )
    await _ledger(
        db,
        sorted(
            (int(row["product_id"]), int(row["quantity"]), int(row["order_id"])) for row in released
        ),
        reason=MovementReason.RELEASE,
    )
    return sum(back.values())


async def consume(db: Executor, *, order_id: int) -> int:
    """Turn an order's held reservations into sold stock (on payment). Returns the rows."""
    return len(await db.run(CONSUME, paid_order=order_id))


async def _ledger(
    db: Executor,
    movements: Sequence[tuple[int, int, int | None]],
    *,
    reason: MovementReason,
    actor_id: int | None = None,
) -> None:
    """Ledger rows (product_id, delta, order_id), by an actor or for orders."""
    await db.run_many(
        RECORD_MOVEMENT,
        [
            {
                "product_id": pid,
                "delta": delta,
                "reason": reason.value,
                "order_id": oid,
                "actor_id": actor_id,
            }
            for pid, delta, oid in movements
        ],
    )
