"""Query strings validated in one step, for list endpoints with many parameters.

FastAPI validates each query parameter on its own, with some tens of microseconds of
bookkeeping apiece, which adds up on a list with eleven of them. `query_of(Model)` is a
dependency that validates the whole query string against one pydantic model instead, with
FastAPI's rules: the last value of a repeated key wins, unknown keys are ignored, and errors
are reported at ("query", name) as a 422. `documented(Model)` lists the model's fields as
the route's query parameters in the OpenAPI schema, which FastAPI no longer sees; the enums
they use are named schemas (taskhub.openapi adds them to the document's components).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

# The key taskhub.openapi reads the named schemas from (kept here: openapi imports errors,
# which the routers import before this module).
SCHEMAS_KEY = "x-taskhub-schemas"

M = TypeVar("M", bound=BaseModel)


def query_of(model: type[M]) -> Callable[[Request], Coroutine[Any, Any, M]]:
    """A dependency: the request's query string, validated as `model`."""

    async def parse(request: Request) -> M:
        try:
            return model.model_validate(dict(request.query_params))
        except ValidationError as exc:
            raise RequestValidationError(
                [
                    {**error, "loc": ("query", *error["loc"])}
                    for error in exc.errors(include_url=False)
                ]
            ) from None

    return parse


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route: the model's fields as optional query parameters.

    A parameter left out has no value, so an optional field's `null` is not documented: a
    query string cannot say null.
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    parameters = []
    for name, field_schema in schema["properties"].items():
        field_schema = _without_null(field_schema)
        field_schema.pop("title", None)
        if field_schema.get("default", ...) is None:
            del field_schema["default"]
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": False}
        if "description" in field_schema:
            parameter["description"] = field_schema.pop("description")
        parameter["schema"] = field_schema
        parameters.append(parameter)
    return {"parameters": parameters, SCHEMAS_KEY: schema.get("$defs", {})}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    options = [option for option in schema.get("anyOf", ()) if option != {"type": "null"}]
    if "anyOf" not in schema or len(options) != 1:
        return dict(schema)
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**options[0], **rest}
