"""The catalog: CRUD, access, filters, stock adjustments and the ledger."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from taskhub.catalog import service
from taskhub.models import Product, StockMovement
from tests.commerce.conftest import make_product, place_order, wait_settled
from tests.factories import Actor
from tests.invariants import assert_stock_invariant


async def test_create_and_read_product(client: httpx.AsyncClient, admin: Actor) -> None:
    body = {"sku": "SKU-1001", "name": "T-Shirt", "price_cents": 1999, "stock": 10}
    r = await client.post("/api/v2/products", json=body, headers=admin.headers)
    assert r.status_code == 201
    product = r.json()
    assert r.headers["location"] == f"/api/v2/products/{product['id']}"
    assert product["stock"] == 10 and product["price_cents"] == 1999
    public = await client.get(f"/api/v2/products/{product['id']}")
    assert public.status_code == 200
    assert public.json()["sku"] == "SKU-1001"
    listed = await client.get("/api/v2/products")
    assert [p["id"] for p in listed.json()["items"]] == [product["id"]]
    assert listed.json()["next_cursor"] is None


async def test_product_writes_need_site_admin(
    client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    pid = await make_product(client, admin)
    body = {"sku": "X-1", "name": "n", "price_cents": 1, "stock": 1}
    assert (await client.post("/api/v2/products", json=body)).status_code == 401
    assert (
        await client.post("/api/v2/products", json=body, headers=customer.headers)
    ).status_code == 403
    assert (
        await client.patch(f"/api/v2/products/{pid}", json={"name": "x"}, headers=customer.headers)
    ).status_code == 403
    assert (
        await client.delete(f"/api/v2/products/{pid}", headers=customer.headers)
    ).status_code == 403
    r = await client.patch(f"/api/v2/products/{pid}/stock?delta=5", headers=customer.headers)
    assert r.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"sku": "A", "name": "n", "price_cents": -1, "stock": 1},
        {"sku": "A", "name": "n", "price_cents": 1, "stock": -1},
        {"sku": "", "name": "n", "price_cents": 1, "stock": 1},
        {"sku": "A", "name": "n", "price_cents": 1, "stock": 1, "id": 7},
        {"sku": "A", "name": "n", "price_cents": 10**12, "stock": 1},
        {"sku": "A", "name": "n", "price_cents": "abc", "stock": 1},
    ],
)
async def test_product_validation(
    client: httpx.AsyncClient, admin: Actor, body: dict[str, object]
) -> None:
    r = await client.post("/api/v2/products", json=body, headers=admin.headers)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"]


async def test_duplicate_sku_is_409(client: httpx.AsyncClient, admin: Actor) -> None:
    body = {"sku": "DUP-1", "name": "n", "price_cents": 1, "stock": 1}
    assert (
        await client.post("/api/v2/products", json=body, headers=admin.headers)
    ).status_code == 201
    assert (
        await client.post("/api/v2/products", json=body, headers=admin.headers)
    ).status_code == 409


async def test_update_product(client: httpx.AsyncClient, admin: Actor) -> None:
    pid = await make_product(client, admin)
    r = await client.patch(
        f"/api/v2/products/{pid}", json={"name": "Renamed", "price_cents": 5}, headers=admin.headers
    )
    assert r.status_code == 200
    assert r.json()["name"] == "Renamed" and r.json()["price_cents"] == 5
    r = await client.patch(f"/api/v2/products/{pid}", json={"stock": 99}, headers=admin.headers)
    assert r.status_code == 422  # stock only changes through the ledgered endpoint


async def test_stock_adjustments_are_guarded_and_ledgered(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor
) -> None:
    pid = await make_product(client, admin, stock=5)
    r = await client.patch(
        f"/api/v2/products/{pid}/stock", params={"delta": "+3"}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["stock"] == 8
    r = await client.patch(f"/api/v2/products/{pid}/stock?delta=-8", headers=admin.headers)
    assert r.status_code == 200 and r.json()["stock"] == 0
    r = await client.patch(f"/api/v2/products/{pid}/stock?delta=-1", headers=admin.headers)
    assert r.status_code == 409
    assert r.json()["stock"] == 0
    r = await client.patch(f"/api/v2/products/{pid}/stock?delta=abc", headers=admin.headers)
    assert r.status_code == 422
    r = await client.patch("/api/v2/products/999999/stock?delta=1", headers=admin.headers)
    assert r.status_code == 404
    r = await client.patch(f"/api/v2/products/{pid}/stock?delta=2000000000", headers=admin.headers)
    assert r.status_code == 422
    async with app.state.sessionmaker() as session:
        movements = (
            await session.execute(
                select(StockMovement.delta, StockMovement.reason, StockMovement.actor_id)
                .where(StockMovement.product_id == pid)
                .order_by(StockMovement.id)
            )
        ).all()
    assert [(d, r) for d, r, _ in movements] == [(5, "initial"), (3, "adjust"), (-8, "adjust")]
    assert all(actor == admin.id for _, _, actor in movements)
    await assert_stock_invariant(app.state.engine)


async def test_list_filters_and_pagination(client: httpx.AsyncClient, admin: Actor) -> None:
    ids = [await make_product(client, admin, stock=i % 2) for i in range(7)]
    r = await client.patch(
        f"/api/v2/products/{ids[0]}", json={"name": "Special Blue Mug"}, headers=admin.headers
    )
    assert r.status_code == 200
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, int | str] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v2/products", params=params)).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    in_stock = (await client.get("/api/v2/products?in_stock=true")).json()["items"]
    assert {p["id"] for p in in_stock} == {i for n, i in enumerate(ids) if n % 2 == 1}
    out_of_stock = (await client.get("/api/v2/products?in_stock=false")).json()["items"]
    assert {p["id"] for p in out_of_stock} == {i for n, i in enumerate(ids) if n % 2 == 0}
    found = (await client.get("/api/v2/products", params={"q": "blue MUG"})).json()["items"]
    assert [p["id"] for p in found] == [ids[0]]
    assert (await client.get("/api/v2/products", params={"q": "mu"})).json()["items"] == found
    assert (await client.get("/api/v2/products", params={"q": "ug"})).json()["items"] == []
    # LIKE's wildcards are no wildcards: punctuation only separates words.
    assert (await client.get("/api/v2/products", params={"q": "%_"})).json()["items"] == []
    assert (await client.get("/api/v2/products", params={"q": "mu%_"})).json()["items"] == found
    assert (await client.get("/api/v2/products?cursor=garbage")).status_code == 400
    assert (await client.get("/api/v2/products?limit=201")).status_code == 422
    assert (await client.get("/api/v2/products?limit=0")).status_code == 422
    bad = await client.get("/api/v2/products?in_stock=maybe&limit=3")
    assert bad.status_code == 422
    assert [e["loc"] for e in bad.json()["errors"]] == [["query", "in_stock"]]


async def test_search_finds_words_of_the_sku_name_and_description(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    made = []
    for sku, name, description in [
        ("TEE-RED-42", "Red T-Shirt", "Organic cotton"),
        ("MUG-7", "Enamel mug", None),
        ("CAP-1", "Cotton cap", "one size"),
    ]:
        r = await client.post(
            "/api/v2/products",
            json={
                "sku": sku,
                "name": name,
                "description": description,
                "price_cents": 5,
                "stock": 1,
            },
            headers=admin.headers,
        )
        made.append(r.json()["id"])

    async def found(q: str) -> list[int]:
        r = await client.get("/api/v2/products", params={"q": q})
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["items"]]

    assert await found("tee") == [made[0]]
    assert await found("42") == [made[0]]
    assert await found("shirt") == [made[0]]
    assert await found("cot") == [made[0], made[2]]
    assert await found("cotton cap") == [made[2]]
    assert await found("otton") == []
    r = await client.patch(
        f"/api/v2/products/{made[1]}", json={"name": "Stoneware cup"}, headers=admin.headers
    )
    assert r.status_code == 200
    assert await found("mug") == [made[1]]  # still in its SKU
    assert await found("enamel") == []
    assert await found("stone") == [made[1]]
    r = await client.delete(f"/api/v2/products/{made[0]}", headers=admin.headers)
    assert r.status_code == 204
    assert await found("cotton") == [made[2]]  # archived products leave the catalog


async def test_delete_product_refused_while_open_orders_use_it(
    client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    pid = await make_product(client, admin, stock=5)
    r = await place_order(client, customer, [(pid, 1)])
    order_id = r.json()["id"]
    await wait_settled(client, customer, [order_id])
    r = await client.delete(f"/api/v2/products/{pid}", headers=admin.headers)
    assert r.status_code == 409
    assert (
        await client.post(f"/api/v2/orders/{order_id}/pay", headers=customer.headers)
    ).status_code == 200
    r = await client.delete(f"/api/v2/products/{pid}", headers=admin.headers)
    assert r.status_code == 204
    assert (await client.get(f"/api/v2/products/{pid}")).status_code == 404
    assert pid not in [p["id"] for p in (await client.get("/api/v2/products")).json()["items"]]
    # Past orders keep their lines; new orders cannot use the archived product.
    r = await client.get(f"/api/v2/orders/{order_id}", headers=customer.headers)
    assert r.json()["items"][0]["product_id"] == pid
    r = await place_order(client, customer, [(pid, 1)])
    assert r.status_code == 422
    assert (
        await client.delete(f"/api/v2/products/{pid}", headers=admin.headers)
    ).status_code == 404


@pytest.mark.parametrize("shape", ["postgres"], indirect=True)
async def test_pages_written_by_postgresql_equal_the_row_pages(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor
) -> None:
    # On PostgreSQL GET /products has the database write the page (pages.json_page); it
    # must read exactly like the rows serialized by the server (the SQLite path).
    names = ['Quote " and \\ backslash', "Ünïcode ✓ 🚀", "tab\there", "ctl \x01 \x1f end", "a/b"]
    ids = [
        (
            await client.post(
                "/api/v2/products",
                json={"sku": f"J-{i}", "name": name, "price_cents": 5, "stock": i},
                headers=admin.headers,
            )
        ).json()["id"]
        for i, name in enumerate(names)
    ]
    async with app.state.engine.begin() as connection:
        # A timestamp without a fraction, and one whose fraction ends in zeros (pydantic
        # writes six digits; PostgreSQL's own text form would drop them).
        for pid, stamp in [
            (ids[1], datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
            (ids[2], datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)),
        ]:
            await connection.execute(
                update(Product).where(Product.id == pid).values(created_at=stamp)
            )
    db = app.state.database.pooled

    async def both_pages(
        limit: int, after_id: int | None, q: str | None, in_stock: bool | None
    ) -> tuple[bytes, bytes]:
        statement, params = service.product_page(
            after_id=after_id, q=q, in_stock=in_stock, dialect="postgresql"
        )
        pages = [
            await write(db, limit=limit, cursor_of=lambda last: [last["id"]], **params)
            for write in (statement.page_from_rows, statement.page_from_json)
        ]
        rows, written = (bytes(page.body) for page, _ in pages if page is not None)
        return rows, written

    for args in [
        (50, None, None, None),
        (2, None, None, None),
        (2, ids[1], None, None),
        (1, None, "ünï", None),
        (5, None, "a", None),
        (3, None, None, True),
        (10, ids[-1], None, None),  # an empty page
    ]:
        rows, written = await both_pages(*args)
        assert written == rows, args  # byte for byte
    listed = (await client.get("/api/v2/products", params={"limit": 2})).json()
    assert listed["items"][1]["created_at"] == "2026-01-02T03:04:05Z"
    assert listed["items"][0]["created_at"].endswith("Z")
    third = (await client.get("/api/v2/products", params={"limit": 3})).json()["items"][2]
    assert third["created_at"] == "2026-01-02T03:04:05.120000Z"
    # Writes show in the next page at once, exactly as the single-product answers show them.
    changed = await client.patch(
        f"/api/v2/products/{ids[0]}", json={"name": "Renamed ✓"}, headers=admin.headers
    )
    restocked = await client.patch(
        f"/api/v2/products/{ids[3]}/stock", params={"delta": 7}, headers=admin.headers
    )
    assert changed.status_code == restocked.status_code == 200
    listed = (await client.get("/api/v2/products", params={"limit": 50})).json()["items"]
    by_id = {item["id"]: item for item in listed}
    assert by_id[ids[0]] == changed.json()
    assert by_id[ids[3]] == restocked.json()
    rows, written = await both_pages(50, None, None, None)
    assert written == rows
