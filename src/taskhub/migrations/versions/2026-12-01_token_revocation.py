"""Tokens can be ended before they expire: a token epoch per user and logged-out token ids.

`users.token_epoch` is carried by every token (its `ep` claim); a password change,
deactivation or logout-all moves it on, which ends every token issued before.
`revoked_tokens` holds the ids (`jti`) of tokens ended one at a time by logout, until they
would have expired (a periodic job purges them). Every request checks both, in the database,
so every server process sees the same answer (taskhub.auth.tokens).

Revision ID: c81e4f0b7a3d
Revises: 3f7d9b2a6c15
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c81e4f0b7a3d"
down_revision: str | None = "3f7d9b2a6c15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on SQLite too (a constant default needs no table rebuild).
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(
            sa.Column("token_epoch", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_revoked_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_revoked_tokens")),
    )
    op.create_index(
        op.f("ix_revoked_tokens_expires_at"), "revoked_tokens", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_revoked_tokens_expires_at"), table_name="revoked_tokens")
    op.drop_table("revoked_tokens")
    if op.get_bind().dialect.name == "sqlite":
        # Native DROP COLUMN (SQLite 3.35+): a batch rebuild of `users` would drop the table,
        # which runs the ON DELETE actions of every table referencing it.
        op.execute("ALTER TABLE users DROP COLUMN token_epoch")
    else:
        op.drop_column("users", "token_epoch")
