"""Indexes for every list's order and filters, built without blocking writers.

GET /tasks: one index per sort key (the eight sorts read the four keys forwards or
backwards), alone (a site admin's list), led by project_id (a member's per-project pages and
the project filter) and led by assignee_id (the assignee filter); a GIN index on the
`search` column (PostgreSQL; SQLite searches its FTS5 table). GET /products: GIN on
`search`. GET /orders: (user_id, status, id) for a user's status filter, and for a site
admin's one partial index on id per status on PostgreSQL, (status, id) on SQLite
(taskhub.models.order says why). The keys are the expressions of taskhub.models.task (`sort_keys`),
written out here per database.

PostgreSQL builds each index with CREATE INDEX CONCURRENTLY, outside the migration's
transaction (an autocommit block): writes to the table go on while it builds. A build that
failed leaves an invalid index behind; running the migration again drops it and builds it
anew. SQLite builds them in the migration's transaction.

Revision ID: 9b2d5f3e8c17
Revises: 4e7b1d9c2a60
Create Date: 2026-12-02 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b2d5f3e8c17"
down_revision: str | None = "4e7b1d9c2a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PRIORITY_RANK = (
    "CASE priority WHEN 'none' THEN 0 WHEN 'low' THEN 1 WHEN 'medium' THEN 2 "
    "WHEN 'high' THEN 3 WHEN 'urgent' THEN 4 END"
)
# Each sort key's index columns, per database (NULL due dates are the latest instant in the
# ascending key and the earliest in the descending one; SQLite compares times as julianday).
TASK_KEYS = {
    "postgresql": {
        "due_asc": "COALESCE(due_date, 'infinity'::timestamptz), id",
        "due_desc": "COALESCE(due_date, '-infinity'::timestamptz), id",
        "priority": f"({_PRIORITY_RANK} * 4294967296 + id)",
        "created_at": "created_at, id",
    },
    "sqlite": {
        "due_asc": "coalesce(julianday(due_date), julianday('9999-12-31 23:59:59.999')), id",
        "due_desc": "coalesce(julianday(due_date), julianday('0001-01-01 00:00:00.000000')), id",
        "priority": f"({_PRIORITY_RANK} * 4294967296 + id)",
        "created_at": "julianday(created_at), id",
    },
}
ORDER_STATUSES = ("PENDING", "RESERVED", "CONFIRMED", "PAID", "CANCELLED", "FAILED")
SEARCH_INDEXES = {"ix_tasks_search": "tasks", "ix_products_search": "products"}


def _btree_indexes(dialect: str) -> dict[str, str]:
    """name → what follows ON in its CREATE INDEX: table, columns, partial condition."""
    indexes: dict[str, str] = {}
    for lead in ("", "project_id", "assignee_id"):
        for key, columns in TASK_KEYS[dialect].items():
            name = "_".join(filter(None, ("ix_tasks", lead, key)))
            indexes[name] = f"tasks ({lead}, {columns})" if lead else f"tasks ({columns})"
    indexes["ix_orders_user_id_status_id"] = "orders (user_id, status, id)"
    if dialect == "sqlite":
        indexes["ix_orders_status_id"] = "orders (status, id)"
    else:
        for status in ORDER_STATUSES:
            indexes[f"ix_orders_{status.lower()}_id"] = f"orders (id) WHERE status = '{status}'"
    return indexes


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        for name, definition in _btree_indexes("sqlite").items():
            op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
        return
    definitions = _btree_indexes("postgresql")
    definitions.update(
        {name: f"{table} USING gin (search)" for name, table in SEARCH_INDEXES.items()}
    )
    with op.get_context().autocommit_block():
        for name, definition in definitions.items():
            _create_concurrently(name, definition)


def _create_concurrently(name: str, definition: str) -> None:
    valid = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name AND pg_table_is_visible(c.oid)"
            ),
            {"name": name},
        )
        .scalar()
    )
    if valid is False:  # left over from a build that failed
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {definition}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    names = list(_btree_indexes("postgresql" if dialect == "postgresql" else "sqlite"))
    if dialect != "postgresql":
        for name in names:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        return
    with op.get_context().autocommit_block():
        for name in [*names, *SEARCH_INDEXES]:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
