"""The two versioned routers the app mounts."""

from __future__ import annotations

from fastapi import APIRouter

from taskhub.auth.router import auth_router, users_router, v2_auth_routes

v1_router = APIRouter()
v1_router.include_router(auth_router)
v1_router.include_router(users_router)

v2_router = APIRouter()
v2_router.include_router(v2_auth_routes())
