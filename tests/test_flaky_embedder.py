"""An embedder that raises a transient error on 30% of its calls: apply converges, retries counted.

Engine mechanics, so the embedder is a flaky wrapper of the deterministic ``hash`` one;
both backends.
"""

from __future__ import annotations

import pytest

from conftest import embedder_of
from embedders import FlakyEmbedder
from helpers import HASH_MODELS, check_store, run_rows, write_tiny_corpus
from ragstate.errors import ComputeUnavailable

N = 120
FAST_RETRIES = {"initial_delay_s": 0.001, "max_delay_s": 0.01, "jitter_s": 0.001}


def flaky_models() -> dict:
    return {"default": {**HASH_MODELS["default"], "provider": "flaky"}}


def test_transient_embedder_errors_are_retried_and_the_run_converges(make_project, embedder_plugin, tmp_path):
    embedder_plugin("flaky", FlakyEmbedder)
    write_tiny_corpus(tmp_path / "docs", N)
    project = make_project(
        source={"path": str(tmp_path / "docs")},
        models=flaky_models(),
        reconcile={"batch_size": 4, "retry": FAST_RETRIES, "breaker": {"threshold": 3, "cooldown_s": 0.01}},
    )
    record = project.apply()
    embedder = embedder_of(project)

    assert record.converged and record.kinds["doc_embeddings"].built == N and record.quarantined == {}
    assert embedder.raised >= 10, "the seeded embedder failed on about 30% of its calls"
    assert abs(embedder.raised / embedder.calls - 0.3) < 0.15
    faults = record.faults
    assert faults["retries"]["embedder"] == embedder.raised, "every transient failure was retried, and counted"
    assert faults["failures"]["embedder"] == {"transient": embedder.raised}
    assert all(e["class"] == "transient" and e["type"] == "ComputeUnavailable" for e in faults["events"])
    check_store(project)
    with project.store.session() as s:
        stored = project.store.decode_json(s.scalar("SELECT counts FROM {runs} WHERE run_id = ?", (record.run_id,)))
    assert stored["faults"]["retries"]["embedder"] == embedder.raised, "the run record keeps the count"
    assert project.verify().in_sync


def test_retries_run_out_the_run_fails_and_the_next_one_resumes(make_project, embedder_plugin, tmp_path, monkeypatch):
    embedder_plugin("flaky", FlakyEmbedder)
    write_tiny_corpus(tmp_path / "docs", 40)
    monkeypatch.setattr(FlakyEmbedder, "rate", 1.0)
    project = make_project(
        source={"path": str(tmp_path / "docs")},
        models=flaky_models(),
        reconcile={"batch_size": 8, "retry": {**FAST_RETRIES, "attempts": 3}, "breaker": {"cooldown_s": 0.01}},
    )
    with pytest.raises(ComputeUnavailable):
        project.apply()
    (run,) = run_rows(project)
    with project.store.session() as s:
        counts = project.store.decode_json(s.scalar("SELECT counts FROM {runs}"))
    assert run[1] == "failed" and counts["error_class"] == "transient"
    assert counts["faults"]["stopped_by"] == "transient"
    assert [(c["from"], c["to"]) for c in counts["faults"]["breaker"]][:1] == [("closed", "open")]
    assert project.quarantine_list() == [], "a transient failure is not the documents' fault"

    monkeypatch.setattr(FlakyEmbedder, "rate", 0.0)
    record = project.apply()
    assert record.converged and record.kinds["doc_embeddings"].built == 40
    check_store(project)
