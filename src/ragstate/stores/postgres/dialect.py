"""PostgreSQL's spelling: schema-qualified names, pgvector types, HNSW indexes, tsvector GIN indexes."""

from __future__ import annotations

from ragstate.identifiers import ident
from ragstate.stores.dialect import Dialect
from ragstate.stores.schema import Column, ColumnType, Index, TableDef

_TYPES = {
    ColumnType.TEXT: "TEXT",
    ColumnType.INT: "INTEGER",
    ColumnType.BIGINT: "BIGINT",
    ColumnType.FLOAT: "DOUBLE PRECISION",
    ColumnType.BOOL: "BOOLEAN",
    ColumnType.BLOB: "BYTEA",
    ColumnType.JSON: "JSONB",
}


class PostgresDialect(Dialect):
    name = "postgresql"

    analyze_temp_tables = True

    def __init__(self, schema: str):
        self.schema = ident(schema, what="schema name")

    def table(self, name: str) -> str:
        return f"{self.quote(self.schema)}.{self.quote(ident(name, what='table name'))}"

    def temp_table(self, name: str) -> str:
        return self.quote("rs_tmp_" + ident(name))

    def paramstyle(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def column_type(self, column: Column) -> str:
        if column.type is ColumnType.VECTOR:
            return f"vector({column.dimension})"
        return _TYPES[column.type]

    def create_index(self, table: TableDef, index: Index) -> str:
        name = self.quote(self.index_name(table, index))
        if index.method == "vector":
            (column,) = index.columns
            return (
                f"CREATE INDEX IF NOT EXISTS {name} ON {self.table(table.name)} "
                f"USING hnsw ({self.quote(column)} vector_cosine_ops)"
            )
        if index.method == "fulltext":
            return f"CREATE INDEX IF NOT EXISTS {name} ON {self.table(table.name)} USING gin ({self.tsvector(index)})"
        cols = ", ".join(self.quote(c) for c in index.columns)
        unique = "UNIQUE " if index.unique else ""
        return f"CREATE {unique}INDEX IF NOT EXISTS {name} ON {self.table(table.name)} ({cols})"

    def tsvector(self, index: Index) -> str:
        """The indexed ``tsvector`` expression; queries spell it identically to use the index."""
        text = " || ' ' || ".join(f"coalesce({self.quote(c)}, '')" for c in index.columns)
        return f"to_tsvector('{index.language}'::regconfig, {text})"

    def fulltext_query(self, table: TableDef, index: Index, *, any_word: bool = False) -> str:
        """Template: ``(doc_id, score)`` of rows matching a plain-text query (``?``), best first, ``LIMIT ?``.

        ``any_word``: a row matches when it has any of the query's words. ``plainto_tsquery``
        parses the text (so user text is never tsquery syntax) into lexemes joined by ``&``;
        its text form, with each ``&`` turned into ``|``, is the same query with OR.
        """
        query = f"plainto_tsquery('{index.language}'::regconfig, ?)"
        if any_word:
            query = f"replace({query}::text, '&', '|')::tsquery"
        return (
            f"SELECT doc_id, ts_rank({self.tsvector(index)}, {query}) AS score FROM {self.table(table.name)} "
            f"WHERE {self.tsvector(index)} @@ {query} ORDER BY score DESC LIMIT ?"
        )

    def copy_from(self, table_sql: str, columns: tuple[str, ...]) -> str:
        cols = ", ".join(self.quote(c) for c in columns)
        return f"COPY {table_sql} ({cols}) FROM STDIN (FORMAT BINARY)"

    # --- in-place sources -------------------------------------------------------------

    def content_hash_sql(self, title: str, abstract: str, body: str) -> str:
        # hashing.content_hash_md5: the layout normalisation of hashing.normalise_text
        # (CR LF and CR become LF; trailing blanks of each line removed; leading and
        # trailing newlines removed), fields joined by U+001E, then md5 (no BLAKE2b
        # without an extension). Not NFC: normalize() and IS NFC NORMALIZED cost twice
        # the rest together (BENCHMARKS.md); a text re-saved in another normal form is a
        # change here. docs/sources.md; tests compare it with Python.
        def norm(column: str) -> str:
            return (
                f"btrim(regexp_replace(replace(replace({column}, chr(13) || chr(10), chr(10)), "
                f"chr(13), chr(10)), '[ \\t\\f\\v]+$', '', 'gn'), chr(10))"
            )

        return f"md5(concat_ws(chr(30), {norm(title)}, {norm(abstract)}, {norm(body)}))"

    def text_bytes(self, column: str) -> str:
        # a UTF8 database validates text on the way in; convert_to() hands back its bytes all the same
        return f"convert_to({column}, 'UTF8')"

    def text_conversion(self, sql_type: str) -> str:
        t = sql_type.lower()
        if t == "bytea":
            return "binary"
        if t in ("text", "name", "citext") or t.startswith("character"):
            return "direct"
        return "convert"

    stored_modes = ("copy", "materialized")

    def drop_stored(self, copy: str, materialized: str) -> list[str]:
        return [
            *super().drop_stored(copy, materialized),
            f"DROP MATERIALIZED VIEW IF EXISTS {self.table(materialized)}",
        ]

    def refresh_materialized(self, relation: str) -> str:
        return f"REFRESH MATERIALIZED VIEW {self.table(relation)}"

    def is_integer_type(self, sql_type: str) -> bool:
        return sql_type.lower() in ("smallint", "integer", "bigint")
