"""405 names every allowed method; OPTIONS on a known path answers 204 with Allow
(RFC 9110 §15.5.6, §9.3.7; issue 15, defect 1). CORS preflights are tested in
tests/hardening/test_limits.py."""

from __future__ import annotations

import re

import httpx

from tests.hardening.conftest import assert_problem

UNUSED = ("PUT", "PATCH", "DELETE", "POST", "GET")


async def test_every_path_lists_all_its_methods(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    checked = 0
    for template, item in paths.items():
        declared = {m.upper() for m in item if m in ("get", "put", "post", "patch", "delete")}
        path = re.sub(r"\{[^}]+\}", "1", template)
        if "{status}" in template:
            path = template.replace("{task_id}", "1").replace("{status}", "done")
        options = await client.options(path)
        assert options.status_code == 204, (template, options.text)
        assert options.content == b""
        allow = [m.strip() for m in options.headers["allow"].split(",")]
        assert set(allow) == declared | {"OPTIONS"}, (template, allow)
        for method in UNUSED:
            if method not in declared:
                refused = await client.request(method, path)
                assert_problem(refused, 405)
                assert refused.headers["allow"] == options.headers["allow"], template
                checked += 1
    assert checked > 30


async def test_the_issues_examples(client: httpx.AsyncClient) -> None:
    r = await client.options("/api/v1/projects")
    assert r.status_code == 204 and r.headers["allow"] == "GET, POST, OPTIONS"
    r = await client.options("/api/v1/tasks/1")
    assert r.status_code == 204 and r.headers["allow"] == "GET, PUT, PATCH, DELETE, OPTIONS"
    r = await client.post("/api/v1/tasks/1")
    assert_problem(r, 405)
    assert r.headers["allow"] == "GET, PUT, PATCH, DELETE, OPTIONS"
    # A trailing slash is the same resource.
    assert (await client.options("/api/v1/projects/")).headers["allow"] == "GET, POST, OPTIONS"


async def test_unknown_paths_are_404_for_options_too(client: httpx.AsyncClient) -> None:
    assert_problem(await client.options("/api/v1/nowhere"), 404)
