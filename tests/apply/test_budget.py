"""A work budget stops apply at a batch boundary: what was committed stays, the next run
continues, nothing is built twice, a generation is never switched in half built."""

from __future__ import annotations

from pathlib import Path

from embedders import HookEmbedder
from helpers import HASH_MODELS, check_store, run_rows, write_tiny_corpus
from ragstate.apply.budget import Budget
from ragstate.stores import ledger

N = 40


def tiny(make_project, tmp_path: Path, **overrides):
    write_tiny_corpus(tmp_path / "docs", N)
    options = {"source": {"path": str(tmp_path / "docs")}, "models": HASH_MODELS, "reconcile": {"batch_size": 4}}
    return make_project(**{**options, **overrides})


def test_an_item_budget_heals_a_backlog_over_several_runs(make_project, tmp_path: Path) -> None:
    project = tiny(make_project, tmp_path)
    first = project.apply(budget=Budget(max_items=10))
    assert first.status == "partial" and first.kinds["doc_embeddings"].built == 10
    assert first.budget["stopped"] == "items" and first.budget["items"] == 10
    assert first.remaining == {"doc_embeddings": {"missing": 30}}
    assert "work budget spent: 10 documents" in first.error and "the next run continues" in first.error
    check_store(project)

    builds = [first.kinds["doc_embeddings"].built]
    while True:
        record = project.apply(budget=Budget(max_items=10))
        builds.append(record.kinds["doc_embeddings"].built if record.kinds else 0)
        if record.status == "converged":
            break
        assert record.status == "partial"
    assert builds == [10, 10, 10, 10], "each run continues where the last stopped"
    assert record.budget["stopped"] is None, "the last run did not need to stop"
    with project.store.session() as s:
        stamps = [r[0] for r in s.query("SELECT run_id FROM {ledger}")]
    assert len(stamps) == N and len(set(stamps)) == 4, "every document built once, by one of the four runs"
    assert [status for _, status, _ in run_rows(project)] == ["partial"] * 3 + ["converged"]
    assert project.verify().in_sync


def test_a_stop_request_ends_the_run_after_the_current_batch(
    make_project, tmp_path: Path, embedder_plugin, monkeypatch
) -> None:
    embedder_plugin("hook", HookEmbedder)
    project = tiny(make_project, tmp_path, models={"default": {**HASH_MODELS["default"], "provider": "hook"}})
    budget = Budget()

    def hook(call: int) -> None:
        if call == 3:  # while the third batch is being built
            budget.request_stop("SIGTERM received")

    monkeypatch.setattr(HookEmbedder, "hook", staticmethod(hook))
    record = project.apply(budget=budget)
    built = record.kinds["doc_embeddings"].built
    assert record.status == "partial" and built == 3 * 4, "the batch being built when asked is finished, no other"
    assert record.budget["stopped"] == "stop" and record.budget["stop_reason"] == "SIGTERM received"
    assert record.error.startswith("stopped after the current batch: SIGTERM received")
    check_store(project)
    assert len(ledger_rows(project)) == built, "every batch started was committed, nothing more"
    monkeypatch.setattr(HookEmbedder, "hook", None)
    rest = project.apply()
    assert rest.converged and rest.kinds["doc_embeddings"].built == N - built


def test_a_budget_never_switches_in_a_half_built_generation(make_project, tmp_path: Path) -> None:
    project = tiny(make_project, tmp_path)
    project.apply()
    changed = make_project(
        source={"path": str(tmp_path / "docs")},
        models=HASH_MODELS,
        reconcile={"batch_size": 4},
        artifacts={"doc_embeddings": {"text": "{title}"}},
    )
    partial = changed.apply(budget=Budget(max_items=12))
    counts = partial.kinds["doc_embeddings"]
    assert partial.status == "partial" and counts.created_generation and not counts.switched
    with changed.store.session() as s:
        states = {g.generation: g.state for g in ledger.generations(changed.store, s, "doc_embeddings")}
    assert states == {1: "active", 2: "building"}, "queries keep reading generation 1"
    ready = {c["type"]: c for c in changed.status().conditions["kinds"]["doc_embeddings"]}["Ready"]
    assert ready["reason"] == "RecipeChanged" and "generation 1" in ready["message"]
    rest = changed.apply()
    assert rest.converged and rest.kinds["doc_embeddings"].switched and rest.kinds["doc_embeddings"].built == N - 12
    check_store(changed)


def test_a_time_budget_spent_before_the_first_batch_builds_nothing(make_project, tmp_path: Path) -> None:
    project = tiny(make_project, tmp_path)
    budget = Budget(max_seconds=1e-9)
    record = project.apply(budget=budget)
    assert record.status == "partial" and record.budget["stopped"] == "seconds"
    assert record.built == 0 and record.remaining == {"doc_embeddings": {"missing": N}}


def ledger_rows(project) -> list[tuple]:
    with project.store.session() as s:
        return s.query("SELECT doc_id FROM {ledger}")
