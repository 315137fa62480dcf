"""Who is calling: the current user from the bearer token, and the admin gate."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import bindparam, select

from taskhub.auth.principal import Caller
from taskhub.driver import DriverStatement
from taskhub.errors import Forbidden, Unauthorized
from taskhub.models import User
from taskhub.security import decode_access_token

USER_BY_ID = DriverStatement(
    select(
        User.id,
        User.email,
        User.hashed_password,
        User.full_name,
        User.is_active,
        User.is_superuser,
        User.created_at,
        User.updated_at,
    ).where(User.id == bindparam("user_id"))
)
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login/access-token", auto_error=False)


async def get_token_subject(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> int:
    """The user id a valid token names, without reading the account: 401 for a bad token.

    As a dependency of its own, only for a route whose own statement checks that the account
    exists and is active (and answers 401 when it is not): `POST /orders` and `GET /tasks` on
    PostgreSQL (orders.service, projects.task_query) and `GET /orders/{id}` (orders.documents).
    """
    if not token:
        raise Unauthorized("Not authenticated")
    claims = decode_access_token(token, key=request.app.state.settings.signing_key())
    if claims is None:
        raise Unauthorized()
    return claims.user_id


async def load_caller(request: Request, user_id: int) -> Caller:
    """The active user `user_id`; 401 at once after deactivation or deletion."""
    row = await USER_BY_ID.fetch_one(request.app.state.engine, user_id=user_id)
    if row is None or not row["is_active"]:
        raise Unauthorized()
    # The lookup runs on every request: a plain snapshot, no ORM (see taskhub.driver).
    return Caller(**row)


async def get_current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Caller:
    """The active user the token names; 401 otherwise, at once after deactivation or deletion."""
    return await load_caller(request, await get_token_subject(request, token))


async def get_admin_user(user: Annotated[Caller, Depends(get_current_user)]) -> Caller:
    """The current user, who must be a site admin."""
    if not user.is_superuser:
        raise Forbidden("Site admin privileges are required")
    return user


CurrentUser = Annotated[Caller, Depends(get_current_user)]
TokenSubject = Annotated[int, Depends(get_token_subject)]
AdminUser = Annotated[Caller, Depends(get_admin_user)]
