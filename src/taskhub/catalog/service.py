"""Products: create, read, list, update, archive."""

from __future__ import annotations

from functools import lru_cache

from fastapi import Response
from sqlalchemy import ColumnElement, Integer, bindparam, exists, false, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from taskhub.catalog import inventory
from taskhub.catalog.schemas import ProductOut
from taskhub.db import table_of, utcnow
from taskhub.driver import Executor, in_session
from taskhub.errors import Conflict, NotFound
from taskhub.models import Order, OrderItem, Product
from taskhub.models.order import OPEN_STATUSES
from taskhub.pages import PageStatement, SortKey, model_columns
from taskhub.search import search_words, walk_or_index

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
_FIELDS = list(ProductOut.model_fields)


@lru_cache(maxsize=32)
def product_page_statement(
    *, search: bool, nothing: bool, in_stock: bool | None, dialect: str
) -> PageStatement:
    """The catalog page statement for one combination of filters, compiled once.

    The page starts after :after_id (0 for the first), a range of the primary key. With
    words to find (:q), the page comes from `search.walk_or_index`. `nothing`: a `q`
    without a word.
    """
    columns = _products.c
    ranged = [columns.id > bindparam("after_id", type_=Integer())]
    checked: list[ColumnElement[bool]] = [columns.deleted_at.is_(None)]
    if in_stock is True:
        checked.append(columns.stock > 0)
    elif in_stock is False:
        checked.append(columns.stock == 0)
    if nothing:
        checked.append(false())
    if not search:
        stmt = select(*model_columns(ProductOut, _products)).where(*ranged, *checked)
        return PageStatement(stmt, BY_ID, model=ProductOut, cursor_keys=["id"])
    page = walk_or_index(
        _products, _FIELDS, order=BY_ID, ranged=ranged, checked=checked, dialect=dialect
    )
    stmt = select(*model_columns(ProductOut, page))
    return PageStatement(stmt, [SortKey(page.c.id)], model=ProductOut, cursor_keys=["id"])


def product_page(
    *, after_id: int | None, q: str | None, in_stock: bool | None, dialect: str
) -> tuple[PageStatement, dict[str, object]]:
    """The statement of one requested catalog page on a database, and the values it binds."""
    words = search_words(q) if q else ()
    statement = product_page_statement(
        search=bool(words), nothing=bool(q) and not words, in_stock=in_stock, dialect=dialect
    )
    params: dict[str, object] = {"after_id": after_id or 0}
    if words:
        params["q"] = words
    return statement, params


async def list_products(
    db: Executor, *, limit: int, after_id: int | None, q: str | None, in_stock: bool | None
) -> Response:
    """A page of live products by id, with the cursor of the next page."""
    statement, params = product_page(after_id=after_id, q=q, in_stock=in_stock, dialect=db.dialect)
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
