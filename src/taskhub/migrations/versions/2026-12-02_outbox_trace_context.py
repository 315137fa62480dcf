"""`outbox.trace_context`: the W3C trace context of the request that wrote the event.

The carrier (`traceparent`, and `tracestate` when there is one) as a JSON object, or NULL
when the request was not traced; the relay passes it on with the stream entry and the
worker's handler span continues the trace (taskhub.tracing).

Revision ID: 6b2d8e4f1a97
Revises: 04942e41005d
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6b2d8e4f1a97"
down_revision: str | None = "04942e41005d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on SQLite too (nullable, no default: no table rebuild).
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("trace_context", sa.Text(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Native DROP COLUMN (SQLite 3.35+), without rebuilding the table.
        op.execute("ALTER TABLE outbox DROP COLUMN trace_context")
    else:
        op.drop_column("outbox", "trace_context")
