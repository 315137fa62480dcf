"""Products and tasks no longer keep their list-item JSON in a trigger-written `doc` column.

PostgreSQL now writes a page's JSON at read time from the response model's fields
(taskhub.pages.row_json), so the field list exists once, in the schema, instead of in a
trigger kept in step by hand. bench/NOTES.md records the measurement behind the choice.

Revision ID: c3f1a9d2e7b4
Revises: 4e7b9c2d1f08
Create Date: 2026-12-01 15:00:00
"""

from collections.abc import Sequence
from types import ModuleType

from alembic import op
from alembic.script import ScriptDirectory

revision: str = "c3f1a9d2e7b4"
down_revision: str | None = "4e7b9c2d1f08"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("products", "tasks")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_doc ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS taskhub_{table}_doc()")
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS doc")


def downgrade() -> None:
    # The revision before this one installs the columns and triggers: run it again.
    _previous().upgrade()


def _previous() -> ModuleType:
    config = op.get_context().config
    if config is None:
        raise RuntimeError("migrations run with an Alembic config (taskhub.migrate)")
    script = ScriptDirectory.from_config(config)
    previous = script.get_revision("8a4c2f6e1b93")
    if previous is None or previous.module is None:
        raise RuntimeError("revision 8a4c2f6e1b93 is missing")
    module: ModuleType = previous.module
    return module
