"""Request-scoped dependencies shared by every domain: the session and the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from taskhub.config import Settings
from taskhub.driver import DriverConnection

MAX_ID = 2**31 - 1


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and transaction per request: committed when the handler returns.

    GET and HEAD requests only read, so theirs runs without a transaction (autocommit).
    """
    async with session_scope(request, reads_only=request.method in ("GET", "HEAD")) as session:
        yield session


@asynccontextmanager
async def session_scope(
    request: Request, *, reads_only: bool = False
) -> AsyncIterator[AsyncSession]:
    """A session whose transaction commits when the block ends (rolls back if it raises).

    For routes that need a session on only some of their paths; the others take SessionDep.
    A writing session's transaction begins by confirming the request's caller, if it has one
    (taskhub.auth.tokens.RequestSession).
    """
    state = request.app.state
    factory = state.read_sessionmaker if reads_only else state.sessionmaker
    async with factory() as session:
        if not reads_only:
            session.info["request_state"] = request.state
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
    if session.info.get("outbox_written"):
        state.announcer.announce()


async def get_transaction(request: Request) -> AsyncIterator[DriverConnection]:
    """One lent connection and transaction per request (taskhub.driver), for services that
    run their own statements: committed when the handler returns, rolled back if it raises;
    the events it wrote are announced after the commit."""
    async with request.app.state.database.transaction() as db:
        yield db


async def get_settings_dep(request: Request) -> Settings:
    """The settings the app was built with (async: a sync dependency would cost a thread hop)."""
    settings: Settings = request.app.state.settings
    return settings


# "function" scope: the commit happens before the response is sent, so a failed commit
# is reported to the client instead of being lost after a 2xx.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
TransactionDep = Annotated[DriverConnection, Depends(get_transaction, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
