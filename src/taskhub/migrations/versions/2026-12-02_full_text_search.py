"""Full-text search of tasks (title, description) and products (sku, name, description).

PostgreSQL: a generated column `search` (tsvector, STORED) per table: the text with ASCII
punctuation blanked, through the `simple` configuration (lowercase, no stemming, no stop
words). Its GIN index is built by the next migration, concurrently. Adding a STORED column
rewrites the table under an exclusive lock: writers (and readers) wait while it runs, about
ten seconds per million tasks on the project's machine.

SQLite: an FTS5 table `<table>_search` over the same columns (external content: it keeps
only the index), unicode61 tokenizer with letters, marks, decimal digits and letter numbers
as the token characters (the characters PostgreSQL's parser keeps in a word) and diacritics
kept; AFTER INSERT / UPDATE / DELETE triggers keep it in step inside the writing
transaction. A later batch migration that rebuilds `tasks` or `products` drops the triggers
with the table and must create them again.

taskhub/search.py documents the semantics, which are the same on both databases.

Revision ID: 4e7b1d9c2a60
Revises: 9d4f3a7c2e61
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "4e7b1d9c2a60"
down_revision: str | None = "9d4f3a7c2e61"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The searched columns of each table, in the order their text is joined.
SEARCHED = {
    "tasks": ("title", "description"),
    "products": ("sku", "name", "description"),
}
# ASCII punctuation, symbols and control characters separate words; other characters are
# left to the text-search parser, which keeps letters and digits of any script.
ASCII_SEPARATORS = r"[\x01-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+"
FTS5_TOKENIZER = "unicode61 remove_diacritics 0 categories 'L* M* Nd Nl'"


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _is_postgresql():
        for table, columns in SEARCHED.items():
            text = " || ' ' || ".join(f"coalesce({column}, '')" for column in columns)
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN search tsvector GENERATED ALWAYS AS "
                f"(to_tsvector('simple'::regconfig, "
                f"regexp_replace({text}, '{ASCII_SEPARATORS}', ' ', 'g'))) STORED"
            )
        return
    for table, columns in SEARCHED.items():
        fts = f"{table}_search"
        listed = ", ".join(columns)
        op.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5({listed}, content='{table}', "
            f"content_rowid='id', tokenize=\"{FTS5_TOKENIZER}\")"
        )
        add = _fts_write(fts, columns, "new")
        remove = _fts_write(fts, columns, "old", delete=True)
        op.execute(f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN {add}; END")
        op.execute(f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN {remove}; END")
        op.execute(
            f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {listed} ON {table} "
            f"BEGIN {remove}; {add}; END"
        )
        op.execute(_fts_write(fts, (), "", rebuild=True))


def _fts_write(
    fts: str, columns: Sequence[str], row: str, *, delete: bool = False, rebuild: bool = False
) -> str:
    """An FTS5 write: index a row's text, remove it (external content: the old values), or
    rebuild the whole index. Every name is one of this module's constants."""
    if rebuild:
        return f"INSERT INTO {fts}({fts}) VALUES ('rebuild')"  # noqa: S608
    listed = ", ".join(columns)
    values = ", ".join(f"{row}.{column}" for column in columns)
    if delete:
        return f"INSERT INTO {fts}({fts}, rowid, {listed}) VALUES ('delete', {row}.id, {values})"  # noqa: S608
    return f"INSERT INTO {fts}(rowid, {listed}) VALUES ({row}.id, {values})"  # noqa: S608


def downgrade() -> None:
    if _is_postgresql():
        for table in SEARCHED:
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS search")
        return
    for table in SEARCHED:
        fts = f"{table}_search"
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {fts}_{event}")
        op.execute(f"DROP TABLE IF EXISTS {fts}")
