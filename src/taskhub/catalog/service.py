"""Products: create, read, list, update, archive."""

from __future__ import annotations

from functools import lru_cache

from fastapi import Response
from sqlalchemy import Integer, String, bindparam, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from taskhub.catalog import inventory
from taskhub.catalog.schemas import ProductOut
from taskhub.db import escape_like, table_of, utcnow
from taskhub.driver import Executor, in_session
from taskhub.errors import Conflict, NotFound
from taskhub.models import Order, OrderItem, Product
from taskhub.models.order import OPEN_STATUSES
from taskhub.pages import PageStatement, SortKey, model_columns

_products = table_of(Product)


async def create_product(
    session: AsyncSession,
    *,
    sku: str,
    name: str,
    description: str | None,
    price_cents: int,
    stock: int,
    actor_id: int,
) -> Product:
    """Create a product; its initial stock is set by the inventory, with the ledger's first row."""
    product = Product(sku=sku, name=name, description=description, price_cents=price_cents)
    session.add(product)
    await _flush_unique_sku(session)
    await inventory.record_initial_stock(
        in_session(session), product_id=product.id, quantity=stock, actor_id=actor_id
    )
    await session.refresh(product)
    return product


async def get_product(
    session: AsyncSession, *, product_id: int, for_update: bool = False
) -> Product:
    """A live (not archived) product, or 404."""
    stmt = select(Product).where(Product.id == product_id, Product.deleted_at.is_(None))
    product = await session.scalar(stmt.with_for_update() if for_update else stmt)
    if product is None:
        raise NotFound("Product not found")
    return product


BY_ID = [SortKey(_products.c.id)]


@lru_cache(maxsize=32)
def product_page_statement(*, after: bool, search: bool, in_stock: bool | None) -> PageStatement:
    """The catalog page statement for one combination of filters, compiled once."""
    stmt = select(*model_columns(ProductOut, _products)).where(_products.c.deleted_at.is_(None))
    if after:
        stmt = stmt.where(_products.c.id > bindparam("after_id", type_=Integer()))
    if search:
        pattern = bindparam("pattern", type_=String())
        stmt = stmt.where(
            or_(
                _products.c.name.ilike(pattern, escape="\\"),
                _products.c.sku.ilike(pattern, escape="\\"),
                _products.c.description.ilike(pattern, escape="\\"),
            )
        )
    if in_stock is True:
        stmt = stmt.where(_products.c.stock > 0)
    elif in_stock is False:
        stmt = stmt.where(_products.c.stock == 0)
    return PageStatement(stmt, BY_ID, model=ProductOut, cursor_keys=["id"])


async def list_products(
    db: Executor, *, limit: int, after_id: int | None, q: str | None, in_stock: bool | None
) -> Response:
    """A page of live products by id, with the cursor of the next page."""
    statement = product_page_statement(
        after=after_id is not None, search=bool(q), in_stock=in_stock
    )
    params: dict[str, object] = {}
    if after_id is not None:
        params["after_id"] = after_id
    if q:
        params["pattern"] = f"%{escape_like(q.lower())}%"
    page, _ = await statement.fetch(db, limit=limit, cursor_of=lambda last: [last["id"]], **params)
    assert page is not None  # noqa: S101 (no caller check: there is always a page)
    return page


async def update_product(
    session: AsyncSession, *, product_id: int, changes: dict[str, object]
) -> Product:
    """Apply validated changes (never stock)."""
    product = await get_product(session, product_id=product_id)
    for field, value in changes.items():
        if value is None and field != "description":
            continue
        setattr(product, field, value)
    await _flush_unique_sku(session)
    await session.refresh(product)
    return product


async def archive_product(session: AsyncSession, *, product_id: int) -> None:
    """Delete a product from the catalog; 409 while open orders reference it.

    The row is archived (deleted_at), not removed, so that past orders keep their lines.
    """
    # Locked first (FOR UPDATE conflicts with the FOR KEY SHARE an order's creation takes on
    # its products): an order being created either commits first, and is seen below, or
    # waits, and then finds the product archived.
    product = await get_product(session, product_id=product_id, for_update=True)
    referenced = await session.scalar(
        select(
            exists()
            .where(OrderItem.product_id == product.id)
            .where(OrderItem.order_id == Order.id)
            .where(Order.status.in_(OPEN_STATUSES))
        )
    )
    if referenced:
        raise Conflict("Open orders reference this product; cancel or settle them first")
    product.deleted_at = utcnow()
    await session.flush()


async def _flush_unique_sku(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("A product with this SKU already exists") from None
