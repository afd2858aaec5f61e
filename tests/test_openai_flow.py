"""End to end on both backends with an embedding API: a real OpenAI-compatible server on
127.0.0.1 serving all-MiniLM-L6-v2 (``openai_server.Embeddings``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import api_model, edit, projects
from helpers import artifact_ids, vector
from ragstate.errors import CostLimitExceeded, EmbedderResponseError
from ragstate.plan.render import format_cost, render_plan
from ragstate.stores import ledger

N = 18  # documents in the small corpus
PRICE = 0.02  # per million tokens


def states(project) -> dict[int, str]:
    with project.store.session() as s:
        return {g.generation: g.state for g in ledger.generations(project.store, s, "doc_embeddings")}


@pytest.mark.slow
def test_build_edit_verify_change_dimensions_and_roll_back(make_project, embedding_api, corpus: Path, tmp_path) -> None:
    api = embedding_api.reply
    model = {"default": api_model(embedding_api.url, price_per_million_tokens=PRICE)}
    project = make_project(models=model, reconcile={"sample_recheck": 6})

    plan = project.plan()
    assert plan.estimate.tokens > 0 and plan.estimate.cost == pytest.approx(plan.estimate.tokens * PRICE / 1e6)
    assert f"cost ~{format_cost(plan.estimate.cost)}" in render_plan(plan)
    record = project.apply(plan)
    counts = record.kinds["doc_embeddings"]
    assert record.converged and counts.built == N and counts.tokens > 0
    assert counts.cost == pytest.approx(counts.tokens * PRICE / 1e6)
    assert record.to_dict()["cost"] == pytest.approx(counts.cost)

    # The same texts through the local model give the same vectors (float32 rounding).
    with projects(lambda **o: {**project.spec.model_dump(mode="json", exclude={"models"}), **o}, tmp_path) as make:
        local = make(store={"url": f"sqlite:///{tmp_path / 'local.db'}"})
        assert local.apply().converged
        for doc_id in artifact_ids(project):
            np.testing.assert_allclose(vector(project, doc_id), vector(local, doc_id), atol=1e-5)

    # An edit re-embeds that one text (plus the endpoint's one-word probe), nothing else.
    sent = api.texts
    edit(corpus / "text/PMC12429868.txt", new="")  # no change to the embedded text: served from the cache
    target = next(p for p in sorted(corpus.rglob("*.txt")))
    target.write_text("A brand new title\n\nAn abstract about kiwifruit seeds.\n", encoding="utf-8")
    record = project.apply()
    assert record.converged and record.kinds["doc_embeddings"].embedded == 1
    assert api.texts - sent == 2
    assert project.verify().in_sync

    # The API silently serves another model under the same name: verify's re-embedded sample disagrees.
    api.changed = True
    report = project.verify()
    assert report.drift["doc_embeddings"].get("mock", 0) > 0
    api.changed = False
    assert project.verify().in_sync

    # Another output size is a new recipe: a new generation, verified and switched in; then rolled back.
    short = make_project(models={"default": {**model["default"], "dimension": None, "dimensions": 128}})
    plan = short.plan()
    assert plan.drift["doc_embeddings"]["recipe"] == N
    assert "model.dimension: 384 → 128" in plan.kind("doc_embeddings").changes
    record = short.apply(plan)
    assert record.converged and record.kinds["doc_embeddings"].switched, record.error
    assert states(short) == {1: "retired", 2: "active"}
    assert vector(short, artifact_ids(short)[0]).shape == (128,)
    assert short.verify().in_sync
    back = project.rollback("doc_embeddings")
    assert back.rollback["switched"] == {"doc_embeddings": {"from": 2, "to": 1}}
    assert vector(project, artifact_ids(project)[0]).shape == (384,)
    assert project.verify().in_sync


def test_a_run_dearer_than_max_cost_is_refused_and_nothing_is_sent(make_project, embedding_api) -> None:
    model = {"default": api_model(embedding_api.url, price_per_million_tokens=1000.0)}
    project = make_project(models=model, reconcile={"max_cost": 0.5})
    cost = project.plan().estimate.cost
    assert cost is not None and cost > 0.5
    with pytest.raises(CostLimitExceeded, match="reconcile.max_cost is 0.5") as info:
        project.apply()
    assert info.value.exit_code == 1 and info.value.cost == cost
    assert embedding_api.requests == []  # not even the probe
    with project.store.session() as s:
        assert s.scalar("SELECT count(*) FROM {ledger}") == 0
        assert s.query("SELECT status FROM {runs}")[0][0] == "refused"
    retry = {"initial_delay_s": 0.01, "jitter_s": 0.01}
    allowed = make_project(models=model, reconcile={"max_cost": cost + 1, "retry": retry})

    # A wrong answer (after the probe passed) stops the run; nothing of it is written.
    embedding_api.reply.faults = [None, "dimension"]
    with pytest.raises(EmbedderResponseError, match="383 dimensions"):
        allowed.apply()
    with project.store.session() as s:
        assert s.scalar("SELECT count(*) FROM {ledger}") == 0

    # Rate limited, then a server error: retried (after Retry-After), and the run converges.
    embedding_api.reply.faults = [None, "429", "500"]
    record = allowed.apply()
    assert record.converged and record.kinds["doc_embeddings"].built == N
    assert "HTTP 429" in str(record.faults) and "HTTP 500" in str(record.faults)


def test_a_document_the_api_refuses_is_quarantined_and_the_rest_converges(
    make_project, embedding_api, corpus: Path
) -> None:
    (corpus / "text/refused.txt").write_text("A title the API refuses\n\nREFUSE-ME in the abstract.\n")
    embedding_api.reply.reject = "REFUSE-ME"
    project = make_project(models={"default": api_model(embedding_api.url)})
    record = project.apply()
    counts = record.kinds["doc_embeddings"]
    assert (counts.built, counts.quarantined) == (N, 1)
    (entry,) = project.quarantine_list()
    assert entry.doc_id == "text/refused.txt" and entry.reason == "rejected_by_model" and "HTTP 400" in entry.message

    # Queries embed through the same provider.
    embedding_api.requests.clear()
    hits = project.query("basic", "seed germination and climate", k=3, readiness="warn")
    assert len(list(hits)) == 3
    assert [body["input"] for _, _, body in embedding_api.requests] == [["seed germination and climate"]]
