"""Who is calling: the current user from the bearer token, and the admin gate."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from taskhub.auth.principal import Caller
from taskhub.auth.tokens import valid_caller
from taskhub.driver import DriverStatement
from taskhub.errors import Forbidden, Unauthorized
from taskhub.models import User
from taskhub.security import TokenClaims, decode_access_token

# The per-request lookup: the token's account, if the token is still valid (one statement).
USER_BY_ID = DriverStatement(
    valid_caller(
        User.id,
        User.email,
        User.hashed_password,
        User.full_name,
        User.is_active,
        User.is_superuser,
        User.created_at,
        User.updated_at,
    )
)
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login/access-token", auto_error=False)


async def get_verified_token(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> TokenClaims:
    """The claims of a token whose signature and times are valid, without reading the
    database: 401 otherwise.

    As a dependency of its own, only for a route whose own statement checks that the token is
    still valid (`auth.tokens.valid_caller`, 401 when it is not): `POST /orders` and
    `GET /tasks` on PostgreSQL (orders.service, projects.task_query) and `GET /orders/{id}`
    (orders.documents). The claims become the request's caller for its write transaction
    (`auth.tokens.RequestSession`).
    """
    if not token:
        raise Unauthorized("Not authenticated")
    claims = decode_access_token(token, key=request.app.state.settings.signing_key())
    if claims is None:
        raise Unauthorized()
    request.state.token = claims
    return claims


async def load_caller(request: Request, token: TokenClaims) -> Caller:
    """The user of a still-valid token; 401 at once after deactivation, deletion, a password
    change, logout or logout-all."""
    row = await USER_BY_ID.fetch_one(request.app.state.engine, **token.caller_params)
    if row is None:
        raise Unauthorized()
    # The lookup runs on every request: a plain snapshot, no ORM (see taskhub.driver).
    return Caller(**row)


async def get_current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Caller:
    """The user of a still-valid token; 401 otherwise (see `load_caller`)."""
    return await load_caller(request, await get_verified_token(request, token))


async def get_admin_user(user: Annotated[Caller, Depends(get_current_user)]) -> Caller:
    """The current user, who must be a site admin."""
    if not user.is_superuser:
        raise Forbidden("Site admin privileges are required")
    return user


CurrentUser = Annotated[Caller, Depends(get_current_user)]
VerifiedToken = Annotated[TokenClaims, Depends(get_verified_token)]
AdminUser = Annotated[Caller, Depends(get_admin_user)]
