"""Routes of webhook endpoints: /api/v2/webhooks (order events) and
/api/v1/projects/{project_id}/webhooks (a project's task and member events).

Both families have the same operations: create, list, read, update, delete, rotate-secret,
test, the deliveries and redeliver. A user manages their own order endpoints (a site admin:
anyone's); a project's endpoints need the project's admin or owner role (404 for a
non-member, 403 below admin: the projects' role matrix).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import Depends, Response

from taskhub.auth.dependencies import CurrentUser
from taskhub.dependencies import IdPath, SessionDep, SettingsDep
from taskhub.errors import Conflict, Forbidden, NotFound, Unauthorized, problem_responses
from taskhub.models import WebhookDelivery, WebhookEndpoint
from taskhub.pagination import CursorQuery, LimitQuery, Page, decode_cursor, split_page
from taskhub.projects.permissions import Permission, ProjectAccess, project_for
from taskhub.routing import V1, V2, PrefixRouter
from taskhub.webhooks import service
from taskhub.webhooks.schemas import (
    DeliveryOut,
    ProjectWebhookCreateIn,
    ProjectWebhookUpdateIn,
    WebhookCreateIn,
    WebhookOut,
    WebhookSecretOut,
    WebhookUpdateIn,
)

router = PrefixRouter(prefix=f"{V2}/webhooks", tags=["webhooks"])
project_router = PrefixRouter(prefix=f"{V1}/projects", tags=["webhooks"])
PROJECT_WEBHOOKS = "/{project_id}/webhooks"

READ_ERRORS = problem_responses(Unauthorized, NotFound)
PROJECT_READ_ERRORS = problem_responses(Unauthorized, Forbidden, NotFound)
WRITE_ERRORS = problem_responses(Unauthorized, Forbidden, NotFound)
QUEUE_ERRORS = problem_responses(Unauthorized, NotFound, Conflict)
PROJECT_QUEUE_ERRORS = problem_responses(Unauthorized, Forbidden, NotFound, Conflict)


def webhook_out(endpoint: WebhookEndpoint) -> WebhookOut:
    """The endpoint without its secret."""
    return WebhookOut.model_validate(endpoint, from_attributes=True)


def secret_out(endpoint: WebhookEndpoint) -> WebhookSecretOut:
    """The endpoint with its secret (create and rotate-secret only)."""
    return WebhookSecretOut.model_validate(endpoint, from_attributes=True)


def delivery_out(delivery: WebhookDelivery) -> DeliveryOut:
    """A delivery as the API shows it."""
    return DeliveryOut.model_validate(delivery, from_attributes=True)


def endpoints_page(rows: Sequence[WebhookEndpoint], limit: int) -> Page[WebhookOut]:
    """A page of endpoints (queries fetch one more than `limit`)."""
    page, next_cursor = split_page(rows, limit, lambda endpoint: [endpoint.id])
    return Page[WebhookOut](items=[webhook_out(e) for e in page], next_cursor=next_cursor)


def deliveries_page(rows: Sequence[WebhookDelivery], limit: int) -> Page[DeliveryOut]:
    """A page of deliveries, newest first."""
    page, next_cursor = split_page(rows, limit, lambda delivery: [delivery.id])
    return Page[DeliveryOut](items=[delivery_out(d) for d in page], next_cursor=next_cursor)


# --- /api/v2/webhooks -------------------------------------------------------------------------


def order_webhook(*, for_update: bool = False) -> Callable[..., Awaitable[WebhookEndpoint]]:
    """A dependency: the path's order endpoint, if it is the caller's (a site admin: any)."""

    async def dependency(
        webhook_id: IdPath, user: CurrentUser, session: SessionDep
    ) -> WebhookEndpoint:
        return await service.order_endpoint(
            session, webhook_id=webhook_id, user=user, for_update=for_update
        )

    return dependency


OrderWebhook = Annotated[WebhookEndpoint, Depends(order_webhook())]
OrderWebhookForUpdate = Annotated[WebhookEndpoint, Depends(order_webhook(for_update=True))]


@router.post("", status_code=201, responses=problem_responses(Unauthorized, Forbidden))
async def create_webhook(
    body: WebhookCreateIn,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> WebhookSecretOut:
    """Register an endpoint for your orders' events (site admins: `"scope": "all"` for
    every order's). The answer carries the signing secret, shown only here and by
    rotate-secret."""
    endpoint = await service.create_endpoint(
        session,
        url=body.url,
        events=body.events,
        description=body.description,
        allow_private=settings.webhook_allow_private,
        owner=user,
        scope=body.scope,
    )
    response.headers["Location"] = f"{V2}/webhooks/{endpoint.id}"
    return secret_out(endpoint)


@router.get("", responses=problem_responses(Unauthorized))
async def list_webhooks(
    user: CurrentUser, session: SessionDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[WebhookOut]:
    """Your order endpoints (site admins: everyone's), by id."""
    after = decode_cursor(cursor, size=1, kinds=(int,))
    rows = await service.list_endpoints(
        session, user=user, limit=limit + 1, after_id=after[0] if after else None
    )
    return endpoints_page(rows, limit)


@router.get("/{webhook_id}", responses=READ_ERRORS)
async def read_webhook(endpoint: OrderWebhook) -> WebhookOut:
    """One of your order endpoints."""
    return webhook_out(endpoint)


@router.patch("/{webhook_id}", responses=WRITE_ERRORS)
async def update_webhook(
    body: WebhookUpdateIn,
    endpoint: OrderWebhookForUpdate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookOut:
    """Change the URL, events, description, scope or `active` of an order endpoint."""
    return webhook_out(
        await service.update_endpoint(
            session,
            endpoint=endpoint,
            changes=body.model_dump(exclude_unset=True),
            user=user,
            allow_private=settings.webhook_allow_private,
        )
    )


@router.delete("/{webhook_id}", status_code=204, responses=READ_ERRORS)
async def delete_webhook(endpoint: OrderWebhookForUpdate, session: SessionDep) -> None:
    """Delete an order endpoint and its deliveries."""
    await service.delete_endpoint(session, endpoint=endpoint)


@router.post("/{webhook_id}/rotate-secret", responses=READ_ERRORS)
async def rotate_webhook_secret(
    endpoint: OrderWebhookForUpdate, session: SessionDep
) -> WebhookSecretOut:
    """A new signing secret; for 24 hours deliveries are signed with the previous one too."""
    return secret_out(await service.rotate_secret(session, endpoint=endpoint))


@router.post("/{webhook_id}/test", status_code=202, responses=QUEUE_ERRORS)
async def test_webhook(endpoint: OrderWebhook, session: SessionDep) -> DeliveryOut:
    """Send a `webhook.test` event to this endpoint only; 409 while it is disabled."""
    return delivery_out(await service.send_test(session, endpoint=endpoint))


@router.get("/{webhook_id}/deliveries", responses=READ_ERRORS)
async def list_webhook_deliveries(
    endpoint: OrderWebhook,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[DeliveryOut]:
    """The endpoint's deliveries, newest first."""
    before = decode_cursor(cursor, size=1, kinds=(int,))
    rows = await service.list_deliveries(
        session, endpoint_id=endpoint.id, limit=limit + 1, before_id=before[0] if before else None
    )
    return deliveries_page(rows, limit)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202, responses=QUEUE_ERRORS
)
async def redeliver_webhook(
    delivery_id: IdPath, endpoint: OrderWebhook, session: SessionDep
) -> DeliveryOut:
    """Send a delivery's event again (same `webhook-id`), as a new delivery."""
    return delivery_out(
        await service.redeliver(session, endpoint=endpoint, delivery_id=delivery_id)
    )


# --- /api/v1/projects/{project_id}/webhooks ---------------------------------------------------

ProjectAdmin = Annotated[ProjectAccess, Depends(project_for(Permission.MANAGE_PROJECT))]


def project_webhook(*, for_update: bool = False) -> Callable[..., Awaitable[WebhookEndpoint]]:
    """A dependency: the path's endpoint of the path's project, for its admins and owner."""

    async def dependency(
        webhook_id: IdPath, access: ProjectAdmin, session: SessionDep
    ) -> WebhookEndpoint:
        return await service.project_endpoint(
            session, webhook_id=webhook_id, project_id=access.project_id, for_update=for_update
        )

    return dependency


ProjectWebhook = Annotated[WebhookEndpoint, Depends(project_webhook())]
ProjectWebhookForUpdate = Annotated[WebhookEndpoint, Depends(project_webhook(for_update=True))]


@project_router.post(PROJECT_WEBHOOKS, status_code=201, responses=PROJECT_READ_ERRORS)
async def create_project_webhook(
    body: ProjectWebhookCreateIn,
    access: ProjectAdmin,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> WebhookSecretOut:
    """Register an endpoint for the project's task and member events (admin+). The answer
    carries the signing secret, shown only here and by rotate-secret."""
    endpoint = await service.create_endpoint(
        session,
        url=body.url,
        events=body.events,
        description=body.description,
        allow_private=settings.webhook_allow_private,
        project_id=access.project_id,
    )
    response.headers["Location"] = f"{V1}/projects/{access.project_id}/webhooks/{endpoint.id}"
    return secret_out(endpoint)


@project_router.get(PROJECT_WEBHOOKS, responses=PROJECT_READ_ERRORS)
async def list_project_webhooks(
    access: ProjectAdmin,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[WebhookOut]:
    """The project's endpoints, by id (admin+)."""
    after = decode_cursor(cursor, size=1, kinds=(int,))
    rows = await service.list_endpoints(
        session,
        project_id=access.project_id,
        limit=limit + 1,
        after_id=after[0] if after else None,
    )
    return endpoints_page(rows, limit)


@project_router.get(PROJECT_WEBHOOKS + "/{webhook_id}", responses=PROJECT_READ_ERRORS)
async def read_project_webhook(endpoint: ProjectWebhook) -> WebhookOut:
    """One of the project's endpoints (admin+)."""
    return webhook_out(endpoint)


@project_router.patch(PROJECT_WEBHOOKS + "/{webhook_id}", responses=PROJECT_READ_ERRORS)
async def update_project_webhook(
    body: ProjectWebhookUpdateIn,
    endpoint: ProjectWebhookForUpdate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookOut:
    """Change the URL, events, description or `active` of a project endpoint (admin+)."""
    return webhook_out(
        await service.update_endpoint(
            session,
            endpoint=endpoint,
            changes=body.model_dump(exclude_unset=True),
            user=user,
            allow_private=settings.webhook_allow_private,
        )
    )


@project_router.delete(
    PROJECT_WEBHOOKS + "/{webhook_id}", status_code=204, responses=PROJECT_READ_ERRORS
)
async def delete_project_webhook(endpoint: ProjectWebhookForUpdate, session: SessionDep) -> None:
    """Delete a project endpoint and its deliveries (admin+)."""
    await service.delete_endpoint(session, endpoint=endpoint)


@project_router.post(
    PROJECT_WEBHOOKS + "/{webhook_id}/rotate-secret", responses=PROJECT_READ_ERRORS
)
async def rotate_project_webhook_secret(
    endpoint: ProjectWebhookForUpdate, session: SessionDep
) -> WebhookSecretOut:
    """A new signing secret; for 24 hours deliveries are signed with the previous one too."""
    return secret_out(await service.rotate_secret(session, endpoint=endpoint))


@project_router.post(
    PROJECT_WEBHOOKS + "/{webhook_id}/test", status_code=202, responses=PROJECT_QUEUE_ERRORS
)
async def test_project_webhook(endpoint: ProjectWebhook, session: SessionDep) -> DeliveryOut:
    """Send a `webhook.test` event to this endpoint only; 409 while it is disabled."""
    return delivery_out(await service.send_test(session, endpoint=endpoint))


@project_router.get(PROJECT_WEBHOOKS + "/{webhook_id}/deliveries", responses=PROJECT_READ_ERRORS)
async def list_project_webhook_deliveries(
    endpoint: ProjectWebhook,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[DeliveryOut]:
    """The endpoint's deliveries, newest first (admin+)."""
    before = decode_cursor(cursor, size=1, kinds=(int,))
    rows = await service.list_deliveries(
        session, endpoint_id=endpoint.id, limit=limit + 1, before_id=before[0] if before else None
    )
    return deliveries_page(rows, limit)


@project_router.post(
    PROJECT_WEBHOOKS + "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    responses=PROJECT_QUEUE_ERRORS,
)
async def redeliver_project_webhook(
    delivery_id: IdPath, endpoint: ProjectWebhook, session: SessionDep
) -> DeliveryOut:
    """Send a delivery's event again (same `webhook-id`), as a new delivery (admin+)."""
    return delivery_out(
        await service.redeliver(session, endpoint=endpoint, delivery_id=delivery_id)
    )
