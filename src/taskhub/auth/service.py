"""Accounts: create, authenticate, update, delete. Services flush; the edge commits."""

from __future__ import annotations

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from taskhub.auth.principal import Principal
from taskhub.auth.tokens import end_all_tokens
from taskhub.errors import Conflict, NotFound, Unprocessable
from taskhub.models import Order, ProjectMember, Role, User
from taskhub.projects.service import leave_every_project
from taskhub.security import hash_password, verify_password


async def get_user_by_email(session: AsyncSession, *, email: str) -> User | None:
    """The user with this (normalized) email, if any."""
    result = await session.execute(select(User).where(User.email == email.strip().lower()))
    return result.scalar_one_or_none()


async def authenticate(
    session: AsyncSession, *, email: str, password: str, rounds: int
) -> User | None:
    """The user whose password matches; unknown emails cost the same time as known ones."""
    user = await get_user_by_email(session, email=email)
    ok = await verify_password(password, user.hashed_password if user else None, rounds=rounds)
    return user if ok and user is not None else None


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    full_name: str | None,
    rounds: int,
    is_superuser: bool = False,
    is_active: bool = True,
) -> User:
    """Create an account with a bcrypt-hashed password; 409 when the email is taken."""
    if await get_user_by_email(session, email=email) is not None:
        raise Conflict("A user with this email already exists")
    user = User(
        email=email,
        hashed_password=await hash_password(password, rounds=rounds),
        full_name=full_name,
        is_superuser=is_superuser,
        is_active=is_active,
    )
    session.add(user)
    await _flush_unique_email(session)
    await session.refresh(user)
    return user


async def update_user(
    session: AsyncSession,
    *,
    user: User,
    changes: dict[str, object],
    rounds: int,
) -> User:
    """Apply validated changes; a new password is hashed, a new email must be free.

    A new password or a deactivation ends every token of the account issued so far (a
    reactivated account logs in again).
    """
    password = changes.pop("password", None)
    changes.pop("current_password", None)
    deactivating = changes.get("is_active") is False and user.is_active
    email = changes.get("email")
    if email is not None and email != user.email:
        if await get_user_by_email(session, email=str(email)) is not None:
            raise Conflict("A user with this email already exists")
    for field, value in changes.items():
        if value is None and field in ("email", "is_active", "is_superuser"):
            continue
        setattr(user, field, value)
    if password is not None:
        user.hashed_password = await hash_password(str(password), rounds=rounds)
    await _flush_unique_email(session)
    if password is not None or deactivating:
        await end_all_tokens(session, user_id=user.id)
    await session.refresh(user)
    return user


async def check_current_password(*, user: User, current_password: str | None, rounds: int) -> None:
    """A password change must prove knowledge of the current one."""
    if not current_password or not await verify_password(
        current_password, user.hashed_password, rounds=rounds
    ):
        raise Unprocessable(
            "current_password is missing or wrong",
            errors=[{"loc": ["body", "current_password"], "msg": "incorrect password"}],
        )


async def delete_user(session: AsyncSession, *, user: User, actor: Principal) -> None:
    """Delete an account that owns no project and has no orders (deactivate it otherwise).

    `user` must have been loaded locked (`get_user(..., for_update=True)`): the user's own
    requests hold a key-share lock on the row while they write (auth.tokens.RequestSession),
    so the checks below see every project and order they committed, and nothing new can
    reference the account until it is gone.
    """
    if user.id == actor.id:
        raise Conflict("You cannot delete your own account")
    owns = await session.scalar(
        select(exists().where(ProjectMember.user_id == user.id, ProjectMember.role == Role.OWNER))
    )
    if owns:
        raise Conflict("The user owns projects: transfer their ownership first, or deactivate")
    has_orders = await session.scalar(select(exists().where(Order.user_id == user.id)))
    if has_orders:
        raise Conflict("The user has orders, which must be kept: deactivate the user instead")
    # Its memberships end with it: announced as removals (member.removed, tasks unassigned).
    await leave_every_project(session, user_id=user.id, actor_id=actor.id)
    await session.delete(user)
    await session.flush()


async def get_user(session: AsyncSession, *, user_id: int, for_update: bool = False) -> User:
    """A user by id, or 404; `for_update` locks the row (PostgreSQL) until the transaction
    ends (SQLite serializes writers)."""
    user = await session.get(User, user_id, with_for_update=for_update)
    if user is None:
        raise NotFound("User not found")
    return user


async def count_superusers(session: AsyncSession) -> int:
    """How many site admins exist."""
    return int(await session.scalar(select(func.count()).where(User.is_superuser)) or 0)


async def _flush_unique_email(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("A user with this email already exists") from None
