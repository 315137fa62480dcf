"""SQLite never hands out an id twice: AUTOINCREMENT on every table with an integer id.

Without it SQLite gives a new row the highest id in use plus one, so after the newest user
was deleted the next account got the same id, and the deleted user's token (its `sub`)
named someone else. With AUTOINCREMENT the next id comes from `sqlite_sequence`, which only
grows. Every table whose integer id reaches a client, a token or an event gets it; the other
integer-id tables too, so that no table behaves differently. PostgreSQL's sequences never
reuse a value: there the migration does nothing.

SQLite cannot add AUTOINCREMENT to an existing table, so each table is rebuilt (Alembic's
batch recreate keeps its rows, constraints and indexes). Dropping a table that others
reference would run their ON DELETE actions (cascades, SET NULL) on its rows, so foreign keys
are not enforced during the rebuild (the pragma only changes outside a transaction: the
migrations before this one are committed first), and checked before they are enforced again.
The copy sets each table's sequence to its highest id, and this migration makes sure of it.

Revision ID: 3f7d9b2a6c15
Revises: c3f1a9d2e7b4
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3f7d9b2a6c15"
down_revision: str | None = "c3f1a9d2e7b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Parents before children, so that each rebuild copies rows whose references exist.
TABLES = (
    "users",
    "projects",
    "tasks",
    "task_activity",
    "products",
    "orders",
    "order_items",
    "reservations",
    "stock_movements",
    "outbox",
)


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)


def _rebuild(*, autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    context = op.get_context()
    with context.autocommit_block():
        op.execute("PRAGMA foreign_keys=OFF")
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass
    bind = op.get_bind()
    broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"foreign keys broken by the rebuild: {broken[:5]}")
    if autoincrement:
        for table in TABLES:
            # The next id is above every id in the table (the copy already set it; this holds
            # even if a table was rebuilt empty).
            op.execute(
                f"DELETE FROM sqlite_sequence WHERE name = '{table}'"  # noqa: S608 (constants)
            )
            op.execute(
                "INSERT INTO sqlite_sequence (name, seq) "  # noqa: S608 (constants)
                f"SELECT '{table}', coalesce(max(id), 0) FROM {table}"
            )
    with context.autocommit_block():
        op.execute("PRAGMA foreign_keys=ON")
