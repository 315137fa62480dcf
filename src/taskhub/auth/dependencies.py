"""Who is calling: the current user from the bearer token, and the admin gate."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from taskhub.dependencies import SessionDep
from taskhub.errors import Forbidden, Unauthorized
from taskhub.models import User
from taskhub.security import decode_access_token

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login/access-token", auto_error=False)


async def get_current_user(
    request: Request,
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    """The active user the token names; 401 otherwise, at once after deactivation or deletion."""
    if not token:
        raise Unauthorized("Not authenticated")
    claims = decode_access_token(token, key=request.app.state.settings.signing_key())
    if claims is None:
        raise Unauthorized()
    user = await session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise Unauthorized()
    return user


async def get_admin_user(user: Annotated[User, Depends(get_current_user)]) -> User:
    """The current user, who must be a site admin."""
    if not user.is_superuser:
        raise Forbidden("Site admin privileges are required")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
AdminUser = Annotated[User, Depends(get_admin_user)]
