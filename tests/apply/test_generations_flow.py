"""Blue/green generations end to end, on both backends.

A recipe change builds a new generation beside the active one while queries keep reading
the active one; the new one is verified (complete, quality, golden queries) and switched
in one transaction with the kinds built from it; ``rollback`` switches back without
recomputing, and the same queries give the same answers. The real model covers the
product's behaviour (the embedded text, the normalisation, the chunk size, an embedder
that is valid but wrong); the ``hash`` embedder covers the mechanics (a dimension change,
broken vectors, the CLI).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import edit
from helpers import active_table
from ragstate.apply.budget import Budget
from ragstate.apply.progress import NullProgress
from ragstate.cli import app
from ragstate.compute import embedders
from ragstate.compute.embedders import HashEmbedder, SentenceTransformerEmbedder, make_embedder
from ragstate.errors import GoldenSetError, StoreLocked
from ragstate.plan.render import render_plan
from ragstate.spec.model import ModelSpec
from ragstate.stores import ledger

N = 18  # documents in the small corpus
QUERIES = ["seed dormancy and germination", "muscle tension", "acai pulp antioxidant", "polyester textile fibres"]
HASH = {"default": {"provider": "hash", "dimension": 32}}


def generation_states(project: Any, kind: str = "doc_embeddings") -> dict[int, str]:
    with project.store.session() as s:
        return {g.generation: g.state for g in ledger.generations(project.store, s, kind)}


def generation(project: Any, kind: str, number: int) -> ledger.Generation:
    with project.store.session() as s:
        return next(g for g in ledger.generations(project.store, s, kind) if g.generation == number)


def answers(project: Any, embedder: Any, kind: str = "doc_embeddings", k: int = 5) -> list[list[tuple[str, float]]]:
    """Nearest rows of each query in the kind's active generation, read from the store directly."""
    table = active_table(project, kind)
    vectors = embedder.embed(QUERIES)
    with project.store.session() as s:
        return [
            [(d, round(dist, 4)) for d, dist in project.store.nearest(s, table, "embedding", v, k)] for v in vectors
        ]


def stamps(project: Any, table: str) -> dict[str, tuple[str, float]]:
    with project.store.session() as s:
        return {r[0]: (r[1], r[2]) for r in s.query("SELECT doc_id, run_id, created_at FROM {t}", t=table)}


class QueriesWhileBuilding(NullProgress):
    """Answers the queries after every committed batch of the build, as a reader would."""

    def __init__(self, probe):
        self.probe = probe
        self.seen: list[Any] = []

    def advance(self, kind: str, done: int) -> None:
        self.seen.append(self.probe())


@pytest.fixture
def real_embedder():
    return make_embedder("default", ModelSpec())


@pytest.fixture
def register_embedder(monkeypatch: pytest.MonkeyPatch):
    """Register an embedder class as a provider for this test (as an installed plugin would be)."""
    monkeypatch.setattr(embedders, "_embedders", {})

    def register(name: str, factory: Any) -> None:
        monkeypatch.setitem(embedders.BUILTIN, name, factory)

    return register


# --- the real model: text, normalisation, rollback --------------------------------------


