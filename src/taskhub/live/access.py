"""Who is watching: a stream's caller (a bearer token, or a stream ticket), and whether they
may still watch.

A stream opens like any request: its token must be valid now (`auth.tokens.valid_caller`),
and a project stream needs the project to be visible (`projects.permissions`, 404 otherwise).
A stream then lasts, so it asks again every LIVE_RECHECK_SECONDS, with the same rule in one
statement: the token not ended (logout, logout-all, a password change), the account active,
its site-admin flag unchanged, and for a project stream the project still there and the
caller still a member of it (or a site admin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyQuery
from sqlalchemy import Integer, bindparam, exists

from taskhub.auth.dependencies import get_verified_token, load_caller, oauth2_scheme
from taskhub.auth.principal import Caller
from taskhub.auth.stream_tickets import TICKET_SECONDS, redeem_ticket
from taskhub.auth.tokens import valid_caller
from taskhub.db import table_of
from taskhub.driver import DriverStatement
from taskhub.errors import Unauthorized
from taskhub.live.visibility import OrdersTopic, ProjectTopic, Topic
from taskhub.models import Project, ProjectMember, User
from taskhub.security import TokenClaims

_users, _members, _projects = table_of(User), table_of(ProjectMember), table_of(Project)
_project_id = bindparam("project_id", type_=Integer())

ticket_scheme = APIKeyQuery(
    name="ticket",
    scheme_name="StreamTicket",
    description=f"A ticket from `POST /api/v1/auth/stream-ticket`: it opens one stream, within "
    f"{TICKET_SECONDS} s, for EventSource clients, which cannot send a bearer token",
    auto_error=False,
)

ORDERS_STILL_ALLOWED = DriverStatement(valid_caller(_users.c.is_superuser))
PROJECT_STILL_ALLOWED = DriverStatement(
    valid_caller(
        _users.c.is_superuser,
        exists()
        .where(_members.c.project_id == _project_id, _members.c.user_id == _users.c.id)
        .label("is_member"),
        exists().where(_projects.c.id == _project_id).label("project_exists"),
    )
)


@dataclass(frozen=True, slots=True)
class Watcher:
    """A stream's caller: the account, and the token (or the ticket's token) it came with."""

    caller: Caller
    token: TokenClaims


async def get_watcher(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    ticket: Annotated[str | None, Depends(ticket_scheme)],
) -> Watcher:
    """The caller of a stream: `Authorization: Bearer`, else `?ticket=` (used up here);
    401 unless the token it stands for is valid now."""
    if token or not ticket:
        claims = await get_verified_token(request, token)
    else:
        redeemed = await redeem_ticket(request.app.state.database.pooled, ticket=ticket)
        if redeemed is None:
            raise Unauthorized("The stream ticket is unknown, used or expired")
        claims = redeemed
        request.state.token = claims
    return Watcher(caller=await load_caller(request, claims), token=claims)


WatcherDep = Annotated[Watcher, Depends(get_watcher)]


async def still_allowed(request: Request, watcher: Watcher, topic: Topic) -> bool:
    """Whether the watcher may still watch the topic (one statement)."""
    engine = request.app.state.engine
    params = watcher.token.caller_params
    if isinstance(topic, OrdersTopic):
        row = await ORDERS_STILL_ALLOWED.fetch_one(engine, **params)
        return row is not None and bool(row["is_superuser"]) == topic.everyone
    row = await PROJECT_STILL_ALLOWED.fetch_one(engine, **params, project_id=topic.project_id)
    if row is None or not row["project_exists"]:
        return False
    return bool(row["is_member"]) or bool(row["is_superuser"])


def orders_topic(watcher: Watcher) -> OrdersTopic:
    """The topic of an orders stream: one's own orders; a site admin's, every order."""
    return OrdersTopic(user_id=watcher.caller.id, everyone=watcher.caller.is_superuser)


def project_topic(watcher: Watcher, *, project_id: int) -> ProjectTopic:
    """The topic of a project stream."""
    return ProjectTopic(
        project_id=project_id, user_id=watcher.caller.id, site_admin=watcher.caller.is_superuser
    )
