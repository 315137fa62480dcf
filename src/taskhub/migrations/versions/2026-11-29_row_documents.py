"""Products and tasks keep their list-item JSON in a `doc` column (PostgreSQL).

GET /products and GET /tasks have PostgreSQL write their pages (taskhub.pagination.json_page).
Writing each item's JSON on every read was most of those queries' cost (bench/NOTES.md,
change 33); a row is read far more often than it is written, so a trigger now writes it
when the row is inserted or updated, and a page only joins the stored documents. The
documents are byte for byte what the API writes for `ProductOut` and `TaskOut` (compact
JSON; timestamps in UTC as pydantic writes them: six fraction digits, none when zero, `Z`);
the tests compare the two. A field added to either schema needs its trigger changed too.
SQLite has no such column: there pages are written by the server.

Revision ID: 8a4c2f6e1b93
Revises: 5d2e8b1c4a70
Create Date: 2026-11-29 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "8a4c2f6e1b93"
down_revision: str | None = "5d2e8b1c4a70"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (field, kind, nullable), in the order of the API's schema.
PRODUCT_FIELDS = [
    ("id", "integer", False),
    ("sku", "text", False),
    ("name", "text", False),
    ("description", "text", True),
    ("price_cents", "integer", False),
    ("stock", "integer", False),
    ("created_at", "timestamp", False),
    ("updated_at", "timestamp", False),
]
TASK_FIELDS = [
    ("id", "integer", False),
    ("project_id", "integer", False),
    ("title", "text", False),
    ("description", "text", True),
    ("status", "text", False),
    ("priority", "text", False),
    ("assignee_id", "integer", True),
    ("created_by_id", "integer", True),
    ("due_date", "timestamp", True),
    ("created_at", "timestamp", False),
    ("updated_at", "timestamp", False),
]
TABLES = {"products": PRODUCT_FIELDS, "tasks": TASK_FIELDS}


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _value(field: str, kind: str, nullable: bool) -> str:
    value = f"NEW.{field}"
    if kind == "integer":
        written = f"{value}::text"
    elif kind == "text":
        written = f"to_json({value})::text"
    else:
        written = (
            f"'\"' || replace(to_char({value} AT TIME ZONE 'UTC', "
            f"'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || 'Z\"'"
        )
    return f"coalesce({written}, 'null')" if nullable else written


def _document(fields: list[tuple[str, str, bool]]) -> str:
    parts = []
    for i, (field, kind, nullable) in enumerate(fields):
        opening = ("{" if i == 0 else ",") + f'"{field}":'
        parts.append(f"'{opening}' || {_value(field, kind, nullable)}")
    return " || ".join(parts) + " || '}'"


def upgrade() -> None:
    if not _is_postgresql():
        return
    for table, fields in TABLES.items():
        op.execute(f"ALTER TABLE {table} ADD COLUMN doc text")
        op.execute(
            f"""
            CREATE FUNCTION taskhub_{table}_doc() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                NEW.doc := {_document(fields)};
                RETURN NEW;
            END;
            $$
            """
        )
        op.execute(
            f"""
            CREATE TRIGGER {table}_doc
            BEFORE INSERT OR UPDATE ON {table}
            FOR EACH ROW EXECUTE FUNCTION taskhub_{table}_doc()
            """
        )
        # The trigger writes every document (table names are this module's constants).
        op.execute(f"UPDATE {table} SET doc = NULL")  # noqa: S608
        op.execute(f"ALTER TABLE {table} ALTER COLUMN doc SET NOT NULL")


def downgrade() -> None:
    if not _is_postgresql():
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_doc ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS taskhub_{table}_doc()")
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS doc")
