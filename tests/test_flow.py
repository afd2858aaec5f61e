"""End to end on both backends with the real model: every drift class created, then healed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import edit
from helpers import (
    active_table,
    artifact_ids,
    copy_row,
    delete_rows,
    duplicate_rows,
    ledger_ids,
    orphan_counts,
    set_vector,
    vector,
)
from ragstate.artifacts.doc_embeddings import DocEmbeddings
from ragstate.errors import DestructiveRefused, ModelError, StalePlanError
from ragstate.plan.model import Plan
from ragstate.stores import ledger

N = 18  # documents in the small corpus


def test_walkthrough_edit_delete_add(make_project, corpus: Path) -> None:
    project = make_project()
    first = project.reconcile()
    assert first.converged and first.kinds["doc_embeddings"].built == N
    assert project.plan().in_sync
    assert artifact_ids(project) == ledger_ids(project) and len(artifact_ids(project)) == N

    edit(corpus / "markdown/PMC12429712.md", new="\nA new closing paragraph about seed dormancy.\n")
    (corpus / "text/PMC12429868.txt").unlink()
    (corpus / "text/new.txt").write_text("Kiwifruit germination\n\nSeeds sprout faster when warm.\n")

    plan = project.plan()
    # The edit is to the body, past the embedded text (title and abstract): what the
    # model reads did not change, so it is no drift; the document is restamped.
    assert plan.drift == {"doc_embeddings": {"missing": 1, "orphaned": 1}}
    k = plan.kind("doc_embeddings")
    assert k.build == {"missing": ("text/new.txt",), "past_window": ("markdown/PMC12429712.md",)}
    assert k.delete == ("text/PMC12429868.txt",)
    assert plan.estimate.items == 1 and plan.estimate.tokens > 0 and plan.estimate.seconds > 0
    before = {d: vector(project, d) for d in artifact_ids(project)}

    record = project.apply(plan)
    counts = record.kinds["doc_embeddings"]
    assert record.converged
    # The edit is to the body, past the embedded text (title and abstract): that text
    # comes from the embedding cache; only the new document's is embedded.
    assert (counts.built, counts.embedded, counts.cache_hits, counts.deleted) == (2, 1, 1, 1)
    after = artifact_ids(project)
    assert "text/PMC12429868.txt" not in after and "text/new.txt" in after
    # No other document was re-embedded: same vectors, same run stamp as the first run.
    with project.store.session() as s:
        stamps = dict(s.query("SELECT doc_id, run_id FROM {t}", t=active_table(project)))
    assert {d for d, run in stamps.items() if run == record.run_id} == {"text/new.txt", "markdown/PMC12429712.md"}
    for doc_id in set(before) & set(after) - {"markdown/PMC12429712.md"}:
        assert np.array_equal(before[doc_id], vector(project, doc_id))
    assert project.verify().in_sync

    again = project.apply()
    assert again.converged and again.built == 0 and again.kinds == {}


def test_second_apply_does_zero_work(make_project) -> None:
    project = make_project()
    project.apply()
    record = project.apply()
    assert record.converged and record.built == 0
    with project.store.session() as s:
        runs = s.query("SELECT status FROM {runs} ORDER BY started_at")
    assert [r[0] for r in runs] == ["converged", "converged"]


@pytest.mark.parametrize(
    "change",
    [
        {"artifacts": {"doc_embeddings": {"text": "{title}"}}},
        {"models": {"default": {"normalize": False}}},
        {"models": {"default": {"provider": "hash", "dimension": 384}}},
    ],
    ids=["text", "normalisation", "model"],
)
def test_recipe_change_is_drift_for_every_document(make_project, change) -> None:
    make_project().apply()
    project = make_project(**change)
    plan = project.plan()
    assert plan.drift == {"doc_embeddings": {"recipe": N}}
    k = plan.kind("doc_embeddings")
    assert k.target_generation is None and k.switch and len(k.build["recipe"]) == N


def test_recipe_change_builds_a_new_generation_and_switches(make_project) -> None:
    make_project().apply()
    project = make_project(artifacts={"doc_embeddings": {"text": "{title}"}})
    record = project.apply()
    counts = record.kinds["doc_embeddings"]
    assert record.converged and counts.built == N and counts.created_generation and counts.switched
    with project.store.session() as s:
        gens = {g.generation: g.state for g in ledger.generations(project.store, s, "doc_embeddings")}
    assert gens == {1: "retired", 2: "active"}
    assert project.verify().in_sync


def test_vectors_deleted_out_of_band_are_missing_and_rebuilt_exactly(make_project) -> None:
    project = make_project()
    project.apply()
    lost = artifact_ids(project)[:5]
    before = {d: vector(project, d) for d in lost}
    delete_rows(project, lost)
    plan = project.plan()
    assert plan.drift == {"doc_embeddings": {"missing": 5}}
    assert set(plan.kind("doc_embeddings").build["missing"]) == set(lost)
    record = project.apply()
    # Their texts were embedded before: the embedding cache serves them, bit for bit.
    counts = record.kinds["doc_embeddings"]
    assert (counts.built, counts.embedded, counts.cache_hits) == (5, 0, 5)
    assert all(np.array_equal(before[d], vector(project, d)) for d in lost)
    assert project.verify().in_sync


def test_corrupt_vectors_found_by_verify_and_rebuilt(make_project, backend: str) -> None:
    project = make_project()
    project.apply()
    ids = artifact_ids(project)
    store = project.store
    bad = {ids[0]: "zero norm", ids[1]: "norm"}
    set_vector(project, ids[0], store.encode_vector(np.zeros(384, dtype=np.float32)))
    set_vector(project, ids[1], store.encode_vector(np.full(384, 0.5, dtype=np.float32)))
    if backend == "sqlite":
        # pgvector refuses NaN and wrong dimensions on input; SQLite stores anything.
        nan = np.ones(384, dtype=np.float32)
        nan[7] = np.nan
        set_vector(project, ids[2], store.encode_vector(nan))
        set_vector(project, ids[3], store.encode_vector(np.ones(100, dtype=np.float32) / 10))
        set_vector(project, ids[4], b"\x00\x01\x02")
        bad.update({ids[2]: "non-finite", ids[3]: "dimension 100", ids[4]: "unreadable"})
    assert project.plan().in_sync, "the shallow plan trusts stored vectors; verify must not"
    report = project.verify()
    assert report.drift == {"doc_embeddings": {"corrupt": len(bad)}}
    reasons = dict(report.corrupt["doc_embeddings"])
    for doc_id, reason in bad.items():
        assert reasons[doc_id].startswith(reason)
    record = project.apply()
    assert record.kinds["doc_embeddings"].embedded == len(bad)
    assert project.verify().in_sync


def test_placeholder_vectors_are_mock_drift(make_project) -> None:
    project = make_project(reconcile={"sample_recheck": 100})
    project.apply()
    ids = artifact_ids(project)
    store = project.store
    placeholder = store.encode_vector(vector(project, ids[0]))
    set_vector(project, ids[1], placeholder)  # identical to another document's vector
    set_vector(project, ids[2], placeholder)
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(384).astype(np.float32)
    set_vector(project, ids[3], store.encode_vector(noise / np.linalg.norm(noise)))  # disagrees with the model
    report = project.verify()
    assert report.drift == {"doc_embeddings": {"mock": 4}}
    assert set(report.documents["doc_embeddings"]["mock"]) == set(ids[:4])
    record = project.apply(depth="deep")
    assert record.kinds["doc_embeddings"].embedded == 4
    assert project.verify().in_sync


def test_rows_without_ledger_are_orphaned_and_purged(make_project) -> None:
    project = make_project()
    project.apply()
    copy_row(project, artifact_ids(project)[0], "ghost")
    plan = project.plan()
    assert plan.drift == {"doc_embeddings": {"orphaned": 1}}
    assert plan.kind("doc_embeddings").purge == ("ghost",)
    record = project.apply()
    assert record.kinds["doc_embeddings"].purged == 1
    assert "ghost" not in artifact_ids(project)
    assert project.verify().in_sync


def test_row_stamped_with_another_source_hash_is_stale(make_project) -> None:
    project = make_project()
    project.apply()
    doc = artifact_ids(project)[3]
    with project.store.transaction() as s:
        s.execute("UPDATE {t} SET source_hash = 'tampered' WHERE doc_id = ?", (doc,), t=active_table(project))
    plan = project.plan()
    assert plan.drift == {"doc_embeddings": {"stale": 1}}
    assert project.apply().kinds["doc_embeddings"].built == 1
    assert project.plan().in_sync


def test_dropped_artifact_table_is_schema_drift_and_rebuilt(make_project) -> None:
    project = make_project()
    project.apply()
    table = active_table(project)
    with project.store.transaction() as s:
        s.execute("DROP TABLE {t}", t=table)
    plan = project.plan()
    assert plan.drift["doc_embeddings"]["schema"] == 1
    assert plan.drift["doc_embeddings"]["missing"] == N
    record = project.apply()
    assert record.converged and record.kinds["doc_embeddings"].built == N
    assert project.verify().in_sync


def test_dropped_universal_table_is_repaired(make_project) -> None:
    project = make_project()
    project.apply()
    with project.store.transaction() as s:
        s.execute("DROP TABLE {runs}")
    plan = project.plan()
    assert plan.drift == {"store": {"schema": 1}} and not plan.in_sync
    record = project.apply()
    assert record.converged and record.schema_repaired == ["table runs is missing"]
    assert record.built == 0
    assert project.plan().in_sync


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite has no vector index to lose
def test_vector_index_dropped_is_repaired(make_project, backend: str) -> None:
    project = make_project()
    project.apply()
    table = active_table(project)
    with project.store.transaction() as s:
        s.execute("DROP INDEX {s}.{i}", s=_col(project.store.dialect.schema), i=_col(f"{table}_embedding_hnsw"))
    plan = project.plan()
    assert plan.drift == {"doc_embeddings": {"schema": 1}}
    assert project.apply().converged
    assert project.plan().in_sync


def _col(name: str):
    from ragstate.stores.dialect import Col

    return Col(name)


def test_interrupted_apply_resumes_without_duplicates(make_project, monkeypatch) -> None:
    project = make_project(reconcile={"batch_size": 4})
    real_build = DocEmbeddings.build
    calls = {"n": 0}

    def dies_on_third_batch(self, docs, recipe, ctx):
        calls["n"] += 1
        if calls["n"] == 3:
            # a fatal error stops the run (an unexpected one would only quarantine a document)
            raise ModelError("simulated crash inside a batch")
        return real_build(self, docs, recipe, ctx)

    monkeypatch.setattr(DocEmbeddings, "build", dies_on_third_batch)
    with pytest.raises(ModelError, match="simulated crash"):
        project.apply()
    monkeypatch.setattr(DocEmbeddings, "build", real_build)

    with project.store.session() as s:
        gen = ledger.generations(project.store, s, "doc_embeddings")[0]
        rows = s.scalar("SELECT count(*) FROM {t}", t=gen.table_name)
        ledgered = s.scalar("SELECT count(*) FROM {ledger}")
        status = s.scalar("SELECT status FROM {runs}")
    assert gen.state == "building" and rows == ledgered == 8, "two batches committed, rows and ledger together"
    assert status == "failed"
    plan = project.plan()
    assert plan.drift == {"doc_embeddings": {"missing": N - 8}}

    record = project.apply()
    assert record.converged and record.kinds["doc_embeddings"].built == N - 8
    assert duplicate_rows(project) == 0 and orphan_counts(project) == (0, 0)
    assert len(artifact_ids(project)) == N
    assert project.verify().in_sync


def test_scope_first_n(make_project) -> None:
    project = make_project(scope={"first": 5})
    record = project.apply()
    assert record.kinds["doc_embeddings"].built == 5
    assert artifact_ids(project) == sorted(artifact_ids(project)) and len(artifact_ids(project)) == 5
    assert project.verify().in_sync


def test_large_deletion_is_refused_unless_allowed(make_project) -> None:
    make_project().apply()
    project = make_project(scope={"first": 2})
    plan = project.plan()
    assert plan.destructive and plan.drift == {"doc_embeddings": {"orphaned": N - 2}}
    with pytest.raises(DestructiveRefused) as refused:
        project.apply()
    assert refused.value.exit_code == 3
    assert len(artifact_ids(project)) == N, "nothing was deleted"
    record = project.apply(allow_destructive=True)
    assert record.kinds["doc_embeddings"].deleted == N - 2 and len(artifact_ids(project)) == 2


def test_saved_plan_is_refused_when_the_source_moved_on(make_project, corpus: Path) -> None:
    project = make_project()
    project.apply()
    edit(corpus / "text/PMC12430510.txt", new="\nAddendum.\n")
    saved = Plan.from_json(project.plan().to_json())
    # past the embedded text: a restamp, no drift, but work all the same
    assert saved.drift == {} and saved.kind("doc_embeddings").build == {"past_window": ("text/PMC12430510.txt",)}
    edit(corpus / "text/PMC12429868.txt", new="\nAnother addendum.\n")
    with pytest.raises(StalePlanError):
        project.apply(saved)
    fresh = Plan.from_json(project.plan().to_json())
    assert project.apply(fresh).kinds["doc_embeddings"].built == 2


def test_run_record_is_persisted_with_progress(make_project) -> None:
    project = make_project(reconcile={"batch_size": 5})
    record = project.apply()
    with project.store.session() as s:
        row = s.query("SELECT status, progress, counts, plan FROM {runs} WHERE run_id = ?", (record.run_id,))[0]
    status, progress, counts, plan = (project.store.decode_json(v) if i else v for i, v in enumerate(row))
    assert status == "converged"
    assert progress["done"] == progress["total"] == N
    assert counts["kinds"]["doc_embeddings"]["batches"] == 4
    assert plan["drift"] == {"doc_embeddings": {"missing": N}}
    json.dumps(record.to_dict())
