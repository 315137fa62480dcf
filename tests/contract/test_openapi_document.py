"""The OpenAPI document tells the exact truth (issue 15, defects 2, 4, 5 and 7).

The document is what users generate clients from; these assertions pin what the generated
clients rely on. The answers themselves are checked against it by schemathesis
(tests/hardening/test_fuzz.py) and by the generated clients (tests/contract/test_*_client.py).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from taskhub.main import create_app
from tests.conftest import make_settings
from tests.factories import make_user

OPERATION_IDS = {
    "auth_signup", "auth_login_access_token", "auth_login_test_token",
    "auth_login_access_token_v2", "users_me_get", "users_me_get_v2", "users_me_update",
    "users_list", "users_create", "users_get", "users_update", "users_delete",
    "projects_create", "projects_list", "projects_get", "projects_update", "projects_replace",
    "projects_delete", "projects_transfer_ownership", "projects_members_list",
    "projects_members_get", "projects_members_replace", "projects_members_delete",
    "tasks_create", "tasks_list", "tasks_get", "tasks_update", "tasks_replace", "tasks_delete",
    "tasks_status", "tasks_assign", "tasks_activity_list", "products_create", "products_list",
    "products_get", "products_update", "products_delete", "products_stock_update",
    "orders_create", "orders_list", "orders_get", "orders_confirm", "orders_pay",
    "orders_cancel", "health", "ready", "auth_stream_ticket", "orders_events_stream",
    "projects_events_stream",
}  # fmt: skip
# Event streams also take a stream ticket (`?ticket=`), for EventSource clients.
STREAMS = {"orders_events_stream", "projects_events_stream"}
PUBLIC = {
    "auth_signup", "auth_login_access_token", "auth_login_access_token_v2", "products_list",
    "products_get", "health", "ready",
}  # fmt: skip


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(make_settings(database_url="sqlite+aiosqlite:///:memory:"))
    return app.openapi()


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            found[operation["operationId"]] = {**operation, "path": path, "method": method}
    return found


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def test_operation_ids_are_short_and_stable(document: dict[str, Any]) -> None:
    names = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(names) == len(set(names))
    assert OPERATION_IDS <= set(names), OPERATION_IDS - set(names)
    for name in names:
        assert re.fullmatch(r"[a-z][a-z0-9_]{2,40}", name), name


def test_put_member_documents_its_201(document: dict[str, Any]) -> None:
    put = operations(document)["projects_members_replace"]["responses"]
    assert {"200", "201"} <= put.keys()
    assert put["201"]["headers"]["Location"]["required"] is True
    assert put["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MemberOut"
    }


def test_every_201_documents_location(document: dict[str, Any]) -> None:
    created = [op for op in operations(document).values() if "201" in op["responses"]]
    assert len(created) >= 7
    for op in created:
        assert op["responses"]["201"]["headers"]["Location"]["required"], op["operationId"]


def test_omit_but_not_null_fields_are_not_nullable(document: dict[str, Any]) -> None:
    for model, fields in {
        "ProjectUpdateIn": ["title"],
        "TaskUpdateIn": ["title", "status", "priority"],
    }.items():
        properties = schema(document, model)["properties"]
        for field in fields:
            assert "null" not in str(properties[field]), (model, field, properties[field])
            assert "default" not in properties[field]
        assert "required" not in schema(document, model)
    # Fields where null means "clear it" stay nullable.
    task_update = schema(document, "TaskUpdateIn")["properties"]
    for clearable in ("description", "assignee_id", "due_date"):
        assert {"type": "null"} in task_update[clearable]["anyOf"]


async def test_omit_but_not_null_is_what_the_server_does(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await make_user(app, client)
    project = await client.post("/api/v1/projects", json={"title": "P"}, headers=owner.headers)
    project_id = project.json()["id"]
    refused = await client.patch(
        f"/api/v1/projects/{project_id}", json={"title": None}, headers=owner.headers
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["body", "title"]
    cleared = await client.patch(
        f"/api/v1/projects/{project_id}", json={"description": None}, headers=owner.headers
    )
    assert cleared.status_code == 200 and cleared.json()["description"] is None


def test_constraints_the_server_applies_are_documented(document: dict[str, Any]) -> None:
    for model in ("SignupIn", "UserCreateIn"):
        password = schema(document, model)["properties"]["password"]
        assert password["minLength"] == 8 and password["maxLength"] == 72
    for model in ("UserUpdateIn", "UserUpdateMeIn"):
        password = schema(document, model)["properties"]["password"]["anyOf"][0]
        assert password["minLength"] == 8
    login = schema(document, "LoginForm")["properties"]
    assert login["username"]["minLength"] == 1 and login["password"]["minLength"] == 1
    ops = operations(document)
    for name in ("tasks_list", "products_list"):
        q = next(p for p in ops[name]["parameters"] if p["name"] == "q")
        assert q["schema"]["pattern"] == "^[^\\u0000]*$", name
    assert schema(document, "ProductCreateIn")["properties"]["name"]["pattern"] == ("^[^\\u0000]*$")


def test_both_logins_share_one_form(document: dict[str, Any]) -> None:
    ops = operations(document)
    for name in ("auth_login_access_token", "auth_login_access_token_v2"):
        form = ops[name]["requestBody"]["content"]["application/x-www-form-urlencoded"]
        assert form["schema"] == {"$ref": "#/components/schemas/LoginForm"}
    assert not [name for name in document["components"]["schemas"] if name.startswith("Body_")]


def test_enums_are_named_and_readable(document: dict[str, Any]) -> None:
    sort = schema(document, "TaskSort")
    assert "-due_date" in sort["enum"]
    assert sort["x-enum-varnames"][sort["enum"].index("-due_date")] == "DUE_DATE_DESC"
    params = {p["name"]: p["schema"] for p in operations(document)["tasks_list"]["parameters"]}
    assert params["status"] == {"$ref": "#/components/schemas/TaskStatus"}
    assert params["priority"] == {"$ref": "#/components/schemas/TaskPriority"}
    assert params["sort"]["$ref"] == "#/components/schemas/TaskSort"
    transition = schema(document, "TransitionProblem")
    assert transition["properties"]["current_status"] == {
        "$ref": "#/components/schemas/OrderStatus",
        "description": "The order's status when it refused",
    }
    pay_409 = operations(document)["orders_pay"]["responses"]["409"]["content"]
    refs = [s["$ref"] for s in pay_409["application/problem+json"]["schema"]["anyOf"]]
    assert "#/components/schemas/TransitionProblem" in refs


def test_ready_is_typed(document: dict[str, Any]) -> None:
    ready = operations(document)["ready"]["responses"]
    assert ready["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReadyOut"
    }
    assert ready["503"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/ReadinessProblem"
    }
    assert set(schema(document, "ReadyChecks")["properties"]) == {
        "database", "migrations", "redis"
    }  # fmt: skip


def test_headers_are_documented(document: dict[str, Any]) -> None:
    ops = operations(document)
    for name, op in ops.items():
        for code, response in op["responses"].items():
            headers = response["headers"]
            assert headers["X-Request-ID"]["required"], (name, code)
            if code == "401":
                assert headers["WWW-Authenticate"]["required"], name
            if code in ("429", "503"):
                assert headers["Retry-After"]["required"], (name, code)
    assert "Retry-After" in ops["orders_pay"]["responses"]["409"]["headers"]
    for name, code in (("orders_create", "201"), ("orders_pay", "200")):
        assert "Idempotent-Replayed" in ops[name]["responses"][code]["headers"]


def test_public_operations_say_so(document: dict[str, Any]) -> None:
    for name, op in operations(document).items():
        if name in PUBLIC:
            assert op["security"] == [], name
            assert "401" not in op["responses"] or name.startswith("auth_login"), name
        elif name in STREAMS:
            assert op["security"] == [{"OAuth2PasswordBearer": []}, {"StreamTicket": []}], name
            assert "401" in op["responses"], name
        else:
            assert op["security"] == [{"OAuth2PasswordBearer": []}], name
            assert "401" in op["responses"], name


def test_every_operation_documents_an_error(document: dict[str, Any]) -> None:
    for name, op in operations(document).items():
        assert any(code.startswith("4") for code in op["responses"]), name
    assert "503" in operations(document)["ready"]["responses"]


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    bodies = 0
    for name, op in operations(document).items():
        for media in op.get("requestBody", {}).get("content", {}).values():
            ref = media["schema"]["$ref"].rsplit("/", 1)[-1]
            assert schema(document, ref).get("examples"), (name, ref)
            bodies += 1
    assert bodies >= 15


def test_event_streams_are_documented_as_such(document: dict[str, Any]) -> None:
    ops = operations(document)
    for name, envelope in (
        ("orders_events_stream", "OrderEvent"),
        ("projects_events_stream", "ProjectEvent"),
    ):
        ok = ops[name]["responses"]["200"]
        assert list(ok["content"]) == ["text/event-stream"], name
        # Each message (OpenAPI 3.1 has no `itemSchema`).
        message = ok["content"]["text/event-stream"]["schema"]
        assert message["required"] == ["id", "event", "data"]
        data = message["properties"]["data"]
        assert data["contentMediaType"] == "application/json"
        assert data["contentSchema"] == {"$ref": f"#/components/schemas/{envelope}"}
        assert ok["headers"]["X-Request-ID"]["required"]
        params = {(p["in"], p["name"]) for p in ops[name]["parameters"]}
        assert {("header", "Last-Event-ID"), ("query", "last_event_id")} <= params
    assert {"401", "404", "503"} <= ops["projects_events_stream"]["responses"].keys()
    payload = schema(document, "OrderEventPayload")
    assert payload["required"] == ["order_id"]
    assert schema(document, "ProjectEvent")["properties"]["payload"] == {
        "$ref": "#/components/schemas/ProjectEventPayload"
    }
    ticket = document["components"]["securitySchemes"]["StreamTicket"]
    assert (ticket["type"], ticket["in"], ticket["name"]) == ("apiKey", "query", "ticket")
    issued = ops["auth_stream_ticket"]["responses"]["200"]["content"]["application/json"]
    assert issued["schema"] == {"$ref": "#/components/schemas/StreamTicketOut"}
    # The page is not part of the API.
    assert not [path for path in document["paths"] if path.startswith("/live")]
