"""Routes for /auth and /users (v1), and the subset v2 reuses."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Form, Request, Response
from sqlalchemy import select

from taskhub.auth import service, stream_tickets, tokens
from taskhub.auth.dependencies import AdminUser, CurrentUser, VerifiedToken
from taskhub.auth.schemas import (
    LoginForm,
    SignupIn,
    StreamTicketOut,
    TokenOut,
    UserCreateIn,
    UserOut,
    UserUpdateIn,
    UserUpdateMeIn,
)
from taskhub.dependencies import IdPath, SessionDep, SettingsDep
from taskhub.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    problem_responses,
)
from taskhub.models import User
from taskhub.openapi import READS_ONLY
from taskhub.pagination import (
    CursorQuery,
    LimitQuery,
    Page,
    decode_cursor,
    split_page,
)
from taskhub.responses import model_response
from taskhub.routing import V1, V2, PrefixRouter
from taskhub.security import MAX_PASSWORD_BYTES, create_access_token

auth_router = PrefixRouter(prefix=f"{V1}/auth", tags=["auth"])
users_router = PrefixRouter(prefix=f"{V1}/users", tags=["users"])


@auth_router.post(
    "/signup",
    status_code=201,
    responses=problem_responses(Forbidden, Conflict),
)
async def signup(
    body: SignupIn, session: SessionDep, settings: SettingsDep, response: Response
) -> UserOut:
    """Open self-signup (when ALLOW_SIGNUP is true); always a regular, active user."""
    if not settings.allow_signup:
        raise Forbidden("Self-signup is disabled on this server")
    user = await service.create_user(
        session,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
        rounds=settings.bcrypt_rounds,
    )
    response.headers["Location"] = f"/api/v1/users/{user.id}"
    return UserOut.model_validate(user)


@auth_router.post(
    "/login/access-token",
    responses=problem_responses(Unauthorized, TooManyRequests),
    openapi_extra=READS_ONLY,
)
async def login_access_token(
    request: Request,
    form: Annotated[LoginForm, Form()],
    session: SessionDep,
    settings: SettingsDep,
) -> TokenOut:
    """OAuth2 password login: `username` is the email."""
    limiter = request.app.state.login_limiter
    account = form.username.strip().lower()[:320]
    client = request.client.host if request.client else "unknown"
    wait = await limiter.retry_after(account=account, client=client)
    if wait:
        raise TooManyRequests("Too many failed logins; try again later", retry_after=wait)
    password = form.password
    user = None
    if len(password.encode()) <= MAX_PASSWORD_BYTES * 8:
        user = await service.authenticate(
            session, email=account, password=password, rounds=settings.bcrypt_rounds
        )
    if user is None:
        await limiter.failed(account=account, client=client)
        raise Unauthorized("Incorrect email or password")
    if not user.is_active:
        raise Unauthorized("This account is disabled")
    await limiter.succeeded(account=account)
    expires = timedelta(minutes=settings.access_token_expire_minutes)
    token = create_access_token(
        user_id=user.id, epoch=user.token_epoch, key=settings.signing_key(), expires_in=expires
    )
    return TokenOut(access_token=token, expires_in=int(expires.total_seconds()))


@auth_router.post(
    "/login/test-token", responses=problem_responses(Unauthorized), openapi_extra=READS_ONLY
)
async def test_token(user: CurrentUser) -> UserOut:
    """Echo the token's user: a cheap way to check a token."""
    return UserOut.model_validate(user)


@auth_router.post("/logout", status_code=204, responses=problem_responses(Unauthorized))
async def logout(_user: CurrentUser, token: VerifiedToken, session: SessionDep) -> None:
    """End this token at once, in every server process; the user's other tokens go on."""
    await tokens.revoke_token(session, token=token)


@auth_router.post("/logout-all", status_code=204, responses=problem_responses(Unauthorized))
async def logout_all(user: CurrentUser, session: SessionDep) -> None:
    """End every token of the user issued so far, this one included, at once."""
    await tokens.end_all_tokens(session, user_id=user.id)


@auth_router.post("/stream-ticket", responses=problem_responses(Unauthorized))
async def stream_ticket(
    _user: CurrentUser, token: VerifiedToken, session: SessionDep
) -> StreamTicketOut:
    """A single-use ticket, valid 60 s, that opens one event stream for this token's user:
    for a browser's EventSource, which cannot send the token (`?ticket=`). It is refused once
    the token ends (logout, deactivation, a password change)."""
    ticket, expires_in = await stream_tickets.issue_ticket(session, token=token)
    return StreamTicketOut(ticket=ticket, expires_in=expires_in)


