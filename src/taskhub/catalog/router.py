"""Routes of the catalog: /products."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Response
from pydantic import Field

from taskhub.auth.dependencies import AdminUser
from taskhub.catalog import inventory, service
from taskhub.catalog.schemas import ProductCreateIn, ProductOut, ProductUpdateIn
from taskhub.dependencies import IdPath, SessionDep
from taskhub.driver import in_session
from taskhub.errors import (
    Conflict,
    Forbidden,
    InsufficientStock,
    NotFound,
    Unauthorized,
    problem_responses,
)
from taskhub.fields import text
from taskhub.pagination import Page, PageQuery, decode_cursor
from taskhub.query import documented, query_of
from taskhub.routing import V2, PrefixRouter

router = PrefixRouter(prefix=f"{V2}/products", tags=["products"])
ADMIN_ERRORS = (Unauthorized, Forbidden)


@router.post("", status_code=201, responses=problem_responses(*ADMIN_ERRORS, Conflict))
async def create_product(
    body: ProductCreateIn, admin: AdminUser, session: SessionDep, response: Response
) -> ProductOut:
    """Create a product with its initial stock (site admins)."""
    product = await service.create_product(session, actor_id=admin.id, **body.model_dump())
    response.headers["Location"] = f"/api/v2/products/{product.id}"
    return ProductOut.model_validate(product)


class ProductSearch(PageQuery):
    """The query string of GET /products (validated in one step: taskhub.query)."""

    q: Annotated[
        str | None,
        text(max_length=200, description="Words to find in the SKU, name or description"),
    ] = None
    in_stock: Annotated[bool | None, Field(description="Only (un)available products")] = None


@router.get("", response_model=Page[ProductOut], openapi_extra=documented(ProductSearch))
async def list_products(
    request: Request, search: Annotated[ProductSearch, Depends(query_of(ProductSearch))]
) -> Response:
    """The catalog, by id (public)."""
    after = decode_cursor(search.cursor, size=1, kinds=(int,))
    return await service.list_products(
        request.app.state.database.pooled,
        limit=search.limit,
        after_id=after[0] if after else None,
        q=search.q,
        in_stock=search.in_stock,
    )


@router.get("/{product_id}", responses=problem_responses(NotFound))
async def read_product(product_id: IdPath, session: SessionDep) -> ProductOut:
    """One product (public)."""
    return ProductOut.model_validate(await service.get_product(session, product_id=product_id))


@router.patch("/{product_id}", responses=problem_responses(*ADMIN_ERRORS, NotFound, Conflict))
async def update_product(
    product_id: IdPath, body: ProductUpdateIn, _admin: AdminUser, session: SessionDep
) -> ProductOut:
    """Change a product's details (site admins); stock has its own endpoint."""
    product = await service.update_product(
        session, product_id=product_id, changes=body.model_dump(exclude_unset=True)
    )
    return ProductOut.model_validate(product)


@router.delete(
    "/{product_id}", status_code=204, responses=problem_responses(*ADMIN_ERRORS, NotFound, Conflict)
)
async def delete_product(product_id: IdPath, _admin: AdminUser, session: SessionDep) -> None:
    """Remove a product from the catalog (site admins); 409 while open orders use it."""
    await service.archive_product(session, product_id=product_id)


@router.patch(
    "/{product_id}/stock",
    responses=problem_responses(*ADMIN_ERRORS, NotFound, InsufficientStock),
)
async def adjust_stock(
    product_id: IdPath,
    delta: Annotated[
        int,
        Query(
            ge=-inventory.MAX_STOCK,
            le=inventory.MAX_STOCK,
            description="Signed change, e.g. 5 or -3 (URL-encode '+' as %2B, or omit it)",
        ),
    ],
    admin: AdminUser,
    session: SessionDep,
) -> ProductOut:
    """Add or remove stock by hand (site admins); 409 if it would go negative."""
    await inventory.adjust_stock(
        in_session(session), product_id=product_id, delta=delta, actor_id=admin.id
    )
    return ProductOut.model_validate(await service.get_product(session, product_id=product_id))
