"""JSON responses built by the handler itself, on hot paths."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response
from pydantic import BaseModel


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """A model serialized once, straight to a JSON response, as FastAPI would write it.

    Returning the model instead has FastAPI validate it against the response model again
    before serializing it; the route still declares `response_model` for the schema.
    """
    body = model.__pydantic_serializer__.to_json(model)
    return Response(body, status_code=status_code, media_type="application/json")


def json_response(document: Any, status_code: int = 200) -> Response:
    """Plain data (database rows made into dicts and lists) as a JSON response.

    Timestamps come out as pydantic writes them: ISO 8601 with a `Z` offset, so a document
    built here reads the same as the response model the route declares for its schema.
    """
    return Response(json_bytes(document), status_code=status_code, media_type="application/json")


def json_bytes(document: Any) -> bytes:
    """The body `json_response` sends for `document` (for answers stored to be replayed)."""
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)