@pytest.mark.slow
def test_text_and_normalisation_changes_switch_and_roll_back(make_project, real_embedder) -> None:
    settings = {"golden": {"k": 3}}
    first = make_project(generations=settings)
    assert first.apply().converged
    before = answers(first, real_embedder)
    first_rows = stamps(first, "doc_embeddings_g1")

    # 1. The embedded text changes: a plan with the change, its cost and how it is verified.
    text = make_project(artifacts={"doc_embeddings": {"text": "{title}"}}, generations=settings)
    plan = text.plan()
    k = plan.kind("doc_embeddings")
    assert plan.drift == {"doc_embeddings": {"recipe": N}} and not plan.destructive and plan.gc == ()
    assert k.changes == ('text: "{title}\\n\\n{summary}" → "{title}"',)
    assert plan.estimate.items == N and plan.estimate.tokens > 0 and plan.estimate.seconds > 0
    assert plan.switch_groups == (("doc_embeddings",),)
    assert k.verification["golden"]["active_generation"] == 1 and k.verification["checks"][-1] == "golden"
    assert k.verification["golden"]["active_recall"] > 0.5  # measured when generation 1 was switched in

    # Built beside generation 1, which answers every query as before while it is built.
    probe = QueriesWhileBuilding(lambda: (active_table(text), answers(text, real_embedder)))
    record = text.apply(progress=probe)
    assert probe.seen and all(seen == ("doc_embeddings_g1", before) for seen in probe.seen)
    assert record.converged and record.kinds["doc_embeddings"].built == N and record.kinds["doc_embeddings"].switched
    [verification] = record.verification
    check = verification["checks"][0]
    assert verification["passed"] and check["problems"] == {} and check["documents"] == N
    assert check["golden"]["queries"] == 18 and check["golden"]["active_generation"] == 1
    assert check["golden"]["recall"] >= check["golden"]["needed"] > 0
    assert generation_states(text) == {1: "retired", 2: "active"}
    after_text = answers(text, real_embedder)
    assert after_text != before

    # 2. The normalisation changes: a third generation, same ranking (cosine ignores length).
    norm = make_project(
        artifacts={"doc_embeddings": {"text": "{title}"}},
        models={"default": {"normalize": False}},
        generations=settings,
    )
    assert norm.plan().kind("doc_embeddings").changes == ("model.normalize: true → false",)
    record = norm.apply()
    assert record.converged and record.kinds["doc_embeddings"].switched
    assert generation_states(norm) == {1: "retired", 2: "retired", 3: "active"}
    assert [[d for d, _ in q] for q in answers(norm, real_embedder)] == [[d for d, _ in q] for q in after_text]
    # (all-MiniLM-L6-v2 ends in a Normalize layer: its vectors are unit length either way)
    golden = record.verification[0]["checks"][0]["golden"]
    assert golden["active_generation"] == 2 and golden["recall"] == golden["active_recall"]

    # 3. Roll back to the previous generation, then to the first: nothing recomputed.
    back = norm.rollback("doc_embeddings")
    assert back.converged and back.rollback["switched"] == {"doc_embeddings": {"from": 3, "to": 2}}
    assert back.rollback["recomputed"] == 0 and back.built == 0 and back.kinds["doc_embeddings"].embedded == 0
    assert answers(norm, real_embedder) == after_text
    back = norm.rollback("doc_embeddings", to=1)
    assert back.rollback["switched"] == {"doc_embeddings": {"from": 2, "to": 1}} and back.rollback["held"] == [
        "doc_embeddings"
    ]
    assert answers(norm, real_embedder) == before
    assert stamps(norm, "doc_embeddings_g1") == first_rows  # not one row rewritten
    assert generation_states(norm) == {1: "active", 2: "retired", 3: "retired"}

    # Held: while the spec still asks for generation 3's recipe, apply leaves generation 1.
    plan = norm.plan()
    assert plan.in_sync and plan.kind("doc_embeddings").held and "held at generation 1" in plan.notes[0]
    again = norm.apply()
    assert again.converged and again.built == 0 and generation_states(norm)[1] == "active"
    assert norm.status().pipelines["basic"].ready

    history = norm.history()
    assert [g["state"] for g in history.generations["doc_embeddings"]] == ["active", "retired", "retired"]
    assert [r["command"] for r in history.runs[:3]] == ["apply", "rollback", "rollback"]
    assert history.generations["doc_embeddings"][1]["changes"] == ['text: "{title}\\n\\n{summary}" → "{title}"']

    # Editing the spec back to generation 1's recipe releases the hold; the store is in sync.
    assert first.plan().in_sync
    first.apply()
    assert generation(first, "doc_embeddings", 1).hold is None


# --- the real model: a chunking change switches its whole group ------------------------


