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
from typing import Any

from ragstate.stores.schema import Column, ColumnType, Index, TableDef, ident

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class Col(str):
    """Marks a ``render`` argument as a column name rather than a table name."""


class Dialect(ABC):
    """How one backend spells identifiers, types, DDL and parameters."""

    name: str

    # --- identifiers ------------------------------------------------------------------

    def quote(self, name: str) -> str:
        """Quote a validated identifier (``ident`` is applied again here)."""
        return '"' + ident(name) + '"'

    @abstractmethod
    def table(self, name: str) -> str:
        """The quoted, prefixed or qualified name of ragstate table ``name``."""

    def temp_table(self, name: str) -> str:
        return self.quote("rs_tmp_" + ident(name))

    def render(self, template: str, **names: str) -> str:
        """Fill each ``{key}`` with a quoted identifier; convert ``?`` to the driver's style.

        ``{key}`` is the ragstate table ``names[key]`` (or ``key`` itself when not given),
        a column when ``names[key]`` is a ``Col``, and ``{tmp_x}`` the temporary table
        ``x``. Any ``{...}`` that is not a valid identifier is left alone and makes the
        statement fail loudly at the driver.
        """

        def table_for(m: re.Match[str]) -> str:
            key = m.group(1)
            value = names.get(key, key)
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
            statements += [self.create_index(table, ix) for ix in table.indexes if ix.method != "vector"]
        return [s for s in statements if s]

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
