"""The store contract, one suite against both backends."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from helpers import HASH_MODELS, artifact_ids, core_only, set_vector
from ragstate.errors import IdentifierError, MissingCapability
from ragstate.identifiers import ident
from ragstate.spec.model import StoreSpec
from ragstate.stores import open_store
from ragstate.stores.base import CAPABILITIES, FullTextSearch, InPlaceTables, ProcessLocks, VectorSearch
from ragstate.stores.dialect import Col
from ragstate.stores.migrations import CURRENT_VERSION, migrate, repair, schema_problems
from ragstate.stores.schema import ColumnType, Index, TableDef, col

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


ITEMS = TableDef(
    "items_g1",
    (
        col("doc_id", ColumnType.TEXT, null=False),
        col("chunk_id", ColumnType.TEXT, null=False),
        col("embedding", ColumnType.VECTOR, null=False, dim=3),
    ),
    primary_key=("doc_id", "chunk_id"),
    indexes=(Index("embedding_hnsw", ("embedding",), method="vector"),),
)
TEXTS = TableDef(
    "texts_g1",
    (col("doc_id", ColumnType.TEXT, null=False), col("content", ColumnType.TEXT, null=False)),
    primary_key=("doc_id",),
    indexes=(Index("content_fts", ("content",), method="fulltext", language="english"),),
)


def test_nearest_items_name_their_document_and_item(store) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((60, 3)).astype(np.float32)
    rows = [(f"d{i // 3}", f"c{i}", store.encode_vector(v)) for i, v in enumerate(vectors)]
    with store.transaction() as s:
        store.ensure_table(s, ITEMS)
        s.copy_rows(ITEMS, rows)
        store.vector_index(s, ITEMS)
    query = np.array([1, 0.2, -0.1], np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = np.argsort(1 - unit @ (query / np.linalg.norm(query)))
    with store.session() as s:
        found = store.nearest_items(s, "items_g1", "embedding", query, 50, key="chunk_id")
    # More neighbours than pgvector's default HNSW search list (40), in cosine order.
    assert [c for _, c, _ in found] == [f"c{i}" for i in expected[:50]]
    assert all(d == f"d{int(c[1:]) // 3}" for d, c, _ in found)
    assert [d for _, _, d in found] == sorted(d for _, _, d in found)


def test_fulltext_search_every_word_or_any_word(store) -> None:
    rows = [
        ("a", "Spinning tension of polyester fibers"),
        ("b", "Seeds germinate when the climate warms"),
        ("c", "Tension in fibers; warm seeds"),
    ]
    with store.transaction() as s:
        store.ensure_table(s, TEXTS)
        s.copy_rows(TEXTS, rows)
    with store.session() as s:
        every = store.fulltext_search(s, TEXTS, "tension seeds", 10)
        some = store.fulltext_search(s, TEXTS, "tension seeds", 10, any_word=True)
        hostile = store.fulltext_search(s, TEXTS, 'seeds\' OR "x" | !(& NEAR', 10, any_word=True)
    assert [d for d, _ in every] == ["c"]
    assert sorted(d for d, _ in some) == ["a", "b", "c"] and some[0][0] == "c"  # both words rank first
    assert sorted(d for d, _ in hostile) == ["b", "c"]  # query syntax in user text is only text


def test_a_vector_of_huge_values_is_judged_without_a_numpy_warning(make_project) -> None:
    """Issue 15, item 9: a finite float32 vector of 1e30s overflowed when squared, and numpy's
    RuntimeWarning ended up in verify's output."""
    project = make_project(models=HASH_MODELS)
    project.apply()
    doc_id = artifact_ids(project)[0]
    set_vector(project, doc_id, project.store.encode_vector(np.full(32, 1e30, dtype=np.float32)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = project.verify()
    ((found, reason),) = report.corrupt["doc_embeddings"]
    assert found == doc_id and reason.startswith("norm 565685") and reason.endswith("(expected 1)")  # √32·1e30


def test_each_backend_declares_every_capability(store) -> None:
    assert store.capabilities() == {c.__name__: True for c in CAPABILITIES}
    for capability in (VectorSearch, FullTextSearch, ProcessLocks, InPlaceTables):
        assert store.capability(capability) is store


def test_a_missing_capability_names_the_backend_and_the_capability(store) -> None:
    core = core_only(store)
    assert core.capabilities() == {c.__name__: False for c in CAPABILITIES}
    with core.session() as s:  # the core still works
        assert s.scalar("SELECT count(*) FROM {ledger}") == 0
    with pytest.raises(MissingCapability) as raised:
        core.capability(FullTextSearch)
    assert raised.value.backend == core.description and raised.value.capability == "FullTextSearch"
    assert str(raised.value) == (
        f"{core.description}: this backend does not implement FullTextSearch "
        "(rows matching words through a full-text index)"
    )
