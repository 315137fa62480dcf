"""Failures the fuzzer (tests/hardening/test_fuzz.py) found, kept as plain regression tests.

Each test names the input that broke the service and what it used to answer. They run on both
shapes (`client`): several of them only ever failed on PostgreSQL.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import make_user
from tests.hardening.conftest import PROBLEM_JSON, assert_problem

LOGIN = "/api/v1/auth/login/access-token"


@pytest.mark.parametrize("path", [LOGIN, "/api/v2/auth/login/access-token"])
async def test_nul_character_in_login_username(client: httpx.AsyncClient, path: str) -> None:
    # Found by schemathesis: `username=\x05...\x00...` answered 500 on PostgreSQL, which
    # refuses NUL in text (SQLSTATE 22021, raised by asyncpg as a bare DBAPIError).
    r = await client.post(path, data={"username": "a\x00b@example.com", "password": "whatever1"})
    # The form refuses NUL before any lookup, on both shapes.
    assert_problem(r, 422)


async def test_nul_character_in_search_and_text_fields(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # The same class of input, on the other routes that bind client text into SQL. Every
    # stored or searched text refuses NUL in validation, on both shapes, as documented
    # (the pattern ^[^\u0000]*$ in the OpenAPI document).
    admin = await make_user(app, client, is_superuser=True)
    r = await client.get("/api/v2/products", params={"q": "shirt\x00"})
    assert assert_problem(r, 422)["errors"][0]["loc"] == ["query", "q"]
    r = await client.post(
        "/api/v2/products",
        json={"sku": "NUL-1", "name": "bad\x00name", "price_cents": 1, "stock": 1},
        headers=admin.headers,
    )
    assert assert_problem(r, 422)["errors"][0]["loc"] == ["body", "name"]
    r = await client.patch(
        "/api/v1/users/me", json={"full_name": "nul\x00name"}, headers=admin.headers
    )
    assert assert_problem(r, 422)["errors"][0]["loc"] == ["body", "full_name"]


async def test_openapi_documents_problem_json_errors(client: httpx.AsyncClient) -> None:
    # Found by schemathesis: every 422 was documented as FastAPI's `HTTPValidationError` in
    # application/json while the app sends problem+json, and the 400 (malformed JSON, forged
    # cursor) and 503 answers were not documented at all.
    schema = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    operations = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            operations += 1
            responses = operation["responses"]
            for code, response in responses.items():
                if int(code) >= 400:
                    assert list(response["content"]) == [PROBLEM_JSON], (method, path, code)
                    schema_ = response["content"][PROBLEM_JSON]["schema"]
                    refs = [s["$ref"] for s in schema_.get("anyOf", [schema_])]
                    assert all(r.endswith("Problem") for r in refs), (method, path, code)
            if path != "/health":
                assert "Retry-After" in responses["503"]["headers"], (method, path)
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                assert {"400", "413", "422"} <= responses.keys(), (method, path)
    assert operations > 40


async def test_malformed_json_body_is_a_documented_400(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # Found by schemathesis: a body of b"\x00" got 400 (right) on operations whose documented
    # answers did not include 400.
    user = await make_user(app, client)
    r = await client.post(
        "/api/v2/orders",
        content=b"\x00",
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert_problem(r, 400)
    schema = (await client.get("/openapi.json")).json()
    assert "400" in schema["paths"]["/api/v2/orders"]["post"]["responses"]


async def test_empty_cursor_is_a_documented_400(app: FastAPI, client: httpx.AsyncClient) -> None:
    # Found by schemathesis: `?cursor=` (empty) answered an undocumented 400 on list routes.
    user = await make_user(app, client)
    for path in ["/api/v2/products", "/api/v2/orders", "/api/v1/projects", "/api/v1/tasks"]:
        r = await client.get(path, params={"cursor": ""}, headers=user.headers)
        assert_problem(r, 400)


async def test_cursor_with_junk_appended_is_rejected(client: httpx.AsyncClient) -> None:
    """A valid cursor with characters outside base64url added used to decode anyway."""
    page = (await client.get("/api/v2/products?limit=1")).json()
    assert page["next_cursor"] is None  # no products: make one cursor by hand
    from taskhub.pagination import encode_cursor

    good = encode_cursor([1])
    assert (await client.get(f"/api/v2/products?cursor={good}")).status_code == 200
    for bad in (good + "!!", good + "*", "é" + good):
        r = await client.get("/api/v2/products", params={"cursor": bad})
        assert r.status_code == 400, bad
        assert r.headers["content-type"] == "application/problem+json"