@pytest.mark.slow
def test_chunk_size_change_switches_the_group_in_one_transaction(built, real_embedder) -> None:
    make, _ = built
    group = ("chunks", "chunk_embeddings", "token_embeddings", "entities", "entity_embeddings")
    project = make(artifacts={"chunks": {"max_tokens": 96}}, generations={"golden": {"k": 2}})
    before = answers(project, real_embedder, "chunk_embeddings", k=8)
    plan = project.plan()
    [switching] = plan.switch_groups
    assert sorted(switching) == sorted(group) and switching[0] == "chunks"  # in build order
    assert any(c.startswith("chunker.max_tokens") for c in plan.kind("chunks").changes)

    record = project.apply()
    assert record.converged
    [verification] = record.verification
    assert verification["group"] == list(switching) and verification["passed"]
    golden = {c["kind"]: c["golden"] for c in verification["checks"]}
    assert golden["chunk_embeddings"]["k"] == 2 and golden["chunk_embeddings"]["active_generation"] == 1
    assert all(golden[k] is None for k in group if k != "chunk_embeddings")
    new = [generation(project, k, 2) for k in group]
    assert all(g.state == "active" for g in new)
    assert len({g.activated_at for g in new}) == 1  # one transaction, one instant
    assert generation(project, "chunk_embeddings", 2).upstream == {"chunks": 2}
    assert answers(project, real_embedder, "chunk_embeddings", k=8) != before

    back = project.rollback("chunks")
    assert back.rollback["switched"] == {k: {"from": 2, "to": 1} for k in group}
    assert back.rollback["recomputed"] == 0 and back.built == 0
    assert answers(project, real_embedder, "chunk_embeddings", k=8) == before
    assert len({generation(project, k, 1).activated_at for k in group}) == 1


# --- verification failures never switch -------------------------------------------------


class TailWords(SentenceTransformerEmbedder):
    """Valid vectors of the wrong text: only the last four words of each text are embedded."""

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "provider": "tail-words"}

    def embed(self, texts):
        return super().embed([" ".join(t.split()[-4:]) for t in texts])


@pytest.mark.slow
def test_a_valid_but_wrong_embedder_fails_the_golden_check(make_project, register_embedder, real_embedder) -> None:
    register_embedder("tail-words", TailWords)
    settings = {"golden": {"k": 3}}
    first = make_project(generations=settings)
    first.apply()
    before = answers(first, real_embedder)
    wrong = make_project(models={"default": {"provider": "tail-words"}}, generations=settings)
    record = wrong.apply()
    assert record.status == "rejected" and not record.converged
    assert record.kinds["doc_embeddings"].built == N and not record.kinds["doc_embeddings"].switched
    check = record.verification[0]["checks"][0]
    assert check["problems"] == {}  # complete, valid, distinct vectors: only the golden check sees it
    assert check["golden"]["recall"] < check["golden"]["needed"]
    assert "golden recall@3" in record.error and "below 95% of generation 1's" in record.error
    assert generation_states(wrong) == {1: "active", 2: "rejected"}
    assert answers(wrong, real_embedder) == before

    # The plan says why; the next apply verifies again without rebuilding, and rejects again.
    plan = wrong.plan()
    k = plan.kind("doc_embeddings")
    assert k.switch and k.build == {} and k.verification["last"]["passed"] is False
    again = wrong.apply()
    assert again.status == "rejected" and again.built == 0
    assert generation_states(wrong) == {1: "active", 2: "rejected"}


class Zeros(HashEmbedder):
    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "provider": "zeros"}

    def embed(self, texts):
        return np.zeros((len(texts), self.dimension), dtype=np.float32)


class Constant(HashEmbedder):
    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "provider": "constant"}

    def embed(self, texts):
        return super().embed(["the same text"] * len(texts))


