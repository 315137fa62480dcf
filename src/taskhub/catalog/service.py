"""Products: create, read, list, update, archive."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy import String, bindparam, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from taskhub.catalog import inventory
from taskhub.db import escape_like, utcnow
from taskhub.driver import DriverStatement, Row
from taskhub.errors import Conflict, NotFound
from taskhub.models import Order, OrderItem, Product
from taskhub.models.order import OPEN_STATUSES
from taskhub.pagination import SortKey, json_page, order_clauses


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
    """Create a product; its initial stock is the ledger's first row."""
    product = Product(
        sku=sku, name=name, description=description, price_cents=price_cents, stock=stock
    )
    session.add(product)
    await _flush_unique_sku(session)
    await inventory.record_initial_stock(
        session, product_id=product.id, quantity=stock, actor_id=actor_id
    )
    await session.refresh(product)
    return product


async def get_product(session: AsyncSession, *, product_id: int) -> Product:
    """A live (not archived) product, or 404."""
    product = await session.scalar(
        select(Product).where(Product.id == product_id, Product.deleted_at.is_(None))
    )
    if product is None:
        raise NotFound("Product not found")
    return product


PRODUCT_COLUMNS = (
    Product.id,
    Product.sku,
    Product.name,
    Product.description,
    Product.price_cents,
    Product.stock,
    Product.created_at,
    Product.updated_at,
)


BY_ID = [SortKey(Product.id)]


@lru_cache(maxsize=32)
def _list_query(
    *, after: bool, search: bool, in_stock: bool | None, as_json: bool
) -> DriverStatement:
    """The catalog page query for one combination of filters, compiled once.

    `as_json` (PostgreSQL): the page comes back as one `pagination.json_page` row.
    """
    stmt = select(*PRODUCT_COLUMNS).where(Product.deleted_at.is_(None))
    if after:
        stmt = stmt.where(Product.id > bindparam("after_id"))
    if search:
        pattern = bindparam("pattern", type_=String())
        stmt = stmt.where(
            or_(
                Product.name.ilike(pattern, escape="\\"),
                Product.sku.ilike(pattern, escape="\\"),
                Product.description.ilike(pattern, escape="\\"),
            )
        )
    if in_stock is True:
        stmt = stmt.where(Product.stock > 0)
    elif in_stock is False:
        stmt = stmt.where(Product.stock == 0)
    if as_json:
        return DriverStatement(json_page(stmt, BY_ID, keys=["id"], table=Product.__tablename__))
    return DriverStatement(stmt.order_by(*order_clauses(BY_ID)).limit(bindparam("limit")))


async def list_products(
    engine: AsyncEngine,
    *,
    limit: int,
    after_id: int | None,
    q: str | None,
    in_stock: bool | None,
    as_json: bool = False,
) -> Sequence[Row]:
    """Live products by id, `limit + 1` of them so the caller can tell if more follow.

    `as_json` (PostgreSQL only): one `pagination.json_page` row instead.
    """
    query = _list_query(
        after=after_id is not None, search=bool(q), in_stock=in_stock, as_json=as_json
    )
    params: dict[str, object] = {"limit": limit + 1, "page_size": limit}
    if after_id is not None:
        params["after_id"] = after_id
    if q:
        params["pattern"] = f"%{escape_like(q.lower())}%"
    return await query.fetch(engine, **params)


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
    product = await get_product(session, product_id=product_id)
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
