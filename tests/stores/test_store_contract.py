"""The store contract, one suite against both backends."""

from __future__ import annotations

import numpy as np
import pytest

from ragstate.errors import IdentifierError
from ragstate.spec.model import StoreSpec
from ragstate.stores import open_store
from ragstate.stores.dialect import Col
from ragstate.stores.migrations import CURRENT_VERSION, migrate, repair, schema_problems
from ragstate.stores.schema import ColumnType, Index, TableDef, col, ident

VECTORS = TableDef(
    "vectors_g1",
    (
        col("doc_id", ColumnType.TEXT, null=False),
        col("text_hash", ColumnType.TEXT, null=False),
        col("embedding", ColumnType.VECTOR, null=False, dim=3),
        col("meta", ColumnType.JSON),
    ),
    primary_key=("doc_id",),
    indexes=(Index("embedding_hnsw", ("embedding",), method="vector"),),
)


@pytest.fixture
def store(store_spec):
    s = open_store(StoreSpec(**store_spec))
    migrate(s)
    yield s
    s.close()


def test_migrations_are_versioned_and_idempotent(store) -> None:
    assert migrate(store) == []
    with store.session() as s:
        assert s.scalar("SELECT max(version) FROM {schema_versions}") == CURRENT_VERSION
        assert schema_problems(store, s) == []
        s.execute("DROP TABLE {ledger}")
        assert [str(p) for p in schema_problems(store, s)] == ["table ledger is missing"]
    assert repair(store) == ["table ledger is missing"]
    with store.session() as s:
        assert schema_problems(store, s) == []


def test_transactions_commit_or_roll_back_together(store) -> None:
    with store.session() as s:
        with s.transaction():
            s.execute(
                "INSERT INTO {source_files} (path, size, mtime_ns, ctime_ns, inode, observed_at) "
                "VALUES ('a', 1, 1, 1, 1, 0)"
            )
        with pytest.raises(RuntimeError), s.transaction():
            s.execute(
                "INSERT INTO {source_files} (path, size, mtime_ns, ctime_ns, inode, observed_at) "
                "VALUES ('b', 1, 1, 1, 1, 0)"
            )
            raise RuntimeError("abort")
        assert [r[0] for r in s.query("SELECT path FROM {source_files}")] == ["a"]


def test_bulk_copy_vectors_json_and_lists(store) -> None:
    rows = [
        ("a", "h1", store.encode_vector(np.array([1, 0, 0], np.float32)), '{"k": 1}'),
        ("b", "h2", store.encode_vector(np.array([0, 0, 0], np.float32)), None),
        ("c", "h3", store.encode_vector(np.array([0.6, 0.8, 0], np.float32)), None),
        ("d", "h4", store.encode_vector(np.array([0, 3, 4], np.float32)), None),
    ]
    with store.transaction() as s:
        store.ensure_table(s, VECTORS)
        assert s.copy_rows(VECTORS, rows) == 4
    with store.session() as s:
        assert store.table_problems(s, VECTORS, vector_indexes=False) == []
        store.vector_index(s, VECTORS)
        assert store.table_problems(s, VECTORS) == []
        assert s.query(
            "SELECT doc_id FROM {t} WHERE doc_id = ANY(?) ORDER BY doc_id", (["c", "a", "zz"],), t="vectors_g1"
        ) == [("a",), ("c",)]
        assert store.decode_json(s.scalar("SELECT meta FROM {t} WHERE doc_id = 'a'", t="vectors_g1")) == {"k": 1}
        assert sorted(store.vector_quality(s, "vectors_g1", "embedding", 3, True)) == [
            ("b", "zero norm"),
            ("d", "norm 5.0000 (expected 1)"),
        ]
        assert store.vector_quality(s, "vectors_g1", "embedding", 3, False) == [("b", "zero norm")]
        nearest = store.nearest(s, "vectors_g1", "embedding", np.array([1, 0.1, 0], np.float32), 2)
        assert [d for d, _ in nearest] == ["a", "c"] and nearest[0][1] < nearest[1][1]
        v = store.decode_vector(s.scalar("SELECT {c} FROM {t} WHERE doc_id = 'c'", c=Col("embedding"), t="vectors_g1"))
        assert np.allclose(v, [0.6, 0.8, 0])


def test_schema_problems_name_what_differs(store, backend: str) -> None:
    with store.transaction() as s:
        store.ensure_table(s, VECTORS)
        wider = TableDef(
            "vectors_g1",
            VECTORS.columns[:2] + (col("embedding", ColumnType.VECTOR, dim=5), col("extra", ColumnType.INT)),
            ("doc_id",),
        )
        problems = {p.what: str(p) for p in store.table_problems(s, wider)}
    assert problems["missing_column"] == "column vectors_g1.extra is missing"
    if backend == "postgres":
        assert problems["wrong_type"] == "column vectors_g1.embedding is vector(3), expected vector(5)"
    else:  # SQLite stores vectors as blobs: dimensions are checked row by row (vector_quality)
        assert "wrong_type" not in problems


@pytest.mark.parametrize("name", ["x; DROP TABLE y", "A", "1abc", "a" * 49, "ta-ble", "", "a\u00e9"])
def test_identifiers_are_validated(name: str) -> None:
    with pytest.raises(IdentifierError):
        ident(name)


def test_values_are_bound_never_formatted(store) -> None:
    hostile = "x'); DROP TABLE rs_ledger; --"
    with store.transaction() as s:
        s.execute(
            "INSERT INTO {source_files} (path, size, mtime_ns, ctime_ns, inode, observed_at) VALUES (?, 1, 1, 1, 1, 0)",
            (hostile,),
        )
    with store.session() as s:
        assert s.scalar("SELECT path FROM {source_files}") == hostile
        assert schema_problems(store, s) == []