@pytest.mark.parametrize(
    # zero vectors fail the checks before they are written: every document is quarantined,
    # which would take them all away from queries (lost); identical vectors are written (mock)
    ("provider", "factory", "problem", "said"),
    [("zeros", Zeros, "lost", "lost to quarantine"), ("constant", Constant, "mock", "mock")],
)
def test_broken_vectors_are_never_switched_to(
    make_project, register_embedder, provider, factory, problem, said
) -> None:
    register_embedder(provider, factory)
    first = make_project(models=HASH)
    first.apply()
    broken = make_project(models={"default": {**HASH["default"], "provider": provider}})
    record = broken.apply()
    assert record.status == "rejected"
    check = record.verification[0]["checks"][0]
    assert check["problems"] == {problem: N} and check["golden"] is None
    assert f"{N} {said}" in record.error
    assert generation_states(broken) == {1: "active", 2: "rejected"}


# --- a dimension change: a new table of the new dimension (hash embedder, mechanics) ---


def test_dimension_change_gets_its_own_table_and_rolls_back(make_project, backend: str) -> None:
    title = {"doc_embeddings": {"text": "{title}"}}
    small = make_project(models=HASH, artifacts=title)
    small.apply()
    wide = make_project(models={"default": {"provider": "hash", "dimension": 48}}, artifacts=title)
    assert "model.dimension: 32 → 48" in wide.plan().kind("doc_embeddings").changes
    record = wide.apply()
    assert record.converged
    golden = record.verification[0]["checks"][0]["golden"]
    assert golden["recall"] == golden["active_recall"] == 1.0  # a title finds itself, in either dimension
    with wide.store.session() as s:
        types = {g: wide.store.columns(s, f"doc_embeddings_g{g}")["embedding"].sql_type for g in (1, 2)}
        sizes = {
            g: wide.store.decode_vector(s.scalar("SELECT embedding FROM {t} LIMIT 1", t=f"doc_embeddings_g{g}")).size
            for g in (1, 2)
        }
    assert sizes == {1: 32, 2: 48}
    if backend == "postgres":
        assert types == {1: "vector(32)", 2: "vector(48)"}
    wide.rollback("doc_embeddings")
    assert generation_states(wide) == {1: "active", 2: "retired"}
    # held at generation 1: queries are embedded by the model that made its vectors (32 dimensions)
    assert wide.status().pipelines["basic"].ready
    hits = wide.query("basic", "seed dormancy", 3, readiness="fail").results
    assert len(hits) == 3 and {h.generation for h in hits} == {1}


def test_rollback_waits_for_the_writer_lock(make_project) -> None:
    title = {"doc_embeddings": {"text": "{title}"}}
    make_project(models=HASH).apply()
    changed = make_project(models=HASH, artifacts=title)
    assert changed.apply().converged
    other = make_project(models=HASH, artifacts=title, reconcile={"lock": "fail"})
    with changed.writer_lock(command="apply"):
        with pytest.raises(StoreLocked, match="`apply`"):
            other.rollback("doc_embeddings")
    assert generation_states(other) == {1: "retired", 2: "active"}, "nothing switched while locked"
    assert other.rollback("doc_embeddings").rollback["switched"] == {"doc_embeddings": {"from": 2, "to": 1}}


# --- garbage collection -----------------------------------------------------------------


def test_old_generations_beyond_keep_are_dropped_never_the_previous(make_project) -> None:
    texts = ["{title}", "{title}\n\n{abstract}", "{summary}", "{title}\n\n{summary}"]
    for i, text in enumerate(texts):
        # hash vectors know no meaning: the golden check is off (queries: 0) for these mechanics
        settings = {"keep": 1, "golden": {"queries": 0}}
        project = make_project(models=HASH, artifacts={"doc_embeddings": {"text": text}}, generations=settings)
        plan = project.plan()
        if i >= 2:
            # switching to generation i+1 makes generation i the previous one; i-1 goes
            assert [(g.generation, g.documents) for g in plan.gc] == [(i - 1, N)]
        else:
            assert plan.gc == ()
        record = project.apply()
        assert record.converged and [g["generation"] for g in record.gc] == [g.generation for g in plan.gc]
    assert generation_states(project) == {1: "dropped", 2: "dropped", 3: "retired", 4: "active"}
    with project.store.session() as s:
        assert project.store.columns(s, "doc_embeddings_g2") is None
        assert project.store.columns(s, "doc_embeddings_g3") is not None
        assert s.scalar("SELECT count(*) FROM {ledger} WHERE generation = 2") == 0
    assert project.rollback("doc_embeddings").rollback["switched"] == {"doc_embeddings": {"from": 4, "to": 3}}
    with pytest.raises(Exception, match="garbage-collected"):
        project.rollback("doc_embeddings", to=2)


