"""Outbox NOTIFY trigger: wake the relays when events are committed (PostgreSQL only).

A statement-level AFTER INSERT trigger calls pg_notify('taskhub_outbox'); PostgreSQL
delivers it at commit and folds identical notifications of one transaction into one.
SQLite has no LISTEN/NOTIFY: there the migration does nothing (the relay polls).

Revision ID: 3c1f0e7a9d52
Revises: b7799aa41d28
Create Date: 2026-11-27 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3c1f0e7a9d52"
down_revision: str | None = "b7799aa41d28"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _is_postgresql():
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION taskhub_outbox_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('taskhub_outbox', '');
            RETURN NULL;
        END;
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER outbox_notify
        AFTER INSERT ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION taskhub_outbox_notify()
        """
    )


def downgrade() -> None:
    if not _is_postgresql():
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS taskhub_outbox_notify()")
