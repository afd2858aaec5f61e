"""Scale mechanics: the counted shortcuts of a no-op plan stay exact; device errors are named."""

from __future__ import annotations

import pytest

from helpers import artifact_ids, copy_row, delete_rows, ledger_ids
from ragstate.errors import ModelError


def test_counts_that_balance_out_do_not_hide_drift(make_project) -> None:
    """A lost vector and a stray row keep the row count equal; both are still found."""
    project = make_project()
    project.apply()
    ids = artifact_ids(project)
    copy_row(project, ids[0], "ghost")
    delete_rows(project, [ids[1]])
    plan = project.plan()
    assert plan.drift == {"doc_embeddings": {"missing": 1, "orphaned": 1}}
    assert plan.kind("doc_embeddings").purge == ("ghost",)
    record = project.apply()
    k = record.kinds["doc_embeddings"]
    assert (k.built, k.embedded + k.cache_hits, k.purged) == (1, 1, 1)  # the lost vector, from the embedding cache
    assert project.plan().in_sync


def test_ledger_rows_outside_the_scope_are_found(make_project) -> None:
    project = make_project()
    project.apply()
    with project.store.transaction() as s:
        s.execute(
            "INSERT INTO {ledger} (kind, generation, doc_id, source_hash, recipe_fp, items, run_id, updated_at) "
            "SELECT kind, generation, 'gone.md', source_hash, recipe_fp, items, run_id, updated_at FROM {ledger} "
            "WHERE doc_id = ?",
            (ledger_ids(project)[0],),
        )
    plan = project.plan()
    assert plan.drift == {"doc_embeddings": {"orphaned": 1}}
    assert project.apply().converged and "gone.md" not in ledger_ids(project)


def test_cuda_without_a_gpu_is_refused_naming_the_field(make_project) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    project = make_project(models={"default": {"device": "cuda"}})
    with pytest.raises(ModelError, match=r"models\.default\.device is cuda"):
        project.apply()
