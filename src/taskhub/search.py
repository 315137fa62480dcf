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
# Matches the statistics may promise for the full-text index to be asked first (PostgreSQL).
RARE = 5000


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
    # A subquery: the words are parsed once per statement, not once per row checked (a
    # generic plan would otherwise call to_tsquery on every row).
    query = f"(SELECT to_tsquery('simple', {compiler.process(element.query, **kw)}))"
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


class _Rare(ColumnElement[bool]):
    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True

    def __init__(self, table: Table) -> None:
        self.table_name = str(table.name)
        self.query = bindparam("q", type_=SearchQuery())


@compiles(_Rare, "postgresql")
def _rare_postgresql(element: _Rare, compiler: Any, **kw: Any) -> str:
    # Per word (the query text is 'w1:* & w2:*'): the share of rows holding a lexeme that
    # starts with it, as PostgreSQL's planner estimates a prefix (ts_selfuncs.c): the most
    # common elements that match, plus their share of the rest. A word of one or two
    # letters starts too many lexemes to tell: it counts as common. The table's rows times
    # the rarest word's share is the most the words can match.
    query = compiler.process(element.query, **kw)
    table = element.table_name
    return f"""(SELECT coalesce(min(share), 0) * max(rows) <= {RARE}
    FROM (SELECT CASE WHEN length(word) <= 2 THEN 1.0 ELSE
                 coalesce(sum(freq) FILTER (WHERE starts_with(lexeme, word)), 0)
                 + (1 - coalesce(sum(freq), 0)) * count(*) FILTER (WHERE starts_with(lexeme, word))
                   / greatest(count(lexeme), 1) END AS share,
                 (SELECT reltuples FROM pg_class WHERE oid = '{table}'::regclass) AS rows
          FROM unnest(string_to_array(replace(lower({query}), ':*', ''), ' & ')) AS word
          LEFT JOIN (SELECT lexeme, freq FROM pg_stats,
                     unnest(most_common_elems::text::text[], most_common_elem_freqs)
                       AS common(lexeme, freq)
                     WHERE schemaname = current_schema() AND tablename = '{table}'
                       AND attname = 'search' AND lexeme IS NOT NULL) AS stats ON true
          GROUP BY word) AS words)"""  # noqa: S608 (a table name of this module's callers)


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

    PostgreSQL: when the table's statistics say the words match at most `RARE` rows, the
    GIN index finds them (then `ranged` and `checked` apply) and they are sorted. Otherwise
    first a walk: the list's index range (`ranged`) in `order`, each row checked against the
    words and `checked`, until it finds the :limit rows, up to `WALK` rows. If it finds them,
    or reads the whole range, it holds the page; if not, the words are rare in this range,
    and the GIN index finds their matches after all. The walk is read only as far as it is
    needed: a common word stops it within a page's worth of rows. The statistics only choose
    the order of the two (the planner's own choice for a prefix search can read the whole
    table); either gives the same rows.

    SQLite: the matches. FTS5 reads a word's whole list of rows to answer any question
    about it, so a walk would not save that read; the matches come first (a materialized
    CTE, which no index order can replace) and are sorted.
    """
    columns = [table.c[name] for name in names]
    found_where = [matches(table, indexed=True), *ranged, *checked]
    if dialect != "postgresql":
        found = select(*columns).where(*found_where).cte("found").prefix_with("MATERIALIZED")
        return select(*(found.c[name] for name in names)).subquery("page")
    # Rare words (as far as the statistics tell) go to the index at once; others walk first.
    decided = select(_Rare(table).label("rare")).cte("words_are_rare")
    rare = select(decided.c.rare).scalar_subquery()
    hit = and_(matches(table, indexed=False), *checked)
    walk = (
        select(*columns, hit.label("hit_"))
        .where(*ranged, not_(rare))
        .order_by(*order_clauses(order))
        .limit(WALK)
        .cte("walk")
        .prefix_with("MATERIALIZED")
    )
    # The walk's first :limit hits. A CTE is read in the order its rows were made (the
    # walk's order) and only as far as it is read, so a common word stops the walk early.
    first = (
        select(*(walk.c[name] for name in names))
        .where(walk.c.hit_)
        .limit(bindparam("limit", type_=Integer()))
        .cte("first_hits")
    )
    hits = select(func.count()).select_from(first).scalar_subquery()
    walked = select(func.count()).select_from(walk).scalar_subquery()
    # The walk holds the page when it found the rows the page needs (:limit is the page's
    # size plus one), or else when it read the whole range (only then is it read to its end).
    settled = and_(not_(rare), or_(hits >= bindparam("limit", type_=Integer()), walked < WALK))
    found = (
        select(*columns).where(*found_where, not_(settled)).cte("found").prefix_with("MATERIALIZED")
    )
    return union_all(
        select(*(first.c[name] for name in names)).where(settled),
        select(*(found.c[name] for name in names)),
    ).subquery("page")
