"""SQLite's spelling: prefixed table names, affinity types, no vector index, FTS5 for full text."""

from __future__ import annotations

import json
import re
from typing import Any

from ragstate.identifiers import ident
from ragstate.stores.dialect import Dialect
from ragstate.stores.schema import Column, ColumnType, Index, TableDef, fulltext_table

_ANY = re.compile(r"=\s*ANY\(\?\)")

_TYPES = {
    ColumnType.TEXT: "TEXT",
    ColumnType.INT: "INTEGER",
    ColumnType.BIGINT: "INTEGER",
    ColumnType.FLOAT: "REAL",
    ColumnType.BOOL: "INTEGER",
    ColumnType.BLOB: "BLOB",
    ColumnType.JSON: "TEXT",
    # float32 little-endian, the layout sqlite-vec's functions read
    ColumnType.VECTOR: "BLOB",
}


class SQLiteDialect(Dialect):
    name = "sqlite"
    fold_case = True  # SQLite matches column and table names case-insensitively

    def __init__(self, prefix: str):
        self.prefix = ident(prefix, what="table prefix") if prefix else ""

    def table(self, name: str) -> str:
        return self.quote(self.prefix + ident(name, what="table name"))

    def temp_table(self, name: str) -> str:
        return "temp." + self.quote("rs_tmp_" + ident(name))

    def _stored_index(self, relation: str, what: str) -> str:
        # Index names are per database file in SQLite: two prefixed stores share them.
        return self.prefix + super()._stored_index(relation, what)

    def any_list(self, sql: str) -> str:
        # A list travels as one JSON array parameter, unpacked by SQLite's json_each.
        return _ANY.sub(r"IN (SELECT value FROM json_each(?))", sql)

    def list_param(self, values: list[Any]) -> Any:
        return json.dumps(values)

    def transaction_statements(self, depth: int) -> tuple[str, str, str]:
        """(begin, commit, rollback) for a transaction nested ``depth`` levels deep.

        The outermost level takes the write lock at once (BEGIN IMMEDIATE), so two
        writers queue on the busy timeout instead of deadlocking on a lock upgrade;
        inner levels are savepoints.
        """
        if depth == 0:
            return "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"
        name = f"rs_sp{int(depth)}"
        return f"SAVEPOINT {name}", f"RELEASE {name}", f"ROLLBACK TO {name}; RELEASE {name}"

    def column_type(self, column: Column) -> str:
        return _TYPES[column.type]

    def index_name(self, table: TableDef, index: Index) -> str:
        if index.method == "vector":
            return ""
        return f"{self.prefix}{table.name}_{index.name}"

    def index_statements(self, table: TableDef, index: Index) -> list[str]:
        if index.method != "fulltext":
            return [self.create_index(table, index)]
        # An external-content FTS5 table over the artifact table's rows, kept in step by
        # triggers, so the engine writes and deletes plain rows as for any other kind.
        # 'rebuild' fills it from rows already present (a repair after it was dropped).
        fts = self.table(fulltext_table(table, index))
        content = self.table(table.name)
        cols = ", ".join(self.quote(c) for c in index.columns)
        new = ", ".join("new." + self.quote(c) for c in index.columns)
        old = ", ".join("old." + self.quote(c) for c in index.columns)
        tokenize = "porter unicode61" if index.language == "english" else "unicode61"
        physical = self.prefix + table.name
        delete = f"INSERT INTO {fts} ({fts}, rowid, {cols}) VALUES ('delete', old.rowid, {old});"
        insert = f"INSERT INTO {fts} (rowid, {cols}) VALUES (new.rowid, {new});"
        trigger = self.fulltext_trigger
        return [
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5({cols}, content='{physical}', "
            f"content_rowid='rowid', tokenize='{tokenize}')",
            f"CREATE TRIGGER IF NOT EXISTS {trigger(table, index, 'ai')} AFTER INSERT ON {content} BEGIN {insert} END",
            f"CREATE TRIGGER IF NOT EXISTS {trigger(table, index, 'ad')} AFTER DELETE ON {content} BEGIN {delete} END",
            f"CREATE TRIGGER IF NOT EXISTS {trigger(table, index, 'au')} AFTER UPDATE ON {content} "
            f"BEGIN {delete} {insert} END",
            f"INSERT INTO {fts} ({fts}) VALUES ('rebuild')",
        ]

    def drop_table(self, table: TableDef) -> list[str]:
        # The FTS5 table of a fulltext index is a table of its own; the triggers that
        # keep it in step go with the content table.
        fts = [ix for ix in table.indexes if ix.method == "fulltext"]
        return [f"DROP TABLE IF EXISTS {self.table(fulltext_table(table, ix))}" for ix in fts] + super().drop_table(
            table
        )

    def fulltext_trigger(self, table: TableDef, index: Index, event: str) -> str:
        return self.quote(f"{self.prefix}{fulltext_table(table, index)}_{event}")

    def fulltext_query(self, table: TableDef, index: Index) -> str:
        """Template: ``(doc_id, score)`` of rows matching an FTS5 query (``?``), best first, ``LIMIT ?``."""
        fts = self.table(fulltext_table(table, index))
        return (
            f"SELECT c.doc_id, bm25({fts}) AS score FROM {fts} JOIN {self.table(table.name)} c "
            f"ON c.rowid = {fts}.rowid WHERE {fts} MATCH ? ORDER BY score LIMIT ?"
        )

    def create_index(self, table: TableDef, index: Index) -> str:
        if index.method == "vector":
            return ""  # sqlite-vec searches exhaustively; there is no ANN index to keep
        cols = ", ".join(self.quote(c) for c in index.columns)
        unique = "UNIQUE " if index.unique else ""
        return (
            f"CREATE {unique}INDEX IF NOT EXISTS {self.quote(self.index_name(table, index))} "
            f"ON {self.table(table.name)} ({cols})"
        )

    # --- in-place sources -------------------------------------------------------------

    def content_hash_sql(self, title: str, abstract: str, body: str) -> str:
        # rs_content_hash is ragstate.hashing.content_hash, registered on every connection
        # the store opens: the same normalised BLAKE2b as files get.
        return f"rs_content_hash({title}, {abstract}, {body})"

    def text_conversion(self, sql_type: str) -> str:
        # SQLite's affinity rules (https://sqlite.org/datatype3.html#determination_of_column_affinity);
        # a column without a declared type may hold anything, so binary values are
        # also counted row by row (binary_values_sql).
        t = sql_type.upper()
        if "INT" in t:
            return "convert"
        if "CHAR" in t or "CLOB" in t or "TEXT" in t:
            return "direct"
        if "BLOB" in t:
            return "binary"
        return "convert"

    def is_integer_type(self, sql_type: str) -> bool:
        return "INT" in sql_type.upper()

    def quick_check(self, table: str) -> str:
        """``PRAGMA quick_check`` of one table (``table``: a name as the catalog holds it)."""
        return f"PRAGMA quick_check({self.quote(table)})"

    def null_safe_equal(self, a: str, b: str) -> str:
        return f"{a} IS {b}"

    def binary_values_sql(self) -> str | None:
        return "SELECT count(*) FROM {src} WHERE typeof({col}) = 'blob' AND /*filter*/"
