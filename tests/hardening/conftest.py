"""Hardening helpers: problem+json assertions and polling, shared by the files here."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """The response is one of `statuses`, rendered as RFC 9457 problem+json; returns the body."""
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON, response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    assert {"type", "title", "detail"} <= body.keys()
    return body
