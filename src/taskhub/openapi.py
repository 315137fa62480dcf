"""The OpenAPI document, finished so that it tells the exact truth about the API.

FastAPI writes the paths, parameters and models. `finish_document` then adds what only the
app knows, in one pass over every operation:

- every answer it can give: the errors its route names (`errors.problem_responses`) and the
  ones the edge gives any operation (400 malformed JSON or cursor, 401 where a token is
  needed, 409 when a concurrent write got in the way, 413, 422, 503), each as
  application/problem+json with its problem schema (`ValidationProblem`, `TransitionProblem`
  with the order's `current_status`, ...) and its headers (`Retry-After`, `WWW-Authenticate`);
- the headers of every answer: `Location` on a 201, `X-Request-ID` on all;
- `security: []` on the public operations;
- short, stable operation ids (`operation_id`);
- the named schemas of query strings validated as one model (`taskhub.query.documented`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from taskhub.errors import (
    PROBLEM_JSON,
    PROBLEMS_KEY,
    AppError,
    BadRequest,
    ConcurrentUpdate,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    error_classes,
)
from taskhub.query import SCHEMAS_KEY

# `openapi_extra` of an operation whose handler writes nothing (no 409 from a concurrent
# write can happen there).
READS_ONLY_KEY = "x-taskhub-reads-only"
READS_ONLY: dict[str, Any] = {READS_ONLY_KEY: True}

METHODS = ("get", "put", "post", "patch", "delete")
UNSAFE = ("put", "post", "patch", "delete")
HEADERS: dict[str, dict[str, Any]] = {
    "Location": {
        "description": "The path of the resource this request created",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    },
    "WWW-Authenticate": {
        "description": "The authentication scheme to use: `Bearer`",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "Present (`true`) when this is the stored answer to an earlier request "
        "with the same `Idempotency-Key`",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "X-Request-ID": {
        "description": "The request's id (the client's own `X-Request-ID` when it sent a "
        "sane one); logs and events carry it too",
        "schema": {"type": "string"},
    },
}


def header(name: str, *, required: bool) -> dict[str, Any]:
    """A response header object, documented once in HEADERS."""
    return {**HEADERS[name], "required": required}


def replayable(status: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of an operation that takes an Idempotency-Key: its `status` answer may be
    a replay."""
    replayed = header("Idempotent-Replayed", required=False)
    return {status: {"headers": {"Idempotent-Replayed": replayed}}}


