"""Stream tickets: single-use, short-lived credentials for EventSource clients.

`POST /api/v1/auth/stream-ticket` stores the SHA-256 of a random ticket with the claims of
the token that asked for it; an event stream opened with `?ticket=` deletes the row (single
use, in whichever server process) and checks those claims as it would the token's. A
periodic job purges the expired ones.

Revision ID: 9d4f3a7c2e61
Revises: 6b2d8e4f1a97
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9d4f3a7c2e61"
down_revision: str | None = "6b2d8e4f1a97"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_tickets",
        sa.Column("ticket_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_epoch", sa.Integer(), nullable=False),
        sa.Column("token_jti", sa.String(length=64), nullable=False),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_stream_tickets_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_hash", name=op.f("pk_stream_tickets")),
    )
    op.create_index(
        op.f("ix_stream_tickets_expires_at"), "stream_tickets", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_stream_tickets_expires_at"), table_name="stream_tickets")
    op.drop_table("stream_tickets")
