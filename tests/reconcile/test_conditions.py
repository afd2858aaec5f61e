"""Conditions of pipelines and kinds: computed from what is observed, recorded, transition
times kept while a status holds. Engine mechanics, so the hash embedder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import edit
from embedders import HookEmbedder, PickyEmbedder
from helpers import HASH_MODELS, write_tiny_corpus
from ragstate.errors import DestructiveRefused
from ragstate.reconcile import conditions as cond
from ragstate.reconcile.daemon import Daemon
from ragstate.stores import conditions as conditions_store


def conditions_of(status: Any, scope: str, name: str) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.conditions[scope][name]}


def brief(conds: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {t: (c["status"], c["reason"]) for t, c in conds.items()}


def test_conditions_follow_the_store_and_keep_their_transition_times(make_project, corpus: Path) -> None:
    project = make_project(models=HASH_MODELS)
    status = project.status()
    assert brief(conditions_of(status, "kinds", "doc_embeddings")) == {
        "Ready": ("False", "NoActiveGeneration"),
        "Reconciling": ("False", "Pending"),
        "Degraded": ("False", "AsExpected"),
        "Stalled": ("False", "AsExpected"),
    }
    pipeline = conditions_of(status, "pipelines", "basic")
    assert pipeline["Ready"]["status"] == "False" and "no active generation" in pipeline["Ready"]["message"]

    project.apply()
    first = project.status()
    kind = conditions_of(first, "kinds", "doc_embeddings")
    assert brief(kind)["Ready"] == ("True", "Converged") and "18 in scope" in kind["Ready"]["message"]
    assert brief(conditions_of(first, "pipelines", "basic"))["Ready"] == ("True", "Converged")
    assert all(c["spec_hash"] == project.spec_hash for c in kind.values())

    again = conditions_of(project.status(), "kinds", "doc_embeddings")
    assert again["Ready"]["last_transition_at"] == kind["Ready"]["last_transition_at"], "unchanged status, same time"
    assert again["Ready"]["observed_at"] >= kind["Ready"]["observed_at"]

    # an edit of the title, which the document embedding reads (one past its text is no drift)
    edit(corpus / "markdown/PMC12429712.md", old="Influence of Tension", new="Influence of Yarn Tension")
    drifted = project.status()
    ready = conditions_of(drifted, "kinds", "doc_embeddings")["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "Drift", "1 stale")
    assert ready["last_transition_at"] > kind["Ready"]["last_transition_at"]
    assert brief(conditions_of(drifted, "kinds", "doc_embeddings"))["Reconciling"] == ("False", "Pending")

    # What status showed is what the store records, for any other reader.
    with project.store.session() as s:
        recorded = cond.from_rows(conditions_store.read(project.store, s))
    assert recorded[("kind", "doc_embeddings", "Ready")].to_dict() == ready
    assert len(recorded) == 8  # 4 conditions of one pipeline and one kind


def test_items_in_quarantine_make_a_kind_degraded_not_unready(make_project, corpus: Path, embedder_plugin) -> None:
    embedder_plugin("picky", PickyEmbedder)
    (corpus / "text/poison.txt").write_text("A bad one\n\nThis text has POISON in it.\n", encoding="utf-8")
    project = make_project(models={"default": {**HASH_MODELS["default"], "provider": "picky"}})
    assert project.apply().quarantined_total == 1
    status = project.status()
    kind = conditions_of(status, "kinds", "doc_embeddings")
    assert brief(kind)["Ready"] == ("True", "Converged"), "quarantined items are not drift"
    assert brief(kind)["Degraded"] == ("True", "ItemsQuarantined") and "1 item(s)" in kind["Degraded"]["message"]
    pipeline = conditions_of(status, "pipelines", "basic")
    assert brief(pipeline)["Degraded"] == ("True", "ItemsQuarantined")
    assert pipeline["Degraded"]["message"].startswith("doc_embeddings: 1 item(s) in quarantine")


def test_a_refused_destructive_plan_stalls_the_kind(make_project) -> None:
    project = make_project(models=HASH_MODELS)
    project.apply()
    narrowed = make_project(models=HASH_MODELS, scope={"first": 2})
    with pytest.raises(DestructiveRefused):
        narrowed.apply()
    kind = conditions_of(narrowed.status(), "kinds", "doc_embeddings")
    assert kind["Ready"]["status"] == "False" and "16 orphaned" in kind["Ready"]["message"]
    assert brief(kind)["Stalled"] == ("True", "DestructiveRefused")
    assert "--allow-destructive" in kind["Stalled"]["message"]
    narrowed.apply(allow_destructive=True)
    assert brief(conditions_of(narrowed.status(), "kinds", "doc_embeddings"))["Stalled"] == ("False", "AsExpected")


def test_a_running_apply_shows_as_reconciling_with_its_rate_and_eta(
    make_project, embedder_plugin, tmp_path: Path, monkeypatch
) -> None:
    embedder_plugin("hook", HookEmbedder)
    write_tiny_corpus(tmp_path / "docs", 40)
    overrides = {
        "source": {"path": str(tmp_path / "docs")},
        "models": {"default": {**HASH_MODELS["default"], "provider": "hook"}},
        "reconcile": {"batch_size": 4},
    }
    applier, watcher = make_project(**overrides), make_project(**overrides)
    seen = []

    def hook(call: int) -> None:
        if call == 6:  # at least two batches are committed with their progress (see test_live_status)
            seen.append(watcher.status())

    monkeypatch.setattr(HookEmbedder, "hook", staticmethod(hook))
    applier.apply()
    (status,) = seen
    reconciling = conditions_of(status, "kinds", "doc_embeddings")["Reconciling"]
    assert (reconciling["status"], reconciling["reason"]) == ("True", "Applying")
    assert "/40 documents" in reconciling["message"] and "docs/s" in reconciling["message"]
    live = status.running[0]["live"]
    assert live["kind"] == "doc_embeddings" and 8 <= live["done"] < 40 and live["total"] == 40
    assert live["rate"] > 0 and live["eta_s"] >= 0 and live["run_total"] == 40
    assert conditions_of(status, "pipelines", "basic")["Reconciling"]["status"] == "True"
    after = conditions_of(watcher.status(), "kinds", "doc_embeddings")
    assert brief(after)["Reconciling"] == ("False", "Idle") and brief(after)["Ready"] == ("True", "Converged")


def test_merge_keeps_the_transition_time_while_the_status_holds() -> None:
    old = cond.Condition("Ready", "True", "Converged", "a", last_transition_at=100.0)
    same = cond.Condition("Ready", "True", "Converged", "b", last_transition_at=200.0)
    flipped = cond.Condition("Ready", "False", "Drift", "1 missing", last_transition_at=200.0)
    previous = {("kind", "k", "Ready"): old}
    assert cond.merge(previous, {("kind", "k"): (same,)})[("kind", "k")][0].last_transition_at == 100.0
    assert cond.merge(previous, {("kind", "k"): (flipped,)})[("kind", "k")][0].last_transition_at == 200.0
    assert cond.merge({}, {("kind", "k"): (same,)})[("kind", "k")][0].last_transition_at == 200.0


def test_a_cycle_that_finds_the_writer_lock_busy_neither_degrades_nor_stalls(make_project) -> None:
    holder = make_project(models=HASH_MODELS)
    project = make_project(models=HASH_MODELS, reconcile={"lock": "fail"})
    with holder.writer_lock(command="reconcile"):
        for _ in range(cond.STALL_AFTER + 1):
            assert Daemon(project, once=True).run() == 1
        kind = conditions_of(project.status(), "kinds", "doc_embeddings")
    assert brief(kind) == {
        "Ready": ("False", "NoActiveGeneration"),
        "Reconciling": ("False", "WriterLockBusy"),
        "Degraded": ("False", "AsExpected"),
        "Stalled": ("False", "AsExpected"),
    }
    assert "could not take the writer lock" in kind["Reconciling"]["message"]
    assert "is being written by `reconcile` (pid" in kind["Reconciling"]["message"]
    pipeline = brief(conditions_of(project.status(), "pipelines", "basic"))
    assert pipeline["Reconciling"] == ("False", "WriterLockBusy") and pipeline["Stalled"][0] == "False"
    assert Daemon(project, once=True).run() == 0, "the lock is free: the next cycle converges"
    assert brief(conditions_of(project.status(), "kinds", "doc_embeddings"))["Reconciling"] == ("False", "Idle")
