"""The README's walk-throughs (design §7), v1 and v2, through the generated Python client
(clients/python, `make clients`) with raise_on_unexpected_status=True, on both shapes: any
answer the OpenAPI document does not declare raises, and every body is parsed by the
generated models (issue 15: "a generated Python client needed workarounds")."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from fastapi import FastAPI
from taskhub_client import AuthenticatedClient, Client
from taskhub_client.api.auth import auth_login_access_token, auth_login_access_token_v2
from taskhub_client.api.operations import health, ready
from taskhub_client.api.orders import orders_cancel, orders_create, orders_get, orders_pay
from taskhub_client.api.products import products_create, products_get, products_list
from taskhub_client.api.projects import projects_create, projects_members_replace
from taskhub_client.api.tasks import tasks_activity_list, tasks_create, tasks_list, tasks_status
from taskhub_client.api.users import users_create, users_me_get_v2
from taskhub_client.models import (
    LoginForm,
    MemberOut,
    MemberRoleIn,
    OrderCreateIn,
    OrderLineIn,
    OrderOut,
    OrderStatus,
    PageActivityOut,
    PageProductOut,
    PageTaskOut,
    ProductCreateIn,
    ProductOut,
    ProjectCreateIn,
    ProjectOut,
    ReadyOut,
    Role,
    TaskCreateIn,
    TaskOut,
    TaskPriority,
    TaskSort,
    TaskStatus,
    TokenOut,
    TransitionProblem,
    UserCreateIn,
    UserOut,
)

from tests.factories import make_user

PASSWORD = "Walk-through-123"


def _options(app: FastAPI) -> dict[str, Any]:
    return {
        "base_url": "http://testserver",
        "raise_on_unexpected_status": True,
        "timeout": httpx.Timeout(30),
        "httpx_args": {"transport": httpx.ASGITransport(app=app)},
    }


def anonymous(app: FastAPI) -> Client:
    """The generated client, speaking to the app in-process."""
    return Client(**_options(app))


def authenticated(app: FastAPI, token: str) -> AuthenticatedClient:
    """The generated client with a bearer token."""
    return AuthenticatedClient(token=token, **_options(app))


async def wait_until_settled(api: AuthenticatedClient, order_id: int) -> OrderOut:
    deadline = time.monotonic() + 30
    while True:
        order = await orders_get.asyncio(order_id, client=api)
        assert isinstance(order, OrderOut)
        if order.status is not OrderStatus.PENDING:
            return order
        assert time.monotonic() < deadline, "the order was never reserved"
        await asyncio.sleep(0.05)


async def stock_of(api: AuthenticatedClient, product_id: int) -> int:
    product = await products_get.asyncio(product_id, client=api)
    assert isinstance(product, ProductOut)
    return product.stock


async def test_v2_walkthrough(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_user(app, client, is_superuser=True, password=PASSWORD)
    # 1) Log in (v2)
    token = await auth_login_access_token_v2.asyncio(
        client=anonymous(app), body=LoginForm(username=admin.email, password=PASSWORD)
    )
    assert isinstance(token, TokenOut) and token.token_type == "bearer"
    api = authenticated(app, token.access_token)
    me = await users_me_get_v2.asyncio(client=api)
    assert isinstance(me, UserOut) and me.is_superuser
    # 2) Create a product
    created = await products_create.asyncio_detailed(
        client=api, body=ProductCreateIn(sku="SKU-1001", name="T-Shirt", price_cents=1999, stock=10)
    )
    product = created.parsed
    assert created.status_code == 201 and isinstance(product, ProductOut) and product.stock == 10
    assert created.headers["location"] == f"/api/v2/products/{product.id}"
    # 3) List products (public)
    listed = await products_list.asyncio(client=anonymous(app))
    assert isinstance(listed, PageProductOut) and [p.sku for p in listed.items] == ["SKU-1001"]
    # 4) Create an order for 2 units
    line = OrderCreateIn(items=[OrderLineIn(product_id=product.id, quantity=2)])
    placed = await orders_create.asyncio(client=api, body=line)
    assert isinstance(placed, OrderOut) and placed.status is OrderStatus.PENDING
    assert placed.total_cents == 3998
    # 5) Wait for RESERVED
    assert (await wait_until_settled(api, placed.id)).status is OrderStatus.RESERVED
    # 6) Pay
    paid = await orders_pay.asyncio(placed.id, client=api, idempotency_key="pay-once")
    assert paid is not None and paid.status is OrderStatus.PAID
    replay = await orders_pay.asyncio_detailed(placed.id, client=api, idempotency_key="pay-once")
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
    # 7) Cancel a paid order: 409, carrying the order's status as the enum
    refused = await orders_cancel.asyncio_detailed(placed.id, client=api)
    assert refused.status_code == 409
    assert isinstance(refused.parsed, TransitionProblem)
    assert refused.parsed.current_status is OrderStatus.PAID
    # The compensation path: a second order, cancelled, gives its stock back.
    second = await orders_create.asyncio(client=api, body=line, idempotency_key="second")
    again = await orders_create.asyncio_detailed(client=api, body=line, idempotency_key="second")
    assert isinstance(second, OrderOut) and again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == f"/api/v2/orders/{second.id}"
    await wait_until_settled(api, second.id)
    cancelled = await orders_cancel.asyncio(second.id, client=api)
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELLED
    deadline = time.monotonic() + 30
    while await stock_of(api, product.id) != 8:
        assert time.monotonic() < deadline, "the cancelled order's stock never came back"
        await asyncio.sleep(0.05)
    # The operations endpoints are typed too.
    assert (await health.asyncio(client=anonymous(app))) is not None
    readiness = await ready.asyncio(client=anonymous(app))
    assert isinstance(readiness, ReadyOut) and readiness.checks.database == "ok"


async def test_v1_walkthrough(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_user(app, client, is_superuser=True, password=PASSWORD)
    # 1) Log in (v1)
    token = await auth_login_access_token.asyncio(
        client=anonymous(app), body=LoginForm(username=admin.email, password=PASSWORD)
    )
    assert isinstance(token, TokenOut)
    api = authenticated(app, token.access_token)
    # 2) Create a user
    dev = await users_create.asyncio(
        client=api,
        body=UserCreateIn(email="dev@example.com", password="Dev-pass-123", full_name="Dev"),
    )
    assert isinstance(dev, UserOut) and dev.email == "dev@example.com"
    # 3) Create a project
    project = await projects_create.asyncio(
        client=api, body=ProjectCreateIn(title="Launch", description="First project")
    )
    assert isinstance(project, ProjectOut) and project.my_role is Role.OWNER
    # 4) Add the new user as a member: 201 with Location (documented since issue 15)
    added = await projects_members_replace.asyncio_detailed(
        project.id, dev.id, client=api, body=MemberRoleIn(role=Role.MEMBER)
    )
    assert added.status_code == 201 and isinstance(added.parsed, MemberOut)
    assert added.parsed.role is Role.MEMBER
    assert added.headers["location"] == f"/api/v1/projects/{project.id}/members/{dev.id}"
    # ... and again: now a role change, 200
    changed = await projects_members_replace.asyncio_detailed(
        project.id, dev.id, client=api, body=MemberRoleIn(role=Role.MEMBER)
    )
    assert changed.status_code == 200
    # 5) Create a task assigned to them
    task = await tasks_create.asyncio(
        client=api,
        body=TaskCreateIn(
            title="Write the docs",
            project_id=project.id,
            assignee_id=dev.id,
            priority=TaskPriority.HIGH,
        ),
    )
    assert isinstance(task, TaskOut) and task.assignee_id == dev.id
    # 6) List tasks, most urgent first
    page = await tasks_list.asyncio(client=api, sort=TaskSort.PRIORITY_DESC, limit=50)
    assert isinstance(page, PageTaskOut) and [t.id for t in page.items] == [task.id]
    # 7) Move the task along, and read its history
    moved = await tasks_status.asyncio(task.id, TaskStatus.IN_PROGRESS, client=api)
    assert moved is not None and moved.status is TaskStatus.IN_PROGRESS
    activity = await tasks_activity_list.asyncio(task.id, client=api)
    assert isinstance(activity, PageActivityOut)
    assert "status" in [entry.field for entry in activity.items]
    # The new user logs in and sees the task.
    dev_token = await auth_login_access_token.asyncio(
        client=anonymous(app), body=LoginForm(username="dev@example.com", password="Dev-pass-123")
    )
    assert isinstance(dev_token, TokenOut)
    seen = await tasks_list.asyncio(client=authenticated(app, dev_token.access_token))
    assert isinstance(seen, PageTaskOut) and [t.id for t in seen.items] == [task.id]
