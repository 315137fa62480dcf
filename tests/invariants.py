"""The stock invariant, checked in SQL after every concurrent or fault workload."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def assert_stock_invariant(engine: AsyncEngine) -> dict[int, int]:
    """The stock invariant of design §3, on either database; returns each product's stock.

    stock == sum(ledger) and stock >= 0 for every product; every order's ledger rows match
    its reservations (reserved once, released once if released); no ledger row of an order
    without a reservation; and order states agree with reservation states.
    """
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    """
                    SELECT p.id, p.stock, COALESCE(SUM(m.delta), 0)
                    FROM products p LEFT JOIN stock_movements m ON m.product_id = p.id
                    GROUP BY p.id, p.stock
                    """
                )
            )
        ).all()
        assert rows, "no products"
        for product_id, stock, ledger in rows:
            assert stock == ledger, f"product {product_id}: stock {stock} != ledger {ledger}"
            assert stock >= 0, f"product {product_id}: negative stock {stock}"
        # Every order's ledger matches its reservations: reserve rows = -(all reservations),
        # release rows = +(released reservations); nothing counted twice.
        bad = (
            await conn.execute(
                text(
                    """
                    SELECT r.order_id, r.product_id, r.quantity, r.state,
                      COALESCE((SELECT SUM(-m.delta) FROM stock_movements m
                        WHERE m.order_id = r.order_id AND m.product_id = r.product_id
                          AND m.reason = 'reserve'), 0) AS reserved,
                      COALESCE((SELECT SUM(m.delta) FROM stock_movements m
                        WHERE m.order_id = r.order_id AND m.product_id = r.product_id
                          AND m.reason = 'release'), 0) AS released
                    FROM reservations r
                    """
                )
            )
        ).all()
        for order_id, product_id, quantity, state, reserved, released in bad:
            assert reserved == quantity, f"order {order_id}/{product_id}: reserved {reserved}"
            expected_release = quantity if state == "released" else 0
            assert released == expected_release, (
                f"order {order_id}/{product_id} ({state}): released {released}"
            )
        # Ledger rows for orders without a reservation would be a leak.
        orphans = await conn.scalar(
            text(
                """
                SELECT count(*) FROM stock_movements m
                WHERE m.order_id IS NOT NULL AND NOT EXISTS (
                  SELECT 1 FROM reservations r
                  WHERE r.order_id = m.order_id AND r.product_id = m.product_id)
                """
            )
        )
        assert orphans == 0, f"{orphans} ledger rows without a reservation"
        # Order states agree with reservation states.
        mismatched = await conn.scalar(
            text(
                """
                SELECT count(*) FROM orders o
                WHERE (o.status IN ('RESERVED', 'CONFIRMED') AND EXISTS (
                         SELECT 1 FROM reservations r WHERE r.order_id = o.id
                           AND r.state <> 'held'))
                   OR (o.status IN ('RESERVED', 'CONFIRMED') AND NOT EXISTS (
                         SELECT 1 FROM reservations r WHERE r.order_id = o.id))
                   OR (o.status IN ('PENDING', 'FAILED') AND EXISTS (
                         SELECT 1 FROM reservations r WHERE r.order_id = o.id))
                   OR (o.status = 'PAID' AND EXISTS (
                         SELECT 1 FROM reservations r WHERE r.order_id = o.id
                           AND r.state <> 'consumed'))
                   OR (o.status = 'CANCELLED' AND EXISTS (
                         SELECT 1 FROM reservations r WHERE r.order_id = o.id
                           AND r.state <> 'released'))
                """
            )
        )
        assert mismatched == 0, f"{mismatched} orders disagree with their reservations"
        return {int(product_id): int(stock) for product_id, stock, _ in rows}
