"""Routers that reject a path outside their prefix before trying any of their routes.

FastAPI tries an included router's routes one by one, each with the bookkeeping of its route
context, and then once more inside the router that matched. A `PrefixRouter` answers "no
match" for any other path with one string comparison, so a request only ever walks the
routes of its own router.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import Scope

V1 = "/api/v1"
V2 = "/api/v2"


class PrefixRouter(APIRouter):
    """An APIRouter that is only tried for paths under its prefix (include it with none)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """No match without even looking at the routes, unless the path is under the prefix."""
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if not path.startswith(self.prefix):
            return Match.NONE, {}
        return super().matches(scope)


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at `path`, plus OPTIONS; empty if none matches.

    Starlette answers a 405 from the first route whose path matched, naming only that
    route's methods; RFC 9110 wants all of them in `Allow`.
    """
    methods: set[str] = set()
    for route in iter_route_contexts(app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path) and route.methods:
            methods.update(route.methods)
    if not methods:
        return []
    methods.add("OPTIONS")
    return sorted(methods, key=lambda m: (_METHOD_ORDER + (m,)).index(m))
