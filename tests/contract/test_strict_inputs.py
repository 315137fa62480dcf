"""JSON bodies are strictly typed (design §5; issue 15, defect 3): no bool, string or float
becomes an integer, and no number or string becomes a boolean.

One test walks every request body model the app declares, and each of their nested models,
and proves it for every integer and boolean field; the others send the issue's own examples
over HTTP, on both shapes.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ValidationError

from taskhub.fields import StrictModel
from taskhub.main import create_app
from tests.commerce.conftest import make_product
from tests.conftest import make_settings
from tests.factories import Actor, make_user

NOT_INTEGERS: list[Any] = [True, False, "7", "-3", 2.0, 1e3, 1.5]
NOT_BOOLEANS: list[Any] = [1, 0, "true", "false", 1.0, "1"]


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        for field in annotation.model_fields.values():
            yield from _models_in(field.annotation)
        return
    for arg in get_args(annotation):
        yield from _models_in(arg)


def json_body_models(app: FastAPI) -> set[type[BaseModel]]:
    """Every model that some route reads from a JSON body, with the models nested in it."""
    models: set[type[BaseModel]] = set()
    for route in iter_route_contexts(app.router.routes):
        body = getattr(route, "body_field", None)
        if body is None or type(body.field_info).__name__ == "Form":
            continue
        models.update(_models_in(body.field_info.annotation))
    return models


def _scalar(annotation: Any) -> Any:
    """int, bool or float, through Optional and Annotated; None for anything else."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        kinds = {_scalar(arg) for arg in get_args(annotation) if arg is not type(None)}
        kinds.discard(None)
        return kinds.pop() if len(kinds) == 1 else None
    return annotation if annotation in (int, bool, float) else None


def test_every_json_body_refuses_lax_numbers_and_booleans() -> None:
    app = create_app(make_settings(database_url="sqlite+aiosqlite:///:memory:"))
    models = json_body_models(app)
    names = {model.__name__ for model in models}
    assert {"OrderCreateIn", "OrderLineIn", "ProductCreateIn", "TaskCreateIn"} <= names
    checked: list[str] = []
    for model in sorted(models, key=lambda m: m.__name__):
        assert issubclass(model, StrictModel), f"{model.__name__} is not a StrictModel"
        for name, field in model.model_fields.items():
            kind = _scalar(field.annotation)
            if kind is None:
                continue
            bad_values = NOT_BOOLEANS if kind is bool else NOT_INTEGERS
            for bad in bad_values:
                try:
                    model.model_validate({name: bad})
                    errors = []
                except ValidationError as exc:
                    errors = exc.errors()
                at_field = [e for e in errors if e["loc"] == (name,)]
                assert at_field, f"{model.__name__}.{name} accepted {bad!r}"
                assert at_field[0]["type"] in ("int_type", "bool_type"), at_field
            checked.append(f"{model.__name__}.{name}")
    for expected in (
        "OrderLineIn.product_id",
        "OrderLineIn.quantity",
        "ProductCreateIn.price_cents",
        "ProductCreateIn.stock",
        "ProductUpdateIn.price_cents",
        "TaskCreateIn.project_id",
        "UserCreateIn.is_superuser",
        "UserUpdateIn.is_active",
    ):
        assert expected in checked, (expected, checked)


@pytest.mark.parametrize(
    "items",
    [
        [{"product_id": True, "quantity": True}],
        [{"product_id": "1", "quantity": 2}],
        [{"product_id": 1, "quantity": 2.0}],
        [{"product_id": 1, "quantity": 1e3}],
    ],
    ids=["booleans", "numeric-string", "float", "exponent"],
)
async def test_orders_refuse_lax_integers(
    app: FastAPI, client: httpx.AsyncClient, items: list[dict[str, Any]]
) -> None:
    admin = await make_user(app, client, is_superuser=True)
    await make_product(client, admin, stock=5000)
    r = await client.post("/api/v2/orders", json={"items": items}, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"][:3] == ["body", "items", 0]
    listed = await client.get("/api/v2/orders", headers=admin.headers)
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [({"price_cents": False}, "price_cents"), ({"price_cents": "1999"}, "price_cents")],
)
async def test_products_refuse_lax_integers(
    app: FastAPI, client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    admin = await make_user(app, client, is_superuser=True)
    product_id = await make_product(client, admin, price_cents=1000)
    r = await client.patch(f"/api/v2/products/{product_id}", json=change, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", field]
    assert (await client.get(f"/api/v2/products/{product_id}")).json()["price_cents"] == 1000
    created = await client.post(
        "/api/v2/products",
        json={"sku": "SKU-STRICT", "name": "Strict", "price_cents": 100, "stock": "7"},
        headers=admin.headers,
    )
    assert created.status_code == 422, created.text
    assert created.json()["errors"][0]["loc"] == ["body", "stock"]


async def test_booleans_refuse_numbers(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_user(app, client, is_superuser=True)
    other: Actor = await make_user(app, client)
    r = await client.patch(
        f"/api/v1/users/{other.id}", json={"is_superuser": 1}, headers=admin.headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", "is_superuser"]


async def test_strings_that_json_cannot_type_still_parse(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Timestamps and enums arrive as strings: strict typing must not refuse them."""
    owner = await make_user(app, client)
    project = await client.post("/api/v1/projects", json={"title": "P"}, headers=owner.headers)
    r = await client.post(
        "/api/v1/tasks",
        json={
            "title": "T",
            "project_id": project.json()["id"],
            "status": "in_progress",
            "priority": "high",
            "due_date": "2030-01-02T03:04:05+02:00",
        },
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["due_date"].startswith("2030-01-02T01:04:05")
    # Query strings and paths still parse numbers from text, as they arrive.
    listed = await client.get(
        f"/api/v1/tasks?project_id={project.json()['id']}&limit=5", headers=owner.headers
    )
    assert [t["id"] for t in listed.json()["items"]] == [r.json()["id"]]


async def test_timestamps_are_date_time_text_only(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Found by schemathesis: `"due_date": 0` and `?due_before=0.5` were read as seconds
    since 1970, where the document says an ISO 8601 date-time."""
    owner = await make_user(app, client)
    project = await client.post("/api/v1/projects", json={"title": "P"}, headers=owner.headers)
    for bad in (0, 1.5, "1700000000", "2030-01-02"):
        r = await client.post(
            "/api/v1/tasks",
            json={"title": "T", "project_id": project.json()["id"], "due_date": bad},
            headers=owner.headers,
        )
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["errors"][0]["loc"] == ["body", "due_date"]
    r = await client.get("/api/v1/tasks?due_before=0.5", headers=owner.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["query", "due_before"]
