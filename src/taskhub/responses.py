"""JSON responses built by the handler itself, on hot paths."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """A model serialized once, straight to a JSON response, as FastAPI would write it.

    Returning the model instead has FastAPI validate it against the response model again
    before serializing it; the route still declares `response_model` for the schema.
    """
    body = model.__pydantic_serializer__.to_json(model)
    return Response(body, status_code=status_code, media_type="application/json")
