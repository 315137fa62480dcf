"""The API's routers, in the order the app tries them (the busiest first)."""

from __future__ import annotations

from taskhub.auth.router import auth_router, users_router, v2_auth_routes
from taskhub.catalog.router import router as catalog_router
from taskhub.live.router import orders_events_router, project_events_router
from taskhub.orders.router import router as orders_router
from taskhub.projects.router import router as projects_router
from taskhub.projects.task_router import router as tasks_router
from taskhub.routing import PrefixRouter
from taskhub.webhooks.router import project_router as project_webhooks_router
from taskhub.webhooks.router import router as webhooks_router

# Each one carries its full prefix and is skipped, with one string comparison, by any path
# outside it (see taskhub.routing): their order costs little, but the busiest come first.
ROUTERS: tuple[PrefixRouter, ...] = (
    users_router,
    tasks_router,
    catalog_router,
    # Before the orders router, whose `/{order_id}` would take `events` for an id.
    orders_events_router,
    orders_router,
    projects_router,
    # Shares /api/v1/projects: tried after the projects' own routes.
    project_webhooks_router,
    webhooks_router,
    project_events_router,
    auth_router,
    v2_auth_routes(),
)