# --- the CLI ----------------------------------------------------------------------------

runner = CliRunner()


def run(*args: str) -> tuple[int, Any]:
    result = runner.invoke(app, list(args))
    return result.exit_code, json.loads(result.stdout) if "--json" in args else result.stdout


def test_cli_rejected_history_and_rollback(spec_file, register_embedder) -> None:
    register_embedder("zeros", Zeros)
    title = {"doc_embeddings": {"text": "{title}"}}
    first = str(spec_file("first.yaml", models=HASH, artifacts=title))
    second = str(spec_file("second.yaml", models={"default": {"provider": "hash", "dimension": 24}}, artifacts=title))
    broken = str(spec_file("broken.yaml", models={"default": {**HASH["default"], "provider": "zeros"}}))
    assert run("apply", "-c", first, "--json")[0] == 0

    code, record = run("apply", "-c", broken, "--json")
    assert code == 5 and record["status"] == "rejected" and "not switched in" in record["error"]
    # zero vectors are never written: their documents wait in quarantine; reconcile builds
    # nothing, verifies again and rejects again
    code, record = run("reconcile", "-c", broken, "--json")
    assert code == 5 and record["status"] == "rejected" and record["built"] == 0
    assert record["quarantined"] == {"doc_embeddings": 18}
    assert record["verification"][0]["checks"][0]["generation"] == 2
    code, plan = run("plan", "-c", second)
    assert code == 2 and "model.dimension: 32 → 24" in plan and "then verify (complete, quality, golden)" in plan
    code, record = run("apply", "-c", second, "--json")
    # another recipe tries the documents the zero embedder failed on again: none fails now
    assert code == 0 and record["verification"][0]["passed"] and record["quarantined"] == {}

    code, text = run("history", "-c", second)
    assert code == 0 and "g3   active" in text and "g2   rejected" in text and "g1   retired" in text
    assert "golden recall@10 1.00 vs 1.00 of g1" in text
    code, history = run("history", "-c", second, "--json", "--kind", "doc_embeddings")
    assert code == 0 and [g["state"] for g in history["generations"]["doc_embeddings"]] == [
        "retired",
        "rejected",
        "active",
    ]
    assert [(r["command"], r["status"]) for r in history["runs"]] == [
        ("apply", "converged"),
        ("reconcile", "rejected"),
        ("apply", "rejected"),
        ("apply", "converged"),
    ]

    code, record = run("rollback", "doc_embeddings", "-c", second, "--json")
    assert code == 0 and record["rollback"]["switched"] == {"doc_embeddings": {"from": 3, "to": 1}}
    refused = runner.invoke(app, ["rollback", "doc_embeddings", "--to", "2", "-c", second])
    assert refused.exit_code == 1 and "generation 2 was never switched in" in refused.stderr
    code, text = run("plan", "-c", second)
    assert code == 0 and "held" in text
    code, record = run("rollback", "doc_embeddings", "--to", "3", "-c", second, "--json")
    assert code == 0 and record["rollback"]["held"] == []  # forward to what the spec asks for: no hold
    assert run("plan", "-c", second)[0] == 0


