"""The two versioned routers the app mounts."""

from __future__ import annotations

from fastapi import APIRouter

from taskhub.auth.router import auth_router, users_router, v2_auth_routes
from taskhub.catalog.router import router as catalog_router
from taskhub.orders.router import router as orders_router
from taskhub.projects.router import router as projects_router

# Routes are matched in order, one by one: the busiest come first.
v1_router = APIRouter()
v1_router.include_router(projects_router)
v1_router.include_router(users_router)
v1_router.include_router(auth_router)

v2_router = APIRouter()
v2_router.include_router(orders_router)
v2_router.include_router(catalog_router)
v2_router.include_router(v2_auth_routes())