@users_router.get("/me", response_model=UserOut, responses=problem_responses(Unauthorized))
async def read_me(user: CurrentUser) -> Response:
    """The caller's own account."""
    # Serialized here, once: returning the model would have FastAPI validate it again.
    return model_response(UserOut.model_validate(user))


@users_router.patch("/me", responses=problem_responses(Unauthorized, Conflict))
async def update_me(
    body: UserUpdateMeIn, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> UserOut:
    """Change one's name or email; a password change needs `current_password`, and ends
    every token of the account, this one included (log in again with the new password)."""
    account = await service.get_user(session, user_id=user.id)
    if body.password is not None:
        await service.check_current_password(
            user=account, current_password=body.current_password, rounds=settings.bcrypt_rounds
        )
    changes = body.model_dump(exclude_unset=True)
    account = await service.update_user(
        session, user=account, changes=changes, rounds=settings.bcrypt_rounds
    )
    return UserOut.model_validate(account)


@users_router.get("", responses=problem_responses(Unauthorized, Forbidden))
async def list_users(
    _admin: AdminUser,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[UserOut]:
    """Every user, by id (site admins)."""
    after = decode_cursor(cursor, size=1, kinds=(int,))
    stmt = select(User).order_by(User.id).limit(limit + 1)
    if after is not None:
        stmt = stmt.where(User.id > after[0])
    users = list((await session.scalars(stmt)).all())
    page, next_cursor = split_page(users, limit, lambda user: [user.id])
    return Page[UserOut](items=[UserOut.model_validate(u) for u in page], next_cursor=next_cursor)


@users_router.post(
    "", status_code=201, responses=problem_responses(Unauthorized, Forbidden, Conflict)
)
async def create_user(
    body: UserCreateIn,
    _admin: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> UserOut:
    """Create a user, possibly another admin (site admins)."""
    user = await service.create_user(
        session,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
        is_superuser=body.is_superuser,
        is_active=body.is_active,
        rounds=settings.bcrypt_rounds,
    )
    response.headers["Location"] = f"/api/v1/users/{user.id}"
    return UserOut.model_validate(user)


@users_router.get("/{user_id:int}", responses=problem_responses(Unauthorized, Forbidden, NotFound))
async def read_user(user_id: IdPath, user: CurrentUser, session: SessionDep) -> UserOut:
    """A user: oneself, or anyone for a site admin."""
    if user_id == user.id:
        return UserOut.model_validate(user)
    if not user.is_superuser:
        raise Forbidden("Site admin privileges are required")
    return UserOut.model_validate(await service.get_user(session, user_id=user_id))


@users_router.patch(
    "/{user_id:int}", responses=problem_responses(Unauthorized, Forbidden, NotFound, Conflict)
)
async def update_user(
    user_id: IdPath,
    body: UserUpdateIn,
    admin: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
) -> UserOut:
    """Change any account, including activation and admin rights (site admins); a new
    password or a deactivation ends every token of the account."""
    target = await service.get_user(session, user_id=user_id)
    changes = body.model_dump(exclude_unset=True)
    if target.id == admin.id and (
        changes.get("is_superuser") is False or changes.get("is_active") is False
    ):
        raise Conflict("You cannot remove your own admin rights or deactivate yourself")
    target = await service.update_user(
        session, user=target, changes=changes, rounds=settings.bcrypt_rounds
    )
    return UserOut.model_validate(target)


@users_router.delete(
    "/{user_id:int}",
    status_code=204,
    responses=problem_responses(Unauthorized, Forbidden, NotFound, Conflict),
)
async def delete_user(user_id: IdPath, admin: AdminUser, session: SessionDep) -> None:
    """Delete an account that owns nothing that must be kept (site admins); its tokens end."""
    target = await service.get_user(session, user_id=user_id, for_update=True)
    await service.delete_user(session, user=target, actor=admin)


def v2_auth_routes() -> PrefixRouter:
    """v2 reuses v1's login and /users/me, with the same handlers."""
    router = PrefixRouter(prefix=V2)
    router.add_api_route(
        "/auth/login/access-token",
        login_access_token,
        methods=["POST"],
        tags=["auth"],
        responses=problem_responses(Unauthorized, TooManyRequests),
        openapi_extra=READS_ONLY,
    )
    router.add_api_route(
        "/users/me",
        read_me,
        response_model=UserOut,
        methods=["GET"],
        tags=["users"],
        responses=problem_responses(Unauthorized),
    )
    return router