def test_golden_queries_from_a_file(make_project, tmp_path: Path) -> None:
    title = {"doc_embeddings": {"text": "{title}"}}
    first = make_project(models=HASH, artifacts=title)
    first.apply()
    with first.store.session() as s:
        titles = dict(s.query("SELECT doc_id, title FROM {documents} ORDER BY doc_id LIMIT 2"))
    (a, title_a), (b, title_b) = titles.items()
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        json.dumps({"query": title_a, "doc_id": a}) + "\n" + json.dumps({"query": title_b, "doc_ids": [b, "gone"]})
    )
    project = make_project(
        models={"default": {**HASH["default"], "dimension": 40}},
        artifacts=title,
        generations={"golden": {"file": str(golden), "k": 1}},
    )
    assert project.plan().kind("doc_embeddings").verification["golden"]["queries"] == str(golden)
    record = project.apply()
    check = record.verification[0]["checks"][0]["golden"]
    # each title finds its own document; "gone" is found by neither generation
    assert check["queries"] == 2 and check["recall"] == check["active_recall"] == 0.75
    assert record.converged

    # A broken file stops the next recipe change before anything is built.
    golden.write_text('{"query": "x"}\n')
    broken = make_project(
        models={"default": {**HASH["default"], "dimension": 8}},
        artifacts=title,
        generations={"golden": {"file": str(golden)}},
    )
    with pytest.raises(GoldenSetError, match=':1: needs "doc_id"'):
        broken.apply()
    assert generation_states(broken) == {1: "retired", 2: "active"}


# --- schema drift: a store from before migration 5 ---------------------------------------


def test_a_store_from_before_lineage_is_migrated_and_keeps_its_generations(make_project) -> None:
    title = {"doc_embeddings": {"text": "{title}"}}
    make_project(models=HASH, artifacts=title).apply()
    project = make_project(models={"default": {"provider": "hash", "dimension": 24}}, artifacts=title)
    project.apply()
    # What a store written by the previous version looks like: no migration 5, none of its
    # columns, and (for good measure) an index of the runs table lost.
    with project.store.transaction() as s:
        s.execute("DELETE FROM {schema_versions} WHERE version = 5")
        for column in ("upstream", "models", "verification", "hold", "retired_at", "dropped_at"):
            s.execute("ALTER TABLE {generations} DROP COLUMN {c}", c=_col(column))
        s.execute("DROP INDEX {i}", i="runs_started")  # an index is named like a table of its schema
    plan = project.plan()
    assert plan.drift == {"store": {"schema": len(plan.schema)}}
    assert any("migrations [5] are pending" in p for p in plan.schema)
    assert any("generations.verification is missing" in p for p in plan.schema)
    assert any("runs_started" in p for p in plan.schema)
    with pytest.raises(Exception, match="migrations \\[5\\] are pending"):
        project.history()

    record = project.apply()
    assert record.converged and record.built == 0 and record.schema_repaired
    assert project.plan().in_sync
    assert generation_states(project) == {1: "retired", 2: "active"}  # nothing dropped, nothing switched
    back = project.rollback("doc_embeddings")  # the one before it, recorded before retired_at existed
    assert back.rollback["switched"] == {"doc_embeddings": {"from": 2, "to": 1}}


def _col(name: str):
    from ragstate.stores.dialect import Col

    return Col(name)


def test_a_budget_stopped_build_is_verified_by_the_run_that_completes_it(make_project) -> None:
    make_project(models=HASH).apply()
    change = make_project(models=HASH, artifacts={"doc_embeddings": {"text": "{title}"}})
    partial = change.apply(budget=Budget(max_items=5))
    assert partial.status == "partial" and partial.verification == []
    assert generation_states(change) == {1: "active", 2: "building"}, "not verified half-built, not rejected"
    record = change.apply()
    assert record.converged and record.kinds["doc_embeddings"].switched and record.verification[0]["passed"]
    assert generation_states(change) == {1: "retired", 2: "active"}


# --- a rollback pins the recipe, not the data (issue 15, bug 2) --------------------------


