"""Schemathesis hooks for tests/hardening/test_fuzz.py (loaded through SCHEMATHESIS_HOOKS):
a check of taskhub's own error format, run with the built-in checks."""

from __future__ import annotations

from typing import Any

import schemathesis

PROBLEM_JSON = "application/problem+json"


@schemathesis.check
def errors_are_problem_json(ctx: Any, response: schemathesis.Response, case: Any) -> bool | None:
    """Every 4xx/5xx answer is an RFC 9457 problem document."""
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith(PROBLEM_JSON), (
            f"{response.status_code} answered with {content_type!r}, not {PROBLEM_JSON}"
        )
        body = response.json()
        assert body["status"] == response.status_code, body
        assert {"type", "title", "detail"} <= body.keys(), body
    return None
