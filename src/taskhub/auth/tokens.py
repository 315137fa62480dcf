"""Whether an access token is still valid: the database's answer, asked on every request.

A token whose signature and times are valid (taskhub.security) is valid while, in the
database,

- its user exists and is active;
- its epoch (`ep`) is the user's `token_epoch`: a password change (one's own or an admin's
  reset), deactivation and logout-all move the epoch on, which ends every token issued
  before, in every server process at once;
- its id (`jti`) was not logged out (`revoked_tokens`, kept until the token would have
  expired, then purged by `purge_revoked_tokens`).

`valid_caller` is that rule, written once as a statement of `:user_id`, `:epoch` and `:jti`
(`TokenClaims.caller_params`). Every check of "the account behind this token" goes through
it: the per-request lookup (auth.dependencies.USER_BY_ID), the statements that check the
account themselves (orders.service.PLACE_ORDER, orders.documents.ORDER_WITH_LINES,
projects.task_query), and the first statement of every authenticated write transaction
(`RequestSession`). For /users/me it is one statement: an index lookup of the user and one of
the (usually empty) table of logged-out ids.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    bindparam,
    delete,
    event,
    exists,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from taskhub.db import on_postgresql, table_of, utcnow
from taskhub.errors import Unauthorized
from taskhub.models import RevokedToken, User
from taskhub.security import TokenClaims

_users, _revoked = table_of(User), table_of(RevokedToken)
# Logged-out ids are kept this long past their token's expiry, so that a server whose clock
# runs behind the purging process's never sees a logged-out token without its record.
PURGE_AFTER = timedelta(minutes=5)


def valid_caller(*columns: Any, lock: bool = False) -> Select[Any]:
    """`columns` of the user whose token (:user_id, :epoch, :jti) is still valid; no row when
    it is not (a gone or inactive account, a moved-on epoch, a logged-out id).

    `lock`: on PostgreSQL the row is key-share locked, so that the account cannot be deleted
    before the transaction ends (writers that reference it take the same lock for their
    foreign keys anyway). SQLite has no row locks: its writers are serialized.
    """
    stmt = select(*columns).where(
        _users.c.id == bindparam("user_id", type_=Integer()),
        _users.c.is_active,
        _users.c.token_epoch == bindparam("epoch", type_=Integer()),
        ~exists().where(_revoked.c.jti == bindparam("jti", type_=String())),
    )
    return stmt.with_for_update(read=True, key_share=True) if lock else stmt


_CONFIRM_CALLER = valid_caller(_users.c.id, lock=True)


class RequestSession(Session):
    """The session of a request's write transaction (taskhub.dependencies.session_scope).

    Its transaction begins by confirming the request's caller (`valid_caller`, locked): a
    token ended, or an account deleted or deactivated, before the transaction began is a 401
    from its first statement, never a foreign-key violation or a write on behalf of an account
    that is gone; and the account cannot be deleted while the transaction runs. The caller is
    the token the request's auth dependency verified (`request.state.token`); a transaction
    of a request without one (signup, login) checks nothing.
    """


@event.listens_for(RequestSession, "after_begin")
def _confirm_caller(session: Session, _transaction: SessionTransaction, conn: Connection) -> None:
    state = session.info.get("request_state")
    token: TokenClaims | None = getattr(state, "token", None)
    if token is not None and conn.execute(_CONFIRM_CALLER, token.caller_params).first() is None:
        raise Unauthorized()


async def revoke_token(session: AsyncSession, *, token: TokenClaims) -> None:
    """End one token (logout): its id is refused until it would have expired anyway."""
    insert = postgresql.insert if on_postgresql(session) else sqlite.insert
    await session.execute(
        insert(RevokedToken)
        .values(jti=token.jti, user_id=token.user_id, expires_at=token.expires_at)
        .on_conflict_do_nothing(index_elements=[RevokedToken.jti])
    )


async def end_all_tokens(session: AsyncSession, *, user_id: int) -> None:
    """End every token of the user issued so far: their epoch is no longer the user's."""
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(token_epoch=User.token_epoch + 1)
        .execution_options(synchronize_session=False)
    )


async def purge_revoked_tokens(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Forget logged-out ids whose tokens have expired; a periodic job."""
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            delete(RevokedToken).where(RevokedToken.expires_at < utcnow() - PURGE_AFTER)
        )
    return int(getattr(result, "rowcount", 0) or 0)
