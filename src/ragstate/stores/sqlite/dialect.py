"""SQLite's spelling: prefixed table names, affinity types, no vector index."""

from __future__ import annotations

import json
import re
from typing import Any

from ragstate.stores.dialect import Dialect
from ragstate.stores.schema import Column, ColumnType, Index, TableDef, ident

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

    def binary_values_sql(self) -> str | None:
        return "SELECT count(*) FROM {src} WHERE typeof({col}) = 'blob' AND /*filter*/"