def test_a_held_kind_follows_the_source_under_the_pinned_recipe(spec_file, make_project, corpus: Path) -> None:
    title = {"doc_embeddings": {"text": "{title}"}}
    first = str(spec_file("first.yaml", models=HASH))
    second = str(spec_file("second.yaml", models=HASH, artifacts=title))
    assert run("apply", "-c", first, "--json")[0] == 0
    code, record = run("apply", "-c", second, "--json")
    assert code == 0 and record["kinds"]["doc_embeddings"]["switched"]
    code, record = run("rollback", "doc_embeddings", "-c", second, "--json")
    assert code == 0 and record["rollback"]["held"] == ["doc_embeddings"]
    pinned = run("plan", "-c", first, "--json")[1]["kinds"][0]["recipe_fp"]  # generation 1's recipe

    edited, deleted = "text/PMC12429868.txt", "markdown/PMC12429716.md"
    edit(corpus / edited, old="Phenolic Quantification", new="Phenolic Acid Quantification")  # a title the model reads
    (corpus / deleted).unlink()

    # The held kind is observed under the recipe rolled back to: the edit and the deletion are drift.
    code, plan = run("plan", "-c", second, "--json")
    [k] = plan["kinds"]
    assert code == 2 and k["held"] and k["recipe_fp"] == pinned
    assert k["active_generation"] == k["target_generation"] == 1 and not k["switch"]
    assert k["build"] == {"stale": [edited]} and k["delete"] == [deleted]
    code, text = run("plan", "-c", second)
    assert code == 2 and "held" in text and "stale" in text and "orphaned" in text
    code, report = run("verify", "-c", second, "--json")
    assert code == 2 and report["drift"] == {"doc_embeddings": {"stale": 1, "orphaned": 1}}
    code, status = run("status", "-c", second, "--json")
    assert code == 2 and not status["pipelines"]["basic"]["ready"] and status["kinds"]["doc_embeddings"]["held"]

    # Apply heals generation 1 in place, under its own recipe; the hold stays.
    code, record = run("apply", "-c", second, "--json")
    counts = record["kinds"]["doc_embeddings"]
    assert code == 0 and counts["built"] == 1 and counts["deleted"] == 1 and counts["generation"] == 1
    assert not counts.get("switched") and not counts.get("created_generation")
    code, history = run("history", "-c", second, "--json")
    gens = {g["generation"]: g for g in history["generations"]["doc_embeddings"]}
    assert gens[1]["state"] == "active" and gens[1]["hold"] and set(gens) == {1, 2}
    project = make_project(models=HASH, artifacts=title)
    with project.store.session() as s:
        rows = dict(s.query("SELECT doc_id, recipe_fp FROM {t}", t="doc_embeddings_g1"))
    assert deleted not in rows and len(rows) == N - 1 and set(rows.values()) == {pinned}
    assert run("verify", "-c", second)[0] == 0
    code, status = run("status", "-c", second, "--json")
    assert code == 0 and status["pipelines"]["basic"]["ready"] and status["kinds"]["doc_embeddings"]["held"]
    assert status["kinds"]["doc_embeddings"]["complete"] == 1.0
    # Rolling forward still releases the hold; generation 2 then misses the edit, which apply builds.
    code, record = run("rollback", "doc_embeddings", "--to", "2", "-c", second, "--json")
    assert code == 0 and record["rollback"]["held"] == []
    code, plan = run("plan", "-c", second, "--json")
    assert code == 2 and plan["kinds"][0]["build"] == {"stale": [edited]} and plan["kinds"][0]["delete"] == [deleted]


# --- schema drift of the active generation's table (issue 15, item 1) --------------------


