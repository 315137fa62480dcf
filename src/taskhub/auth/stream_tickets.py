"""Stream tickets: single-use, short-lived credentials for a browser's EventSource.

EventSource cannot send an `Authorization` header, and a token in a URL would be written to
access logs and histories for the rest of its life. So a client holding a token asks for a
ticket (`POST /api/v1/auth/stream-ticket`) and opens the stream with `?ticket=`. A ticket

- is used once: opening a stream deletes it, in whichever server process (the database
  holds the tickets, so every process shares them);
- expires `TICKET_SECONDS` after it was issued, and never outlives its token;
- stands for its token: it carries the token's claims, and the stream it opens is checked
  as the token would be (`tokens.valid_caller`), so a ticket of a token logged out, of an
  account deactivated or whose password changed meanwhile, is refused.

Only the ticket's SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import bindparam, delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.db import UTCDateTime, table_of, utcnow
from taskhub.driver import DriverStatement, Executor
from taskhub.models import StreamTicket
from taskhub.security import TokenClaims

TICKET_SECONDS = 60
# Ours are 43 characters; anything much longer is not one (and is not worth hashing).
MAX_TICKET_CHARS = 128

_tickets = table_of(StreamTicket)
# Single use: whoever deletes the row has the ticket; an expired one stays for the purge.
REDEEM = DriverStatement(
    delete(_tickets)
    .where(
        _tickets.c.ticket_hash == bindparam("ticket_hash"),
        _tickets.c.expires_at > bindparam("now", type_=UTCDateTime()),
    )
    .returning(
        _tickets.c.user_id,
        _tickets.c.token_epoch,
        _tickets.c.token_jti,
        _tickets.c.token_expires_at,
    )
)


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


async def issue_ticket(session: AsyncSession, *, token: TokenClaims) -> tuple[str, int]:
    """A new ticket for the token's caller, and its lifetime in seconds."""
    now = utcnow()
    expires_at = min(now + timedelta(seconds=TICKET_SECONDS), token.expires_at)
    ticket = secrets.token_urlsafe(32)
    session.add(
        StreamTicket(
            ticket_hash=_digest(ticket),
            user_id=token.user_id,
            token_epoch=token.epoch,
            token_jti=token.jti,
            token_expires_at=token.expires_at,
            expires_at=expires_at,
        )
    )
    await session.flush()
    return ticket, max(1, int((expires_at - now).total_seconds()))


async def redeem_ticket(db: Executor, *, ticket: str) -> TokenClaims | None:
    """The claims of the token a ticket stands for, using the ticket up; None when it is
    unknown, used or expired, or its token expired. Whether the token is still valid is the
    caller's check (`tokens.valid_caller`), as for a token."""
    if not ticket or len(ticket) > MAX_TICKET_CHARS:
        return None
    now = utcnow()
    rows = await db.run(REDEEM, ticket_hash=_digest(ticket), now=now)
    if not rows:
        return None
    row = rows[0]
    if row["token_expires_at"] <= now:
        return None
    return TokenClaims(
        user_id=int(row["user_id"]),
        epoch=int(row["token_epoch"]),
        jti=str(row["token_jti"]),
        expires_at=row["token_expires_at"],
    )


async def purge_expired_tickets(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Forget tickets past their expiry, used or not; a periodic job."""
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            delete(StreamTicket).where(StreamTicket.expires_at <= utcnow())
        )
    return int(getattr(result, "rowcount", 0) or 0)
