"""SQL text: the one place where statements are assembled.

Statements are written once, as templates with ``?`` for values and ``{name}`` for
tables (``"SELECT doc_id FROM {ledger} WHERE kind = ?"``); a list of values is one
parameter, written ``doc_id = ANY(?)`` and bound to a Python list. ``Dialect.render`` fills
each ``{name}`` with the validated, quoted, prefixed or schema-qualified table name, and
converts ``?`` to the driver's parameter style. Values are never formatted into SQL.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ragstate.errors import IdentifierError
from ragstate.identifiers import ident, user_ident
from ragstate.stores.schema import Column, ColumnType, Index, TableDef

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
#: rendered statements a dialect keeps (templates are few; table names grow with generations)
RENDERED_KEPT = 4096


class Col(str):
    """Marks a ``render`` argument as a column name rather than a table name."""


class UserName(str):
    """Marks a ``render`` argument as a name in the user's own database.

    A column (``Status``) or a table, optionally schema-qualified (``app.Articles``);
    each dot-separated part must pass ``user_ident`` and is quoted exactly, case kept.
    """


# --- in-place sources: the view over a user's table ---------------------------------------

#: markers a view statement template may hold; ``Dialect.view_sql`` fills them
FILTER_MARK = "/*filter*/"
HASH_MARK = "/*content_hash*/"

#: filter operators (the spec's allow-list) and the condition each compiles to; ``{c}``
#: is the quoted column, ``?`` the bound value (a list for ``in``)
FILTER_CONDITIONS = {
    "=": "{c} = ?",
    "!=": "{c} <> ?",
    "<": "{c} < ?",
    "<=": "{c} <= ?",
    ">": "{c} > ?",
    ">=": "{c} >= ?",
    "in": "{c} = ANY(?)",
    "not in": "NOT ({c} = ANY(?))",
    "is null": "{c} IS NULL",
    "is not null": "{c} IS NOT NULL",
}
#: operators that take no value
NULL_TESTS = ("is null", "is not null")


class Filter(Protocol):
    """A structured filter: column, operator from ``FILTER_CONDITIONS``, value."""

    column: str
    op: str
    value: Any


@dataclass(frozen=True)
class ViewLayout:
    """The view ragstate creates over a user's table: its columns, in order.

    ``doc_id``, ``title``, ``abstract`` and ``body`` are text (NULL becomes ''); each of
    ``extras`` (the id's raw value, metadata and filter columns) is exposed unchanged as
    ``c_<name>``, so filters compare in the column's own type and id lookups can use the
    table's index.
    """

    source: str  # "schema.table", or "table"
    id: str
    text: str
    title: str | None = None
    abstract: str | None = None
    extras: tuple[str, ...] = ()

    #: prefix of the view's names for the user's own columns
    EXTRA_PREFIX = "c_"

    @property
    def columns(self) -> tuple[str, ...]:
        """The view's column names, in order."""
        return ("doc_id", "title", "abstract", "body") + tuple(self.EXTRA_PREFIX + c for c in self.extras)


class Dialect(ABC):
    """How one backend spells identifiers, types, DDL and parameters."""

    name: str
    #: True when the planner needs ``ANALYZE`` of a freshly filled temporary table to
    #: join it well (PostgreSQL: autovacuum never visits temporary tables)
    analyze_temp_tables: bool = False

    # --- identifiers ------------------------------------------------------------------

    def quote(self, name: str) -> str:
        """Quote a validated identifier (``ident`` is applied again here)."""
        return '"' + ident(name) + '"'

    @abstractmethod
    def table(self, name: str) -> str:
        """The quoted, prefixed or qualified name of ragstate table ``name``."""

    def temp_table(self, name: str) -> str:
        return self.quote("rs_tmp_" + ident(name))

    def quote_user(self, name: str) -> str:
        """Quote a name of the user's database (``table``, ``schema.table``), case kept."""
        parts = name.split(".") if isinstance(name, str) else [name]
        if len(parts) > 2:
            raise IdentifierError(f"invalid table name {name[:60]!r}: use TABLE or SCHEMA.TABLE")
        return ".".join('"' + user_ident(p, what="name") + '"' for p in parts)

    def render(self, template: str, **names: str) -> str:
        """Fill each ``{key}`` with a quoted identifier; convert ``?`` to the driver's style.

        ``{key}`` is the ragstate table ``names[key]`` (or ``key`` itself when not given),
        a column when ``names[key]`` is a ``Col``, and ``{tmp_x}`` the temporary table
        ``x``. Any ``{...}`` that is not a valid identifier is left alone and makes the
        statement fail loudly at the driver.

        Rendered statements are kept per dialect (a statement's text depends only on the
        template, the names and this dialect's prefix or schema, so it never goes stale);
        the drivers then reuse their prepared statements for the same text.
        """
        key = (template, tuple(sorted((k, type(v).__name__, str(v)) for k, v in names.items())))
        rendered = self.__dict__.setdefault("_rendered", {})
        sql = rendered.get(key)
        if sql is None:
            sql = self.render_uncached(template, **names)
            if len(rendered) >= RENDERED_KEPT:
                rendered.clear()
            rendered[key] = sql
        return sql

    def render_uncached(self, template: str, **names: str) -> str:
        """``render`` without keeping the result."""

        def table_for(m: re.Match[str]) -> str:
            key = m.group(1)
            value = names.get(key, key)
            if isinstance(value, UserName):
                return self.quote_user(value)
            if isinstance(value, Col):
                return self.quote(value)
            if key.startswith("tmp_") and key not in names:
                return self.temp_table(key[4:])
            return self.table(value)

        return self.paramstyle(self.any_list(_PLACEHOLDER.sub(table_for, template)))

    def any_list(self, sql: str) -> str:
        """Spell ``x = ANY(?)`` (one parameter holding a list) for this backend."""
        return sql

    def paramstyle(self, sql: str) -> str:
        """Convert ``?`` placeholders to the driver's style (identity by default)."""
        return sql

    # --- DDL --------------------------------------------------------------------------

    @abstractmethod
    def column_type(self, column: Column) -> str:
        """The SQL type of ``column``."""

    def create_table(self, table: TableDef, *, temp: bool = False) -> list[str]:
        """Statements creating ``table`` and its indexes (idempotent)."""
        cols = [f"{self.quote(c.name)} {self.column_type(c)}{'' if c.nullable else ' NOT NULL'}" for c in table.columns]
        pk = ", ".join(self.quote(k) for k in table.primary_key)
        name = self.temp_table(table.name) if temp else self.table(table.name)
        head = "CREATE TEMP TABLE IF NOT EXISTS" if temp else "CREATE TABLE IF NOT EXISTS"
        statements = [f"{head} {name} ({', '.join(cols)}, PRIMARY KEY ({pk}))"]
        if not temp:
            # Vector indexes are left out: they are built once a generation is loaded
            # (Store.vector_index), which is far faster than maintaining them row by row.
            for ix in table.indexes:
                if ix.method != "vector":
                    statements += self.index_statements(table, ix)
        return [s for s in statements if s]

    def drop_table(self, table: TableDef) -> list[str]:
        """Statements dropping ``table`` (if it exists) with its indexes."""
        return [f"DROP TABLE IF EXISTS {self.table(table.name)}"]

    def index_statements(self, table: TableDef, index: Index) -> list[str]:
        """Statements creating ``index`` if it is missing (one, unless a backend needs more)."""
        return [self.create_index(table, index)]

    def index_name(self, table: TableDef, index: Index) -> str:
        """The (unquoted) physical name of ``index`` on ``table`` ('' if not created)."""
        return f"{table.name}_{index.name}"

    @abstractmethod
    def create_index(self, table: TableDef, index: Index) -> str:
        """A statement creating ``index`` if it is missing, or '' where unsupported."""

    def add_column(self, table: TableDef, column: Column) -> str:
        """``ALTER TABLE ... ADD COLUMN`` (always nullable: existing rows have no value)."""
        return f"ALTER TABLE {self.table(table.name)} ADD COLUMN {self.quote(column.name)} {self.column_type(column)}"

    def upsert(self, table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
        """``INSERT ... ON CONFLICT (key) DO UPDATE`` for ragstate table ``table``.

        Both SQLite (3.24+) and PostgreSQL spell it the same way. Like every helper
        here it returns a template (``?`` placeholders) for ``Session`` to render.
        """
        cols = ", ".join(self.quote(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f"{self.quote(c)} = excluded.{self.quote(c)}" for c in columns if c not in key)
        conflict = ", ".join(self.quote(k) for k in key)
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return f"INSERT INTO {self.table(table)} ({cols}) VALUES ({marks}) ON CONFLICT ({conflict}) {action}"

    def insert(self, table_sql: str, columns: tuple[str, ...]) -> str:
        cols = ", ".join(self.quote(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        return f"INSERT INTO {table_sql} ({cols}) VALUES ({marks})"

    def list_param(self, values: list[Any]) -> Any:
        """A Python list as the value bound to ``= ANY(?)`` (an array by default)."""
        return values

    def is_vector(self, column: Column) -> bool:
        return column.type is ColumnType.VECTOR

    # --- in-place sources -------------------------------------------------------------

    #: True where the database matches column names case-insensitively (SQLite)
    fold_case: bool = False

    def create_view(self, view: str, layout: ViewLayout) -> list[str]:
        """Statements (re)creating ragstate's view ``view`` over the user's table.

        The view only renames and converts: no filter lives in it, because a view
        cannot hold bound parameters and a filter value must never become SQL text
        (``view_sql`` adds the filter, bound, to every query of the view).
        """
        q = self.quote_user
        outputs = [f"CAST({q(layout.id)} AS TEXT) AS {self.quote('doc_id')}"]
        for alias, column in (("title", layout.title), ("abstract", layout.abstract), ("body", layout.text)):
            expr = f"COALESCE(CAST({q(column)} AS TEXT), '')" if column else "CAST('' AS TEXT)"
            outputs.append(f"{expr} AS {self.quote(alias)}")
        outputs += [f"{q(c)} AS {q(layout.EXTRA_PREFIX + c)}" for c in layout.extras]
        return [
            f"DROP VIEW IF EXISTS {self.table(view)}",
            f"CREATE VIEW {self.table(view)} AS SELECT {', '.join(outputs)} FROM {q(layout.source)}",
        ]

    def drop_view(self, view: str) -> str:
        return f"DROP VIEW IF EXISTS {self.table(view)}"

    def view_sql(
        self, template: str, filters: Sequence[Filter] = (), *, prefix: str = "", stored_hash: bool = False
    ) -> str:
        """Fill a view statement template's markers; the result is a normal template.

        ``/*filter*/`` becomes the filters' conditions joined by AND (``1 = 1`` when
        there are none), each column ``prefix + column``, each value a ``?`` (bind
        ``filter_params(filters)`` in the same order); ``/*content_hash*/`` becomes this
        backend's content hash of the columns ``title``, ``abstract`` and ``body``, or,
        with ``stored_hash`` (a copy or materialised view), the column ``content_hash``.
        """
        conditions = []
        for f in filters:
            if f.op not in FILTER_CONDITIONS:
                raise IdentifierError(f"filter on {f.column}: unknown operator {f.op!r}")
            conditions.append(FILTER_CONDITIONS[f.op].replace("{c}", self.quote_user(prefix + f.column)))
        sql = template.replace(FILTER_MARK, " AND ".join(conditions) or "1 = 1")
        if HASH_MARK in sql:
            sql = sql.replace(HASH_MARK, self.quote("content_hash") if stored_hash else self._view_hash())
        return sql

    def _view_hash(self) -> str:
        return self.content_hash_sql(self.quote("title"), self.quote("abstract"), self.quote("body"))

    # --- in-place sources: a copy or a materialised view of the view (slow views) ------

    #: the ``source.mode`` values this backend can keep (``view`` reads the view itself)
    stored_modes: tuple[str, ...] = ("copy",)

    def drop_stored(self, copy: str, materialized: str) -> list[str]:
        """Statements removing a mapping's copy and materialised view, whichever exist."""
        return [f"DROP TABLE IF EXISTS {self.table(copy)}"]

    def create_stored(self, mode: str, relation: str, view: str, layout: ViewLayout) -> list[str]:
        """Statements creating ``relation``, the copy (``mode`` ``copy``: a table, filled by
        ``sync_copy``) or materialised view (``materialized``: filled by its refresh) of
        view ``view``: the view's columns and then ``content_hash``, computed when the row
        is copied, with indexes on ``doc_id`` and the id column's own values."""
        select = f"SELECT v.*, {self._view_hash()} AS {self.quote('content_hash')} FROM {self.table(view)} v"
        rel = self.table(relation)
        if mode == "copy":
            head = [f"CREATE TABLE {rel} AS {select} WHERE 1 = 0"]
        elif mode == "materialized" and mode in self.stored_modes:
            head = [f"CREATE MATERIALIZED VIEW {rel} AS {select} WITH NO DATA"]
        else:
            raise IdentifierError(f"source.mode {mode!r} is not available on {self.name}")
        raw = self.quote_user(layout.EXTRA_PREFIX + layout.id)
        return head + [
            f"CREATE INDEX {self.quote(self._stored_index(relation, 'doc'))} ON {rel} ({self.quote('doc_id')})",
            f"CREATE INDEX {self.quote(self._stored_index(relation, 'raw'))} ON {rel} ({raw})",
        ]

    def _stored_index(self, relation: str, what: str) -> str:
        return ident(f"{relation}_{what}", what="index name")

    def sync_copy(self, copy: str, view: str, layout: ViewLayout) -> list[str]:
        """Statements bringing table ``copy`` in step with view ``view``, in one pass over
        the view: its rows (hashed) go to a temporary table; copied rows that no longer
        match a row of it exactly are deleted, and rows it has that the copy lacks are
        inserted. Unchanged rows are not written. Run them in one transaction."""
        tmp = self.temp_table("sync")
        rel = self.table(copy)
        select = f"SELECT v.*, {self._view_hash()} AS {self.quote('content_hash')} FROM {self.table(view)} v"
        columns = [*layout.columns, "content_hash"]

        def same(a: str, b: str) -> str:
            return " AND ".join(
                self.null_safe_equal(f"{a}.{self.quote_any(c)}", f"{b}.{self.quote_any(c)}") for c in columns
            )

        return [
            f"DROP TABLE IF EXISTS {tmp}",
            f"CREATE TEMP TABLE {tmp} AS {select}",
            f"DELETE FROM {rel} WHERE NOT EXISTS (SELECT 1 FROM {tmp} s WHERE {same('s', rel)})",
            f"INSERT INTO {rel} SELECT * FROM {tmp} s WHERE NOT EXISTS (SELECT 1 FROM {rel} c WHERE {same('s', 'c')})",
            f"DROP TABLE IF EXISTS {tmp}",
        ]

    def quote_any(self, name: str) -> str:
        """Quote a view column: ragstate's own (``doc_id``) or one named after the user's."""
        return self.quote_user(name) if name.startswith(ViewLayout.EXTRA_PREFIX) else self.quote(name)

    def refresh_materialized(self, relation: str) -> str:
        raise IdentifierError(f"materialised views are not available on {self.name}")

    def null_safe_equal(self, a: str, b: str) -> str:
        """SQL true when ``a`` and ``b`` are equal or both NULL."""
        return f"{a} IS NOT DISTINCT FROM {b}"

    @staticmethod
    def filter_params(filters: Iterable[Filter]) -> list[Any]:
        """The bound values of ``filters``, in the order ``view_sql`` placed their ``?``."""
        return [list(f.value) if f.op in ("in", "not in") else f.value for f in filters if f.op not in NULL_TESTS]

    @abstractmethod
    def content_hash_sql(self, title: str, abstract: str, body: str) -> str:
        """An SQL expression hashing three quoted text columns (see docs/sources.md)."""

    def text_bytes(self, column: str) -> str:
        """An SQL expression reading the text column ``column`` (a quoted name) as its UTF-8
        bytes, undecoded: a row whose text is not valid UTF-8 (SQLite stores any bytes) is then
        read, and judged, rather than failing the whole read."""
        return f"CAST({column} AS BLOB)"

    def cache_entries_sql(self) -> str:
        """Every embedding cache entry, its text as undecoded bytes (``text_bytes``)."""
        return (
            f"SELECT model_fp, text_hash, dim, n_tokens, normalized, value, {self.text_bytes('text')} "
            "FROM {embedding_cache} ORDER BY model_fp, text_hash"
        )

    def cache_sample_sql(self) -> str:
        """Entries of one embedding recipe by text hash, their text as undecoded bytes."""
        return (
            f"SELECT text_hash, {self.text_bytes('text')}, dim, n_tokens, value FROM {{embedding_cache}} "
            "WHERE model_fp = ? ORDER BY text_hash LIMIT ?"
        )

    @abstractmethod
    def text_conversion(self, sql_type: str) -> str:
        """How a column of ``sql_type`` becomes text: ``direct``, ``convert`` or ``binary``."""

    @abstractmethod
    def is_integer_type(self, sql_type: str) -> bool:
        """True when values of ``sql_type`` are integers (id lookups then bind integers)."""

    def binary_values_sql(self) -> str | None:
        """A template counting rows of ``{src}`` whose ``{col}`` holds binary data, where
        the declared type does not exclude it (SQLite); None where types do (PostgreSQL)."""
        return None