def _retype_embedding(project: Any, backend: str) -> None:
    """Give the active generation's vector column another type behind ragstate's back."""
    with project.store.session() as s, s.transaction():
        if backend == "postgres":
            # pgvector's HNSW index needs a dimension: it goes first, as a user would drop it
            for name in project.store.indexes(s, "doc_embeddings_g1") or ():
                if "hnsw" in name:
                    s.execute(f'DROP INDEX "{project.spec.store.schema_name}"."{name}"')
            s.execute("ALTER TABLE {t} ALTER COLUMN embedding TYPE vector", t="doc_embeddings_g1")
        else:
            s.execute("ALTER TABLE {t} RENAME TO {old}", t="doc_embeddings_g1", old="doc_embeddings_g1_old")
            s.execute(
                "CREATE TABLE {t} (doc_id TEXT PRIMARY KEY, source_hash TEXT NOT NULL, recipe_fp TEXT NOT NULL, "
                "run_id TEXT, created_at REAL NOT NULL, text_hash TEXT NOT NULL, embedding TEXT NOT NULL)",
                t="doc_embeddings_g1",
            )
            s.execute("INSERT INTO {t} SELECT * FROM {old}", t="doc_embeddings_g1", old="doc_embeddings_g1_old")
            s.execute("DROP TABLE {old}", old="doc_embeddings_g1_old")


def test_a_vector_column_of_another_type_heals_in_one_run(make_project, backend: str) -> None:
    project = make_project(models=HASH)
    assert project.apply().converged
    _retype_embedding(project, backend)

    plan = project.plan()
    k = plan.kind("doc_embeddings")
    # the plan names what is wrong with the table, not only a count (on PostgreSQL, the
    # dropped index too)
    assert not plan.in_sync and k.drift["schema"] == len(k.schema) == (2 if backend == "postgres" else 1)
    [problem] = [p for p in k.schema if "embedding is" in p]
    assert "doc_embeddings_g1.embedding is" in problem and "expected" in problem
    assert k.build == {"schema": k.build["schema"]} and len(k.build["schema"]) == N and k.switch
    text = render_plan(plan)
    assert problem in text and "cannot be changed in place" in text

    record = project.apply()
    assert record.converged, record.error
    assert project.plan().in_sync and project.verify().in_sync
    assert project.status().pipelines["basic"].ready
    # one new generation of the same recipe, verified on its own table and switched in
    assert generation_states(project) == {1: "retired", 2: "active"}
    assert record.kinds["doc_embeddings"].built == N and record.verification[0]["passed"]
    assert generation(project, "doc_embeddings", 2).recipe_fp == generation(project, "doc_embeddings", 1).recipe_fp
    again = project.apply()
    assert again.converged and again.built == 0 and generation_states(project) == {1: "retired", 2: "active"}
class Twins(HashEmbedder):
    """Gives the two documents marked TWIN one vector: a placeholder for different texts."""

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "provider": "twins"}

    def embed(self, texts):
        return super().embed(["twin" if "TWIN" in t else t for t in texts])


def test_a_first_generation_sets_bad_documents_aside_and_switches_in_the_rest(
    make_project, register_embedder, corpus: Path
) -> None:
    """Nothing active to protect: two placeholder vectors of a first build are quarantined
    with the reason, the rest is switched in, and apply exits 4 (issue 22)."""
    register_embedder("twins", Twins)
    for name in ("a", "b"):
        (corpus / f"twin-{name}.txt").write_text(f"TWIN {name}\n\nA short text about twin {name}.\n")
    project = make_project(models={"default": {**HASH["default"], "provider": "twins"}})
    record = project.apply()
    assert record.status == "converged" and record.quarantined == {"doc_embeddings": 2}
    check = record.verification[0]["checks"][0]
    assert check["passed"] and check["problems"] == {}
    assert set(check["set_aside"]) == {"twin-a.txt", "twin-b.txt"}
    assert check["set_aside"]["twin-a.txt"].startswith("mock")
    assert generation_states(project) == {1: "active"}
    with project.store.session() as s:
        built = {r[0] for r in s.query("SELECT doc_id FROM {t}", t=active_table(project))}
    assert len(built) == N and not built & {"twin-a.txt", "twin-b.txt"}
    entries = {e.item: e for e in project.quarantine_list()}
    assert entries["twin-a.txt"].reason == "mock" and "the first" in entries["twin-a.txt"].message
    assert project.plan().in_sync
    assert project.verify().in_sync
