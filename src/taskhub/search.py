"""Full-text search (`q` of GET /tasks and GET /products), the same on both databases.

What matches: a word is a run of letters (with their combining marks) and digits, in any
script; everything else separates words. A row matches `q` when every word of `q` begins a
word of its text, ignoring case: `q=depl` finds "Deploy", `q="login bug"` needs both words,
and `q=%` (no word) finds nothing. There is no stemming and there are no stop words.

Where it lives:
- PostgreSQL: a generated column `search` (tsvector, STORED) holds each row's words, from
  its text with ASCII punctuation blanked, through the `simple` configuration, which only
  lowercases; a GIN index serves `search @@ to_tsquery('simple', 'w1:* & w2:*')`.
- SQLite: an FTS5 table `<table>_search` (external content) with the unicode61 tokenizer
  (letters, marks, decimal digits and letter numbers are the token characters, as for
  PostgreSQL's parser; diacritics kept, as PostgreSQL keeps them), kept in step by triggers
  in the writing transaction; the query is `"w1"* AND "w2"*`.

Case folding is each database's own: exact for ASCII on both, and for other letters by
PostgreSQL's locale (C.UTF-8 folds Unicode) and by SQLite's Unicode tables.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Alias,
    ColumnElement,
    Integer,
    String,
    Subquery,
    Table,
    and_,
    bindparam,
    func,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import Boolean, TypeDecorator

from taskhub.pages import SortKey, order_clauses

# The Unicode categories of a word's characters: letters, marks, decimal digits and letter
# numbers (not "other numbers" such as ² or ½, which PostgreSQL's parser does not keep).
WORD_CATEGORIES = ("L", "M", "Nd", "Nl")
# Rows a search walks in the list's order before it asks the full-text index instead.
WALK = 2000


def search_words(q: str) -> tuple[str, ...]:
    """The words of `q` (runs of letters and digits), each once, in order."""
    words: dict[str, str] = {}
    word: list[str] = []
    for char in f"{q} ":
        if unicodedata.category(char).startswith(WORD_CATEGORIES):
            word.append(char)
        elif word:
            found = "".join(word)
            words.setdefault(found.casefold(), found)
            word = []
    return tuple(words.values())


class SearchQuery(TypeDecorator[tuple[str, ...]]):
    """The words of a search, bound as each database's query text (prefix match, AND)."""

    impl = String()
    cache_ok = True

    def process_bind_param(self, value: tuple[str, ...] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        # Words hold only letters and digits: nothing in them is query syntax.
        if dialect.name == "postgresql":
            return " & ".join(f"{word}:*" for word in value)
        return " AND ".join(f'"{word}"*' for word in value)


class _Matches(ColumnElement[bool]):
    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a condition as it is, never compared with true

    def __init__(self, table: Table | Alias, *, indexed: bool) -> None:
        self.table_name = str(table.name)
        source = table.element if isinstance(table, Alias) else table
        self.source = str(source.name) if isinstance(source, Table) else self.table_name
        self.row_id = table.c.id
        self.indexed = indexed
        self.query = bindparam("q", type_=SearchQuery())


@compiles(_Matches, "postgresql")
def _matches_postgresql(element: _Matches, compiler: Any, **kw: Any) -> str:
    query = f"to_tsquery('simple', {compiler.process(element.query, **kw)})"
    if element.indexed:
        return f"{element.table_name}.search @@ {query}"
    # The function behind @@, which no index serves: the row is checked where it is read.
    return f"ts_match_vq({element.table_name}.search, {query})"


@compiles(_Matches)
def _matches_default(element: _Matches, compiler: Any, **kw: Any) -> str:
    # Both parts are SQLAlchemy's own renderings (a column, a bound parameter's marker).
    row_id = compiler.process(element.row_id, **kw)
    query = compiler.process(element.query, **kw)
    fts = f"{element.source}_search"
    return f"{row_id} IN (SELECT rowid FROM {fts} WHERE {fts} MATCH {query})"  # noqa: S608


def matches(table: Table | Alias, *, indexed: bool = True) -> ColumnElement[bool]:
    """Whether the row of `table` (tasks or products, or an alias) matches the words bound
    as :q. `indexed=False` on PostgreSQL checks each row read instead of letting the GIN
    index find the rows (for a walk in another index's order)."""
    return _Matches(table, indexed=indexed)


def walk_or_index(
    table: Table,
    names: Sequence[str],
    *,
    order: Sequence[SortKey],
    ranged: Sequence[ColumnElement[bool]],
    checked: Sequence[ColumnElement[bool]],
    dialect: str,
) -> Subquery:
    """The rows of `table` (columns `names`) that match the words bound as :q, for a page
    of :limit rows in `order`: a subquery holding at least that page, to be sorted.

    PostgreSQL: first a walk, the first `WALK` rows of the list's index range (`ranged`) in
    `order`, each checked against the words and `checked`. If it finds the :limit rows, or
    reads the whole range, it holds the page. Otherwise the words are rare in the range, and
    the GIN index finds every match (then `ranged` and `checked` apply) for the page to be
    sorted from. The walk finds common words, the index rare ones, whatever the planner
    would estimate for a prefix search; each part runs only when it is needed.

    SQLite: the matches. FTS5 reads a word's whole list of rows to answer any question
    about it, so a walk would not save that read; the matches come first (a materialized
    CTE, which no index order can replace) and are sorted.
    """
    columns = [table.c[name] for name in names]
    found_where = [matches(table, indexed=True), *ranged, *checked]
    if dialect != "postgresql":
        found = select(*columns).where(*found_where).cte("found").prefix_with("MATERIALIZED")
        return select(*(found.c[name] for name in names)).subquery("page")
    hit = and_(matches(table, indexed=False), *checked)
    walk = (
        select(*columns, hit.label("hit_"))
        .where(*ranged)
        .order_by(*order_clauses(order))
        .limit(WALK)
        .cte("walk")
        .prefix_with("MATERIALIZED")
    )
    hits = select(func.count()).select_from(walk).where(walk.c.hit_).scalar_subquery()
    walked = select(func.count()).select_from(walk).scalar_subquery()
    settled = or_(hits >= bindparam("limit", type_=Integer()), walked < WALK)
    found = (
        select(*columns).where(*found_where, not_(settled)).cte("found").prefix_with("MATERIALIZED")
    )
    return union_all(
        select(*(walk.c[name] for name in names)).where(walk.c.hit_, settled),
        select(*(found.c[name] for name in names)),
    ).subquery("page")
