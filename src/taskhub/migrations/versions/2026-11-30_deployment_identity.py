"""A one-row `deployment` table holding a random id that names this database.

Each event partition's Redis keys are bound to it (`taskhub.messaging.binding`): a process
whose database is another one than the partition's is refused at start, so that two stacks
sharing a REDIS_PREFIX cannot hand each other's events to the wrong database.

Revision ID: 4e7b9c2d1f08
Revises: 8a4c2f6e1b93
Create Date: 2026-11-30 09:00:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4e7b9c2d1f08"
down_revision: str | None = "8a4c2f6e1b93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "deployment",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_deployment_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment")),
    )
    op.bulk_insert(table, [{"id": 1, "deployment_id": str(uuid.uuid4())}])


def downgrade() -> None:
    op.drop_table("deployment")
