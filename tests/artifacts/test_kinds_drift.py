"""Every drift class of every kind that issue 3 adds, created on purpose, then healed.

Both backends, the real model, every pipeline enabled, over the short corpus (six real
articles cut to their first paragraphs); the store is built once per backend and copied
for each test (``built`` in conftest).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import edit
from helpers import count, execute, kind_tables, query
from ragstate.artifacts.token_embeddings import encode_matrix
from ragstate.stores.dialect import Col

N = 6  # documents in the short corpus
NEW_KINDS = ("chunks", "chunk_embeddings", "token_embeddings", "entities", "entity_embeddings", "fulltext")
ALL_KINDS = ("doc_embeddings",) + NEW_KINDS
DOWNSTREAM_OF_CHUNKS = ("chunk_embeddings", "token_embeddings", "entities", "entity_embeddings")

pytestmark = pytest.mark.slow


def embedded(record, kind: str) -> int:
    k = record.kinds.get(kind)
    return k.embedded if k else 0


def test_every_kind_is_built_consistently(built) -> None:
    make, _ = built
    project = make()
    assert project.plan().in_sync
    report = project.verify()
    assert report.in_sync, report.drift
    assert any("every chunk has its token matrix" in i for i in report.checked["invariants"])
    leaves = count_leaves(project)
    assert count(project, "chunk_embeddings") == count(project, "token_embeddings") == leaves > N
    # Offsets point into the document: each chunk's text is exactly its span.
    for text, start, end in query(project, "chunks", "SELECT text, start_char, end_char FROM {t} WHERE level = 1"):
        assert len(text) == end - start
    # Token matrices: float16, one row per token, as many tokens as the model produced.
    n, dim, blob = query(project, "token_embeddings", "SELECT n_tokens, dim, matrix FROM {t}")[0]
    assert dim == 384 and len(bytes(blob)) == 2 * n * dim and n > 2
    # Every entity cites an existing chunk; relations carry a type and a weight.
    assert count(project, "entities") > 0 and count(project, "entities", table=1) > 0
    types = {r[0] for r in query(project, "entities", "SELECT DISTINCT type FROM {t}", table=1)}
    assert "co_occurs" in types
    assert count(project, "entity_embeddings") == int(
        query(project, "entities", "SELECT count(*) FROM (SELECT DISTINCT doc_id, entity_id FROM {t}) x")[0][0]
    )
    # The full-text index answers queries on both backends.
    table = project.desired().kind("fulltext").kind.tables(project.desired().kind("fulltext").recipe, 1)[0]
    with project.store.session() as s:
        hits = project.store.fulltext_search(s, table, "tension fluctuation polyester", 5)
    assert hits and hits[0][0] == "tension.md"


def count_leaves(project) -> int:
    return int(query(project, "chunks", "SELECT count(*) FROM {t} WHERE level = 1")[0][0])


# --- missing, stale, orphaned: document level, every kind at once ----------------------


def test_added_edited_deleted_documents(built) -> None:
    make, corpus = built
    project = make()
    (corpus / "new.txt").write_text("Kiwifruit germination\n\nSeeds of Actinidia chinensis sprout faster when warm.\n")
    edit(corpus / "seeds.md", new="\nA closing paragraph on Dormancy Release (DR) in Actinidia seeds.\n")
    (corpus / "acai.txt").unlink()
    plan = project.plan()
    # The edit is to the body, which the document embedding's text (title and abstract)
    # leaves out: what the model reads did not change, so it is restamped, not drift.
    expected = {k: {"missing": 1, "stale": 1, "orphaned": 1} for k in ALL_KINDS}
    expected["doc_embeddings"] = {"missing": 1, "orphaned": 1}
    assert plan.drift == expected
    assert plan.kind("doc_embeddings").build["past_window"] == ("seeds.md",)
    record = project.apply()
    assert record.converged
    for kind in ALL_KINDS:
        counts = record.kinds[kind]
        assert (counts.built, counts.deleted) == (2, 1), kind
    # Rows of the deleted document are gone from every table, relations included.
    for kind in NEW_KINDS:
        for i in range(len(kind_tables(project, kind))):
            assert not query(project, kind, "SELECT 1 FROM {t} WHERE doc_id = 'acai.txt'", table=i), kind
    # Only the changed chunks of the edited document were embedded again.
    assert embedded(record, "chunk_embeddings") == embedded(record, "token_embeddings")
    assert record.kinds["chunk_embeddings"].reused > 0
    assert project.verify().in_sync


def test_missing_fulltext_row(built) -> None:
    make, _ = built
    project = make()
    execute(project, "fulltext", "DELETE FROM {t} WHERE doc_id = 'seeds.md'")
    assert project.plan().drift == {"fulltext": {"missing": 1}}
    record = project.apply()
    assert record.kinds["fulltext"].built == 1 and set(record.kinds) == {"fulltext"}
    assert project.verify().in_sync


@pytest.mark.parametrize("kind", ["chunks", "fulltext", "token_embeddings", "entities"])
def test_row_stamped_with_another_source_hash_is_stale(built, kind: str) -> None:
    make, _ = built
    project = make()
    execute(project, kind, "UPDATE {t} SET source_hash = 'tampered' WHERE doc_id = 'seeds.md'")
    plan = project.plan()
    downstream = {"chunks": DOWNSTREAM_OF_CHUNKS, "entities": ("entity_embeddings",)}.get(kind, ())
    assert plan.drift == {k: {"stale": 1} for k in (kind, *downstream)}
    record = project.apply()
    # Nothing changed in the text: dependent kinds keep every stored vector.
    assert all(embedded(record, k) == 0 for k in NEW_KINDS)
    assert project.verify().in_sync


def test_orphaned_rows_of_documents_out_of_scope_are_purged(built) -> None:
    make, _ = built
    project = make()
    # Rows with no ledger row, for a document the source does not hold: relations,
    # token matrices and entity vectors left behind by something else.
    execute(
        project,
        "entities",
        "INSERT INTO {t} (doc_id, source_hash, recipe_fp, run_id, created_at, chunk_id, source_id, target_id, "
        "type, weight) SELECT 'ghost', source_hash, recipe_fp, run_id, created_at, chunk_id, source_id, target_id, "
        "type, weight FROM {t} WHERE doc_id = 'tension.md'",
        table=1,
    )
    for kind in ("token_embeddings", "entity_embeddings"):
        execute(project, kind, "UPDATE {t} SET doc_id = 'ghost2' WHERE doc_id = 'tension.md'")
    plan = project.plan()
    assert plan.drift["entities"] == {"orphaned": 1}
    assert plan.kind("entities").purge == ("ghost",)
    for kind in ("token_embeddings", "entity_embeddings"):
        assert plan.drift[kind] == {"orphaned": 1, "incomplete": 1}
    record = project.apply()
    assert record.kinds["entities"].purged == 1
    assert not query(project, "entities", "SELECT 1 FROM {t} WHERE doc_id = 'ghost'", table=1)
    assert project.verify().in_sync


def test_large_share_of_orphans_is_destructive(built) -> None:
    make, _ = built
    make().apply()
    project = make(scope={"first": 2})
    plan = project.plan()
    assert plan.destructive
    assert {k: d["orphaned"] for k, d in plan.drift.items()} == dict.fromkeys(ALL_KINDS, N - 2)


# --- recipe --------------------------------------------------------------------------


def test_chunking_recipe_change_is_recipe_drift_downstream_only(built) -> None:
    make, _ = built
    project = make(artifacts={"chunks": {"min_tokens": 16}})
    plan = project.plan()
    assert plan.drift == {k: {"recipe": N} for k in ("chunks", *DOWNSTREAM_OF_CHUNKS)}
    assert all(plan.kind(k).target_generation is None for k in ("chunks", *DOWNSTREAM_OF_CHUNKS))
    record = project.apply()
    assert record.converged
    assert all(record.kinds[k].switched for k in ("chunks", *DOWNSTREAM_OF_CHUNKS))
    assert "doc_embeddings" not in record.kinds and "fulltext" not in record.kinds
    assert project.verify().in_sync


def test_entity_model_change_is_recipe_drift_of_entity_embeddings_only(built) -> None:
    make, _ = built
    project = make(
        models={"default": {}, "other": {"normalize": False}},
        artifacts={"entity_embeddings": {"model": "other"}},
    )
    assert project.plan().drift == {"entity_embeddings": {"recipe": N}}


def test_fulltext_language_change_builds_a_new_generation(built) -> None:
    make, _ = built
    project = make(artifacts={"fulltext": {"language": "simple"}})
    assert project.plan().drift == {"fulltext": {"recipe": N}}
    record = project.apply()
    assert record.kinds["fulltext"].switched and record.kinds["fulltext"].generation == 2
    assert project.verify().in_sync
    table = project.desired().kind("fulltext").kind.tables(project.desired().kind("fulltext").recipe, 2)[0]
    with project.store.session() as s:
        assert project.store.fulltext_search(s, table, "polyester fibers", 3)


# --- corrupt -------------------------------------------------------------------------


def test_corrupt_items_of_every_kind_are_found_and_rebuilt(built, backend: str) -> None:
    make, _ = built
    project = make()
    store = project.store
    chunk = query(project, "chunk_embeddings", "SELECT chunk_id FROM {t} WHERE doc_id = 'seeds.md'")[0][0]
    execute(
        project,
        "chunk_embeddings",
        "UPDATE {t} SET embedding = ? WHERE chunk_id = ?",
        (store.encode_vector(np.zeros(384, dtype=np.float32)), chunk),
    )
    nan = np.ones((3, 384), dtype=np.float32)
    nan[1, 5] = np.nan
    execute(
        project,
        "token_embeddings",
        "UPDATE {t} SET n_tokens = 3, matrix = ? WHERE doc_id = 'acai.txt' AND chunk_id = "
        "(SELECT min(chunk_id) FROM {t} WHERE doc_id = 'acai.txt')",
        (encode_matrix(nan),),
    )
    execute(
        project,
        "entity_embeddings",
        "UPDATE {t} SET embedding = ? WHERE doc_id = 'PMC12431569' AND entity_id = "
        "(SELECT min(entity_id) FROM {t} WHERE doc_id = 'PMC12431569')",
        (store.encode_vector(np.full(384, 0.5, dtype=np.float32)),),
    )
    execute(project, "fulltext", "UPDATE {t} SET content = content || ' tampered' WHERE doc_id = 'PMC12431823'")
    execute(project, "chunks", "UPDATE {t} SET end_char = 9999999 WHERE doc_id = 'tension.md' AND level = 0")

    report = project.verify()
    assert report.drift == {
        "chunks": {"corrupt": 1},
        "chunk_embeddings": {"corrupt": 1, "stale": 1},
        "token_embeddings": {"corrupt": 1, "stale": 1},
        "entities": {"stale": 1},
        "entity_embeddings": {"corrupt": 1, "stale": 1},
        "fulltext": {"corrupt": 1},
    }
    reasons = {k: [r for _, r in v] for k, v in report.corrupt.items()}
    assert reasons["chunk_embeddings"] == ["zero norm"]
    assert reasons["token_embeddings"][0].endswith("non-finite")
    assert "offsets" in reasons["chunks"][0] and "hash" in reasons["fulltext"][0]

    record = project.apply(depth="deep")
    assert record.converged
    # The corrupt documents are embedded afresh; the chunks' document only re-derived.
    assert embedded(record, "chunk_embeddings") == len(leaves_of(project, "seeds.md"))
    assert embedded(record, "token_embeddings") == len(leaves_of(project, "acai.txt"))
    assert project.verify().in_sync


def leaves_of(project, doc_id: str) -> list[str]:
    return [
        r[0] for r in query(project, "chunks", "SELECT chunk_id FROM {t} WHERE level = 1 AND doc_id = ?", (doc_id,))
    ]


# --- mock ----------------------------------------------------------------------------


def test_placeholder_vectors_and_matrices_are_mock(built) -> None:
    make, _ = built
    project = make(reconcile={"sample_recheck": 1000})
    a, b = leaves_of(project, "tension.md")[:2]
    execute(
        project,
        "chunk_embeddings",
        "UPDATE {t} SET embedding = (SELECT embedding FROM {t} WHERE chunk_id = ?) WHERE chunk_id = ?",
        (a, b),
    )
    c, d = leaves_of(project, "acai.txt")[:2]
    execute(
        project,
        "token_embeddings",
        "UPDATE {t} SET n_tokens = (SELECT n_tokens FROM {t} WHERE chunk_id = ?), "
        "matrix = (SELECT matrix FROM {t} WHERE chunk_id = ?) WHERE chunk_id = ?",
        (c, c, d),
    )
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(384).astype(np.float32)
    execute(
        project,
        "entity_embeddings",
        "UPDATE {t} SET embedding = ? WHERE doc_id = 'seeds.md' AND entity_id = "
        "(SELECT min(entity_id) FROM {t} WHERE doc_id = 'seeds.md')",
        (project.store.encode_vector(noise / np.linalg.norm(noise)),),
    )
    report = project.verify()
    assert report.drift == {
        "chunk_embeddings": {"mock": 1},
        "token_embeddings": {"mock": 1},
        "entity_embeddings": {"mock": 1},
    }
    assert report.documents["token_embeddings"]["mock"] == ["acai.txt"]
    record = project.apply(depth="deep")
    assert embedded(record, "chunk_embeddings") == len(leaves_of(project, "tension.md"))
    assert project.verify().in_sync


# --- incomplete ------------------------------------------------------------------------


def test_missing_items_make_a_document_incomplete(built) -> None:
    make, _ = built
    project = make()
    execute(project, "chunk_embeddings", "DELETE FROM {t} WHERE chunk_id = ?", (leaves_of(project, "tension.md")[0],))
    execute(project, "token_embeddings", "DELETE FROM {t} WHERE chunk_id = ?", (leaves_of(project, "acai.txt")[1],))
    execute(
        project,
        "entity_embeddings",
        "DELETE FROM {t} WHERE doc_id = 'seeds.md' AND entity_id = "
        "(SELECT min(entity_id) FROM {t} WHERE doc_id = 'seeds.md')",
    )
    execute(
        project,
        "entities",
        "DELETE FROM {t} WHERE doc_id = 'PMC12431569' AND source_id = "
        "(SELECT min(source_id) FROM {t} WHERE doc_id = 'PMC12431569')",
        table=1,
    )
    plan = project.plan()
    assert plan.drift == {
        "chunk_embeddings": {"incomplete": 1},
        "token_embeddings": {"incomplete": 1},
        "entities": {"incomplete": 1},
        "entity_embeddings": {"incomplete": 1, "stale": 1},
    }
    record = project.apply()
    # Exactly the missing items are rebuilt, from the embedding cache (their texts were
    # embedded before); every other one is kept.
    assert all(embedded(record, k) == 0 for k in ("chunk_embeddings", "token_embeddings", "entity_embeddings"))
    assert [record.kinds[k].cache_hits for k in ("chunk_embeddings", "token_embeddings", "entity_embeddings")] == [
        1,
        1,
        1,
    ]
    assert project.verify().in_sync


def test_child_chunk_whose_parent_is_gone(built) -> None:
    make, _ = built
    project = make()
    execute(
        project,
        "chunks",
        "DELETE FROM {t} WHERE doc_id = 'tension.md' AND level = 0 AND seq = "
        "(SELECT max(seq) FROM {t} WHERE doc_id = 'tension.md' AND level = 0)",
    )
    plan = project.plan()
    assert plan.drift == {"chunks": {"incomplete": 1}} | {k: {"stale": 1} for k in DOWNSTREAM_OF_CHUNKS}
    record = project.apply()
    assert all(embedded(record, k) == 0 for k in DOWNSTREAM_OF_CHUNKS)
    assert project.verify().in_sync


def test_items_that_reference_changed_chunks_are_found_by_the_cross_check(built) -> None:
    make, _ = built
    project = make()
    # Same number of rows, so only the cross-artifact check can tell: a matrix filed
    # under a chunk id that does not exist, and an entity citing a chunk that is gone.
    first, second = leaves_of(project, "seeds.md")[:2]
    execute(project, "token_embeddings", "UPDATE {t} SET chunk_id = 'nowhere' WHERE chunk_id = ?", (first,))
    execute(project, "entities", "UPDATE {t} SET chunk_id = 'gone' WHERE chunk_id = ?", (second,))
    plan = project.plan()
    assert plan.drift == {
        "token_embeddings": {"incomplete": 1},
        "entities": {"incomplete": 1},
        "entity_embeddings": {"stale": 1},
    }
    record = project.apply()
    assert embedded(record, "token_embeddings") == 0 and record.kinds["token_embeddings"].cache_hits == 1
    assert embedded(record, "entity_embeddings") == 0
    assert project.verify().in_sync


# --- schema --------------------------------------------------------------------------


def test_dropped_relations_table_is_repaired(built) -> None:
    make, _ = built
    project = make()
    relations = kind_tables(project, "entities")[1]
    with project.store.transaction() as s:
        s.execute("DROP TABLE {t}", t=relations)
    plan = project.plan()
    assert plan.drift["entities"] == {"schema": 1, "incomplete": N}
    assert plan.drift["entity_embeddings"] == {"stale": N}
    record = project.apply()
    assert record.converged and embedded(record, "entity_embeddings") == 0
    assert count(project, "entities", table=1) > 0
    assert project.verify().in_sync


def test_dropped_fulltext_index_is_repaired(built, backend: str) -> None:
    make, _ = built
    project = make()
    table = kind_tables(project, "fulltext")[0]
    with project.store.transaction() as s:
        if backend == "postgres":
            s.execute("DROP INDEX {s}.{i}", s=Col("rs"), i=Col(f"{table}_content_fts"))
        else:
            s.execute("DROP TABLE {t}", t=f"{table}_content_fts")
    assert project.plan().drift == {"fulltext": {"schema": 1}}
    assert project.apply().converged
    assert project.plan().in_sync
    desired = project.desired().kind("fulltext")
    with project.store.session() as s:
        hits = project.store.fulltext_search(s, desired.kind.tables(desired.recipe, 1)[0], "spinning tension", 3)
    assert hits and hits[0][0] == "tension.md"


@pytest.mark.parametrize("backend", ["sqlite"])  # a PostgreSQL expression index cannot fall out of step
def test_fulltext_index_out_of_step_is_rebuilt(built, backend: str) -> None:
    make, _ = built
    project = make()
    table = kind_tables(project, "fulltext")[0]
    with project.store.transaction() as s:
        s.execute("DROP TRIGGER {x}", x=Col(f"rs_{table}_content_fts_ad"))
        s.execute("DELETE FROM {t} WHERE doc_id = 'seeds.md'", t=table)
    plan = project.plan()
    assert plan.drift == {"fulltext": {"missing": 1, "schema": 1}}
    assert project.apply().converged
    assert project.verify().in_sync
