"""`GET /live`: a small page, static HTML and vanilla JavaScript with no build step, that
signs in and shows the user's orders and a chosen project's tasks changing live.

It talks to the API like any client: it logs in, lists, and opens the event streams with
stream tickets (EventSource cannot send a bearer token). Its Content-Security-Policy
(`middleware.LIVE_PAGE_CSP`) lets it load only its own script and style and connect only to
this server. Not part of the API, so not in the OpenAPI document (like /docs).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)
ASSETS = {
    "live.html": "text/html; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "live.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


@cache
def _asset(name: str) -> bytes:
    return files("taskhub.live").joinpath("static", name).read_bytes()


def _serve(name: str) -> Response:
    return Response(_asset(name), media_type=ASSETS[name])


@router.get("/live")
async def live_page() -> Response:
    """The page."""
    return _serve("live.html")


@router.get("/live/live.js")
async def live_script() -> Response:
    """The page's script."""
    return _serve("live.js")


@router.get("/live/live.css")
async def live_style() -> Response:
    """The page's style."""
    return _serve("live.css")


@router.get("/live/favicon.svg")
async def live_icon() -> Response:
    """The page's icon."""
    return _serve("favicon.svg")