def install_openapi(app: FastAPI) -> None:
    """Serve the finished document (built once, on first use)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish_document(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def finish_document(document: dict[str, Any]) -> dict[str, Any]:
    """See the module docstring."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    errors = error_classes()
    problem_models = {cls.problem for cls in errors.values()}
    _add_schemas(schemas, problem_models)
    ids: dict[tuple[str, str], str] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            for name, named in operation.pop(SCHEMAS_KEY, {}).items():
                schemas.setdefault(name, named)
            operation.setdefault("security", [])
            _document_answers(path, method, operation, errors)
            ids[(path, method)] = operation_id(path, method, item)
    _name_operations(document, ids)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def _add_schemas(schemas: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    ordered = sorted(models, key=lambda model: model.__name__)
    refs, definitions = models_json_schema(
        [(model, "serialization") for model in ordered],
        ref_template="#/components/schemas/{model}",
    )
    for name, schema in definitions.get("$defs", {}).items():
        schemas.setdefault(name, schema)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _document_answers(
    path: str, method: str, operation: dict[str, Any], errors: dict[str, type[AppError]]
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    named: dict[str, list[type[AppError]]] = {}
    for code, response in responses.items():
        names = response.pop(PROBLEMS_KEY, None)
        if names:
            named[code] = [errors[name] for name in names]
    body = operation.get("requestBody", {}).get("content", {})
    parameters = operation.get("parameters", [])
    common: list[type[AppError]] = [PayloadTooLarge]
    if "application/json" in body or any(p.get("name") == "cursor" for p in parameters):
        common.append(BadRequest)
    if body or parameters:
        common.append(Unprocessable)
    if path != "/health":
        common.append(ServiceUnavailable)
    if operation["security"]:
        common.append(Unauthorized)
    if method in UNSAFE and not operation.pop(READS_ONLY_KEY, False):
        common.append(ConcurrentUpdate)
    for error in common:
        code = str(error.status)
        # A hand-written answer (FastAPI's own 422 aside) is kept as its route wrote it.
        if code in responses and code not in named and code != "422":
            continue
        listed = named.setdefault(code, [])
        if error not in listed:
            listed.append(error)
    for code, listed in named.items():
        responses[code] = _problem_answer(responses.get(code, {}), listed)
    for code, response in responses.items():
        headers = response.setdefault("headers", {})
        if code == "201":
            headers.setdefault("Location", header("Location", required=True))
        if code.startswith(("4", "5")) and "application/json" in response.get("content", {}):
            # A hand-written problem answer: errors are always problem+json.
            response["content"] = {PROBLEM_JSON: response["content"].pop("application/json")}
        headers.setdefault("X-Request-ID", header("X-Request-ID", required=True))


def _problem_answer(existing: dict[str, Any], listed: list[type[AppError]]) -> dict[str, Any]:
    models = list(dict.fromkeys(error.problem for error in listed))
    schema = _ref(models[0]) if len(models) == 1 else {"anyOf": [_ref(m) for m in models]}
    names = list(dict.fromkeys(name for error in listed for name in error.documented_headers))
    headers = {
        name: header(name, required=all(e.documented_headers.get(name, False) for e in listed))
        for name in names
    }
    titles = " or ".join(dict.fromkeys(error.title for error in listed))
    description = existing.get("description") if len(listed) == 1 else None
    return {
        "description": description or titles,
        "headers": headers,
        "content": {PROBLEM_JSON: {"schema": schema}},
    }


_ITEM_ACTIONS = {"get": "get", "put": "replace", "patch": "update", "delete": "delete", "post": ""}


def operation_id(path: str, method: str, item: dict[str, Any]) -> str:
    """The operation's id, from its path and method.

    The words are the path's literal segments after `/api/vN` (`-` becomes `_`), then the
    action: on an item (the path ends in a parameter) `get`, `replace` (PUT), `update` (PATCH),
    `delete`, and nothing for a POST (`tasks_status`, `tasks_assign`); elsewhere `list` for a
    GET answering a page, `stream` for one answering an event stream and `get` for another
    GET, `create` for a POST answering 201 on a path that can also be listed, nothing for any
    other POST (`orders_pay`, `auth_signup`), `replace`, `update`, `delete`. Paths outside
    /api are named by their words alone (`health`). A v2 operation that repeats a v1 one ends
    in `_v2`.
    """
    segments = path.strip("/").split("/")
    if segments[0] != "api":
        return "_".join(segments)
    segments = segments[2:]
    words = [s.replace("-", "_") for s in segments if not s.startswith("{")]
    operation = item[method]
    if segments[-1].startswith("{"):
        action = _ITEM_ACTIONS[method]
    elif method == "get":
        if _answers_a_page(operation):
            action = "list"
        else:
            action = "stream" if _answers_a_stream(operation) else "get"
    elif method == "post":
        action = "create" if "get" in item and "201" in operation["responses"] else ""
    else:
        action = _ITEM_ACTIONS[method]
    return "_".join([*words, action] if action else words)


def _answers_a_stream(operation: dict[str, Any]) -> bool:
    return "text/event-stream" in operation["responses"].get("200", {}).get("content", {})


def _answers_a_page(operation: dict[str, Any]) -> bool:
    ok = operation["responses"].get("200", {}).get("content", {}).get("application/json", {})
    return "/Page_" in str(ok.get("schema", {}).get("$ref", ""))


def _name_operations(document: dict[str, Any], ids: dict[tuple[str, str], str]) -> None:
    v1 = {name for (path, _), name in ids.items() if not path.startswith("/api/v2/")}
    seen: set[str] = set()
    for (path, method), name in ids.items():
        if path.startswith("/api/v2/") and name in v1:
            name += "_v2"
        if name in seen:
            raise RuntimeError(f"two operations are named {name}")
        seen.add(name)
        document["paths"][path][method]["operationId"] = name
