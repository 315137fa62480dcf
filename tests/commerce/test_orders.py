"""Orders: creation rules, visibility, the state machine, expiry, quotas, idempotency."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text, update

from taskhub.config import Settings
from taskhub.db import utcnow
from taskhub.driver import in_session
from taskhub.models import Order
from taskhub.orders.schemas import OrderOut
from taskhub.orders.service import expire_reservations
from tests.commerce.conftest import (
    make_product,
    place_order,
    wait_settled,
)
from tests.conftest import client_for
from tests.factories import Actor, make_user
from tests.invariants import assert_stock_invariant
from tests.polling import eventually


async def stock_of(client: httpx.AsyncClient, product_id: int) -> int:
    stock: int = (await client.get(f"/api/v2/products/{product_id}")).json()["stock"]
    return stock


async def test_order_lifecycle_reserve_then_pay(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    a = await make_product(client, admin, stock=10, price_cents=250)
    b = await make_product(client, admin, stock=10, price_cents=100)
    r = await place_order(client, customer, [(b, 1), (a, 2), (b, 3)])
    assert r.status_code == 201, r.text
    order = r.json()
    assert r.headers["location"] == f"/api/v2/orders/{order['id']}"
    assert order["status"] == "PENDING"
    assert order["user_id"] == customer.id
    assert order["items"] == [
        {"product_id": a, "quantity": 2, "unit_price_cents": 250},
        {"product_id": b, "quantity": 4, "unit_price_cents": 100},
    ]
    assert order["total_cents"] == 900
    assert (await wait_settled(client, customer, [order["id"]]))[order["id"]] == "RESERVED"
    assert await stock_of(client, a) == 8 and await stock_of(client, b) == 6
    # A later price change does not touch the snapshot.
    await client.patch(f"/api/v2/products/{a}", json={"price_cents": 999}, headers=admin.headers)
    paid = await client.post(f"/api/v2/orders/{order['id']}/pay", headers=customer.headers)
    assert paid.status_code == 200
    assert paid.json()["status"] == "PAID" and paid.json()["total_cents"] == 900
    assert paid.json()["paid_at"] is not None
    again = await client.post(f"/api/v2/orders/{order['id']}/pay", headers=customer.headers)
    assert again.status_code == 409 and again.json()["current_status"] == "PAID"
    cancel = await client.post(f"/api/v2/orders/{order['id']}/cancel", headers=customer.headers)
    assert cancel.status_code == 409 and cancel.json()["current_status"] == "PAID"
    assert await stock_of(client, a) == 8  # sold stock stays sold
    await assert_stock_invariant(app.state.engine)


async def test_confirm_then_pay(client: httpx.AsyncClient, admin: Actor, customer: Actor) -> None:
    pid = await make_product(client, admin, stock=3)
    oid = (await place_order(client, customer, [(pid, 1)])).json()["id"]
    await wait_settled(client, customer, [oid])
    r = await client.post(f"/api/v2/orders/{oid}/confirm", headers=customer.headers)
    assert r.status_code == 200 and r.json()["status"] == "CONFIRMED"
    assert r.json()["confirmed_at"] is not None
    r = await client.post(f"/api/v2/orders/{oid}/confirm", headers=customer.headers)
    assert r.status_code == 409 and r.json()["current_status"] == "CONFIRMED"
    r = await client.post(f"/api/v2/orders/{oid}/pay", headers=customer.headers)
    assert r.status_code == 200 and r.json()["status"] == "PAID"


async def test_reads_write_the_response_model_byte_for_byte(
    client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    # The create fast path and GET /orders/{id} build their JSON from database values
    # (orders.documents.order_document); the transitions go through pydantic's OrderOut.
    # All must read alike, timestamps included.
    a = await make_product(client, admin, stock=5, price_cents=250)
    b = await make_product(client, admin, stock=5, price_cents=100)
    created = await place_order(client, customer, [(b, 1), (a, 2)])
    assert created.status_code == 201
    assert created.text == OrderOut.model_validate_json(created.text).model_dump_json()
    oid = created.json()["id"]
    await wait_settled(client, customer, [oid])
    paid = await client.post(f"/api/v2/orders/{oid}/pay", headers=customer.headers)
    read = await client.get(f"/api/v2/orders/{oid}", headers=customer.headers)
    assert read.status_code == 200 and read.headers["content-type"] == "application/json"
    assert read.text == paid.text
    assert list(read.json()) == list(OrderOut.model_fields)
    as_admin = await client.get(f"/api/v2/orders/{oid}", headers=admin.headers)
    assert as_admin.text == paid.text


async def test_cancel_releases_stock(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    pid = await make_product(client, admin, stock=5)
    oid = (await place_order(client, customer, [(pid, 2)])).json()["id"]
    await wait_settled(client, customer, [oid])
    assert await stock_of(client, pid) == 3
    r = await client.post(f"/api/v2/orders/{oid}/cancel", headers=customer.headers)
    assert r.status_code == 200
    assert r.json()["status"] == "CANCELLED"

    async def released() -> bool:
        return await stock_of(client, pid) == 5

    await eventually(released)
    r = await client.post(f"/api/v2/orders/{oid}/pay", headers=customer.headers)
    assert r.status_code == 409 and r.json()["current_status"] == "CANCELLED"
    assert (
        await client.post(f"/api/v2/orders/{oid}/cancel", headers=customer.headers)
    ).status_code == 409
    await assert_stock_invariant(app.state.engine)


async def test_pay_before_reservation_is_409(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    # The dispatcher is kept asleep (no wake-up, an hour-long poll) so the order stays
    # PENDING: pay and confirm on a PENDING order must be 409 with the current status.
    settings = settings_factory(relay_poll_seconds=3600)
    app = await app_factory(settings)
    app.state.events.wake = lambda: None  # keep the order PENDING for this test
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        customer = await make_user(app, client)
        await asyncio.sleep(0.1)  # let the dispatcher's first (empty) pass finish
        pid = await make_product(client, admin, stock=5)
        oid = (await place_order(client, customer, [(pid, 1)])).json()["id"]
        for verb in ("pay", "confirm"):
            r = await client.post(f"/api/v2/orders/{oid}/{verb}", headers=customer.headers)
            assert r.status_code == 409, verb
            assert r.json()["current_status"] == "PENDING"
        r = await client.post(f"/api/v2/orders/{oid}/cancel", headers=customer.headers)
        assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
    del app.state.events.wake  # the class's wake again, so that shutdown is prompt


async def test_insufficient_stock_fails_all_lines(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    a = await make_product(client, admin, stock=10)
    b = await make_product(client, admin, stock=1)
    oid = (await place_order(client, customer, [(a, 5), (b, 2)])).json()["id"]
    assert (await wait_settled(client, customer, [oid]))[oid] == "FAILED"
    order = (await client.get(f"/api/v2/orders/{oid}", headers=customer.headers)).json()
    assert f"product {b}" in order["status_reason"]
    assert await stock_of(client, a) == 10 and await stock_of(client, b) == 1
    r = await client.post(f"/api/v2/orders/{oid}/cancel", headers=customer.headers)
    assert r.status_code == 409 and r.json()["current_status"] == "FAILED"
    await assert_stock_invariant(app.state.engine)


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        ([], "at least 1"),
        ([{"product_id": 1, "quantity": 0}], "greater than or equal to 1"),
        ([{"product_id": 1, "quantity": -3}], "greater than or equal to 1"),
        ([{"product_id": 1, "quantity": 10_001}], "less than or equal to 10000"),
        ([{"product_id": 0, "quantity": 1}], "greater than or equal to 1"),
        ([{"product_id": 2**40, "quantity": 1}], "less than or equal to"),
        ([{"product_id": 1, "quantity": 1}] * 101, "at most 100"),
        ([{"product_id": 1, "quantity": 1, "price_cents": 0}], "Extra inputs"),
        ([{"product_id": "x", "quantity": 1}], "valid integer"),
    ],
)
async def test_order_line_validation(
    client: httpx.AsyncClient, customer: Actor, items: list[dict[str, object]], fragment: str
) -> None:
    r = await client.post("/api/v2/orders", json={"items": items}, headers=customer.headers)
    assert r.status_code == 422
    assert fragment in r.text


async def test_unknown_product_is_422_naming_it(
    client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    pid = await make_product(client, admin)
    r = await place_order(client, customer, [(pid, 1), (999_999, 1)])
    assert r.status_code == 422
    assert "999999" in r.json()["detail"]
    assert r.json()["errors"][0]["loc"] == ["body", "items", 1, "product_id"]


async def test_merged_quantity_is_capped(
    client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    pid = await make_product(client, admin, stock=100)
    r = await place_order(client, customer, [(pid, 6000), (pid, 6000)])
    assert r.status_code == 422


async def test_orders_are_private(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    other = await make_user(app, client)
    pid = await make_product(client, admin, stock=10)
    oid = (await place_order(client, customer, [(pid, 1)])).json()["id"]
    await wait_settled(client, customer, [oid])
    for method, path in [
        ("GET", f"/api/v2/orders/{oid}"),
        ("POST", f"/api/v2/orders/{oid}/pay"),
        ("POST", f"/api/v2/orders/{oid}/cancel"),
        ("POST", f"/api/v2/orders/{oid}/confirm"),
    ]:
        r = await client.request(method, path, headers=other.headers)
        assert r.status_code == 404, path
    assert (await client.get("/api/v2/orders", headers=other.headers)).json()["items"] == []
    mine = (await client.get("/api/v2/orders", headers=customer.headers)).json()["items"]
    assert [o["id"] for o in mine] == [oid]
    everyone = (await client.get("/api/v2/orders", headers=admin.headers)).json()["items"]
    assert oid in [o["id"] for o in everyone]
    r = await client.post(f"/api/v2/orders/{oid}/cancel", headers=admin.headers)
    assert r.status_code == 200 and r.json()["status_reason"] == "cancelled by an admin"
    assert (await client.get("/api/v2/orders")).status_code == 401


async def test_list_orders_filter_and_pages(
    client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    pid = await make_product(client, admin, stock=100)
    ids = [(await place_order(client, customer, [(pid, 1)])).json()["id"] for _ in range(5)]
    await wait_settled(client, customer, ids)
    await client.post(f"/api/v2/orders/{ids[1]}/cancel", headers=customer.headers)
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, int | str] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v2/orders", params=params, headers=customer.headers)).json()
        seen += [o["id"] for o in page["items"]]
        assert all(o["items"] for o in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(ids, reverse=True)
    cancelled = (
        await client.get("/api/v2/orders?status=CANCELLED", headers=customer.headers)
    ).json()["items"]
    assert [o["id"] for o in cancelled] == [ids[1]]
    assert (
        await client.get("/api/v2/orders?status=NOPE", headers=customer.headers)
    ).status_code == 422


async def test_reservation_expiry(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    pid = await make_product(client, admin, stock=4)
    old = (await place_order(client, customer, [(pid, 2)])).json()["id"]
    fresh = (await place_order(client, customer, [(pid, 1)])).json()["id"]
    confirmed = (await place_order(client, customer, [(pid, 1)])).json()["id"]
    await wait_settled(client, customer, [old, fresh, confirmed])
    await client.post(f"/api/v2/orders/{confirmed}/confirm", headers=customer.headers)
    assert await stock_of(client, pid) == 0
    long_ago = utcnow() - timedelta(hours=1)
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(Order).where(Order.id.in_([old, confirmed])).values(reserved_at=long_ago)
        )
    async with app.state.sessionmaker() as session, session.begin():
        expired = await expire_reservations(
            in_session(session), cutoff=utcnow() - timedelta(minutes=15)
        )
    assert expired == 1
    app.state.events.wake()
    order = (await client.get(f"/api/v2/orders/{old}", headers=customer.headers)).json()
    assert order["status"] == "CANCELLED" and order["status_reason"] == "expired"

    async def released() -> bool:
        return await stock_of(client, pid) == 2

    await eventually(released)
    statuses = await wait_settled(client, customer, [fresh, confirmed])
    assert statuses == {fresh: "RESERVED", confirmed: "CONFIRMED"}
    async with app.state.sessionmaker() as session, session.begin():
        assert (
            await expire_reservations(in_session(session), cutoff=utcnow() - timedelta(minutes=15))
            == 0
        )
    await assert_stock_invariant(app.state.engine)


async def test_expiry_job_runs_in_the_dispatcher(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    app = await app_factory(
        settings_factory(reservation_ttl=timedelta(seconds=0), expiry_sweep_seconds=0.05)
    )
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        customer = await make_user(app, client)
        pid = await make_product(client, admin, stock=3)
        oid = (await place_order(client, customer, [(pid, 3)])).json()["id"]

        async def expired() -> bool:
            r = await client.get(f"/api/v2/orders/{oid}", headers=customer.headers)
            return bool(r.json()["status_reason"] == "expired")

        await eventually(expired)
        await eventually(lambda: _stock_is(client, pid, 3))
        await assert_stock_invariant(app.state.engine)


async def _stock_is(client: httpx.AsyncClient, pid: int, value: int) -> bool:
    return await stock_of(client, pid) == value


async def test_open_order_quota(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    app = await app_factory(settings_factory(max_open_orders_per_user=2))
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        customer = await make_user(app, client)
        pid = await make_product(client, admin, stock=100)
        first = await place_order(client, customer, [(pid, 1)])
        second = await place_order(client, customer, [(pid, 1)])
        third = await place_order(client, customer, [(pid, 1)])
        assert first.status_code == second.status_code == 201
        assert third.status_code == 409
        assert third.headers["content-type"] == "application/problem+json"
        assert "open orders" in third.json()["detail"]
        await client.post(f"/api/v2/orders/{first.json()['id']}/cancel", headers=customer.headers)
        assert (await place_order(client, customer, [(pid, 1)])).status_code == 201


@pytest.mark.parametrize("quota", [0, 5])
async def test_a_deactivated_or_deleted_account_cannot_order(
    app_factory: Callable[[Settings], Any],
    settings_factory: Callable[..., Settings],
    quota: int,
) -> None:
    # POST /orders reads only the token; on PostgreSQL its one statement checks the account
    # (with or without the quota's user lock), elsewhere the session path reads it first.
    # GET /orders/{id} reads only the token as well.
    app = await app_factory(settings_factory(max_open_orders_per_user=quota))
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        inactive, deleted = await make_user(app, client), await make_user(app, client)
        pid = await make_product(client, admin, stock=100)
        placed = await place_order(client, inactive, [(pid, 1)])
        assert placed.status_code == 201
        own = f"/api/v2/orders/{placed.json()['id']}"
        await client.patch(
            f"/api/v1/users/{inactive.id}", json={"is_active": False}, headers=admin.headers
        )
        # Reading it checks the account in the same statement too (GET /orders/{id}).
        assert (await client.get(own, headers=inactive.headers)).status_code == 401
        assert (await client.get(own, headers=admin.headers)).status_code == 200
        assert (
            await client.delete(f"/api/v1/users/{deleted.id}", headers=admin.headers)
        ).status_code == 204
        async with app.state.sessionmaker() as session:
            before = await session.scalar(text("SELECT count(*) FROM orders"))
        for actor in (inactive, deleted):
            for headers in (actor.headers, {**actor.headers, "Idempotency-Key": "k-1"}):
                r = await client.post(
                    "/api/v2/orders",
                    json={"items": [{"product_id": pid, "quantity": 1}]},
                    headers=headers,
                )
                assert r.status_code == 401, r.text
                assert r.headers["www-authenticate"] == "Bearer"
        async with app.state.sessionmaker() as session:
            assert await session.scalar(text("SELECT count(*) FROM orders")) == before


async def test_open_order_quota_holds_under_concurrent_creates(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    # One user's creations are counted one at a time (a row lock on PostgreSQL, the single
    # writer on SQLite): twelve at once against a quota of three make exactly three orders.
    app = await app_factory(settings_factory(max_open_orders_per_user=3))
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        customer = await make_user(app, client)
        pid = await make_product(client, admin, stock=100)
        answers = await asyncio.gather(
            *(place_order(client, customer, [(pid, 1)]) for _ in range(12))
        )
        assert sorted(r.status_code for r in answers) == [201] * 3 + [409] * 9
        mine = (await client.get("/api/v2/orders", headers=customer.headers)).json()["items"]
        assert len(mine) == 3


async def test_order_with_several_lines_and_an_unknown_product_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    pid = await make_product(client, admin, stock=10)
    r = await place_order(client, customer, [(pid, 1), (2_000_000, 1), (pid, 2)])
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"loc": ["body", "items", 1, "product_id"], "msg": "unknown product 2000000"}
    ]
    assert (await client.get("/api/v2/orders", headers=customer.headers)).json()["items"] == []
    async with app.state.sessionmaker() as session:
        assert (
            await session.scalar(text("SELECT count(*) FROM outbox WHERE type = 'order.created'"))
            == 0
        )
        assert await session.scalar(text("SELECT count(*) FROM order_items")) == 0
    ok = await place_order(client, customer, [(pid, 1), (pid, 2)])
    assert ok.status_code == 201
    assert ok.json()["items"] == [{"product_id": pid, "quantity": 3, "unit_price_cents": 1000}]


async def test_idempotent_create(client: httpx.AsyncClient, admin: Actor, customer: Actor) -> None:
    pid = await make_product(client, admin, stock=10)
    headers = {**customer.headers, "Idempotency-Key": "order-abc"}
    body = {"items": [{"product_id": pid, "quantity": 1}]}
    first = await client.post("/api/v2/orders", json=body, headers=headers)
    replay = await client.post("/api/v2/orders", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["location"] == first.headers["location"]
    assert replay.headers["idempotent-replayed"] == "true"
    other_body = await client.post(
        "/api/v2/orders", json={"items": [{"product_id": pid, "quantity": 2}]}, headers=headers
    )
    assert other_body.status_code == 422
    mine = (await client.get("/api/v2/orders", headers=customer.headers)).json()["items"]
    assert len(mine) == 1
    # The key is scoped per user: another user may use the same key.
    await wait_settled(client, customer, [first.json()["id"]])
    assert (
        await client.post(
            "/api/v2/orders", json=body, headers={**admin.headers, "Idempotency-Key": "order-abc"}
        )
    ).status_code == 201


async def test_idempotent_pay(client: httpx.AsyncClient, admin: Actor, customer: Actor) -> None:
    pid = await make_product(client, admin, stock=10)
    oid = (await place_order(client, customer, [(pid, 1)])).json()["id"]
    await wait_settled(client, customer, [oid])
    headers = {**customer.headers, "Idempotency-Key": "pay-1"}
    first = await client.post(f"/api/v2/orders/{oid}/pay", headers=headers)
    second = await client.post(f"/api/v2/orders/{oid}/pay", headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    plain = await client.post(f"/api/v2/orders/{oid}/pay", headers=customer.headers)
    assert plain.status_code == 409


async def test_failed_request_does_not_burn_the_key(
    client: httpx.AsyncClient, customer: Actor, admin: Actor
) -> None:
    headers = {**customer.headers, "Idempotency-Key": "k-1"}
    body = {"items": [{"product_id": 424242, "quantity": 1}]}
    assert (await client.post("/api/v2/orders", json=body, headers=headers)).status_code == 422
    pid = await make_product(client, admin)
    body = {"items": [{"product_id": pid, "quantity": 1}]}
    assert (await client.post("/api/v2/orders", json=body, headers=headers)).status_code == 201


async def test_idempotency_key_under_concurrency(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor, customer: Actor, shape: str
) -> None:
    """PostgreSQL: a retry while the first request holds the key is 409. SQLite serializes
    writers, so there the retry waits for the first request and gets its replay."""
    pid = await make_product(client, admin)
    body = {"items": [{"product_id": pid, "quantity": 1}]}
    headers = {**customer.headers, "Idempotency-Key": "in-flight"}
    if shape != "sqlite":
        # Hold the key's lock from another transaction, exactly as an in-flight request does.
        scope, key = "POST /api/v2/orders", "in-flight"
        digest = hashlib.sha256(f"{customer.id}\x00{scope}\x00{key}".encode()).digest()
        lock_id = int.from_bytes(digest[:8], "big", signed=True)
        async with app.state.engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            r = await client.post("/api/v2/orders", json=body, headers=headers)
            await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
        assert r.status_code == 409
        assert r.headers["retry-after"] == "1"
        assert (await client.post("/api/v2/orders", json=body, headers=headers)).status_code == 201
    else:
        first, second = await asyncio.gather(
            client.post("/api/v2/orders", json=body, headers=headers),
            client.post("/api/v2/orders", json=body, headers=headers),
        )
        assert first.status_code == second.status_code == 201
        assert first.json()["id"] == second.json()["id"]
        replayed = [r.headers.get("idempotent-replayed") for r in (first, second)]
        assert sorted(map(str, replayed)) == ["None", "true"]
