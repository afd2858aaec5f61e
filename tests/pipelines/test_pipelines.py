"""The seven pipelines: what they need, sharing, readiness, and the seeds' mixed scenario."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import ALL_PIPELINES
from helpers import execute, query
from ragstate import spec_from_dict
from ragstate.artifacts.desired import desired_state
from ragstate.cli import app

N_SHORT = 6
ALL_KINDS = (
    "doc_embeddings",
    "chunks",
    "chunk_embeddings",
    "token_embeddings",
    "entities",
    "entity_embeddings",
    "fulltext",
)


def test_registry_maps_every_pipeline_to_its_kinds(tmp_path: Path) -> None:
    spec = spec_from_dict(
        {"store": "sqlite:///x.db", "source": str(tmp_path), "pipelines": ALL_PIPELINES}, base_dir=tmp_path
    )
    desired = desired_state(spec)
    assert desired.pipelines == {
        "basic": ("doc_embeddings",),
        "crag": ("doc_embeddings", "chunks"),
        "hyde": ("doc_embeddings",),
        "colbert": ("doc_embeddings", "chunks", "token_embeddings"),
        "noderag": ("chunks", "chunk_embeddings"),
        "graphrag": ("chunks", "entities", "entity_embeddings"),
        "hybrid": ("doc_embeddings", "fulltext"),
    }
    order = [k.name for k in desired.kinds]
    assert sorted(order) == sorted(ALL_KINDS)
    for upstream, downstream in [
        ("chunks", "chunk_embeddings"),
        ("chunks", "token_embeddings"),
        ("chunks", "entities"),
        ("entities", "entity_embeddings"),
    ]:
        assert order.index(upstream) < order.index(downstream)
    # A dependent kind's recipe names its upstream's, so upstream recipe drift flows down.
    chunks_fp = desired.kind("chunks").recipe.fingerprint
    assert desired.kind("chunk_embeddings").recipe.params["upstream"] == chunks_fp
    assert "not a ColBERT checkpoint" in desired.kind("token_embeddings").recipe.note


@pytest.mark.slow
def test_basic_crag_hyde_compute_document_embeddings_once(make_project) -> None:
    project = make_project(pipelines=["basic", "crag", "hyde"])
    record = project.apply()
    assert record.converged and set(record.kinds) == {"doc_embeddings", "chunks"}
    assert record.kinds["doc_embeddings"].embedded == 18 and record.kinds["doc_embeddings"].built == 18
    assert all(p.ready for name, p in project.status().pipelines.items() if name != "hyde")
    # hyde's data is built, but with no generator configured it cannot answer: not ready, saying why
    assert "hyde needs a text generator" in project.status().pipelines["hyde"].reasons[0]


@pytest.mark.slow
def test_mixed_scenario_one_reconcile_computes_only_what_is_missing(built) -> None:
    make, _ = built
    project = make()
    # ColBERT lacks token matrices for two documents; GraphRAG lacks every entity vector.
    lacking = ["acai.txt", "seeds.md"]
    matrices = int(
        query(project, "token_embeddings", "SELECT count(*) FROM {t} WHERE doc_id = ANY(?)", (lacking,))[0][0]
    )
    execute(project, "token_embeddings", "DELETE FROM {t} WHERE doc_id = ANY(?)", (lacking,))
    execute(project, "entity_embeddings", "DELETE FROM {t}")
    distinct = int(query(project, "entities", "SELECT count(DISTINCT canonical) FROM {t}")[0][0])

    status = project.status()
    ready = {name: p.ready for name, p in status.pipelines.items()}
    assert ready == {p: p not in ("colbert", "graphrag", "hyde") for p in ALL_PIPELINES}  # hyde: no generator
    assert status.pipelines["colbert"].completeness["token_embeddings"] == round((N_SHORT - 2) / N_SHORT, 4)
    assert status.pipelines["graphrag"].completeness["entity_embeddings"] == 0.0
    assert any("token_embeddings" in r for r in status.pipelines["colbert"].reasons)

    record = project.reconcile()
    assert record.converged
    assert set(record.kinds) == {"token_embeddings", "entity_embeddings"}
    tokens, entities = record.kinds["token_embeddings"], record.kinds["entity_embeddings"]
    # Every text was embedded when the store was built: the embedding cache serves each
    # distinct one once (an entity however many documents name it), the model nothing.
    assert (tokens.built, tokens.embedded, tokens.cache_hits, tokens.reused) == (2, 0, matrices, 0)
    assert (entities.built, entities.embedded, entities.cache_hits) == (N_SHORT, 0, distinct)
    assert all(p.ready for name, p in project.status().pipelines.items() if name != "hyde")  # no generator


@pytest.mark.slow
def test_status_json_and_exit_codes(built, tmp_path: Path) -> None:
    make, corpus = built
    project = make()
    spec = {"store": project.spec.store.model_dump(by_alias=True, exclude_none=True)}
    spec |= {"source": {"path": str(corpus)}, "pipelines": ALL_PIPELINES}
    # a generator for hyde (never called by status): without one hyde is not ready (issue 23)
    spec |= {"generators": {"local": {"url": "http://127.0.0.1:9/v1", "model": "m"}}}
    spec |= {"query": {"hyde": {"generator": "local"}}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(spec, default=str))))
    runner = CliRunner()
    result = runner.invoke(app, ["status", "-c", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["pipelines"]) == set(ALL_PIPELINES)
    assert all(p["ready"] for p in data["pipelines"].values())
    assert "not a ColBERT checkpoint" in data["kinds"]["token_embeddings"]["note"]
    assert data["kinds"]["chunks"]["items"] > data["kinds"]["chunks"]["built"] == N_SHORT

    execute(project, "entity_embeddings", "DELETE FROM {t} WHERE doc_id = 'seeds.md'")
    result = runner.invoke(app, ["status", "-c", str(path), "--json"])
    assert result.exit_code == 2
    graphrag = json.loads(result.output)["pipelines"]["graphrag"]
    assert graphrag["ready"] is False and graphrag["reasons"] == ["entity_embeddings: drift 1 incomplete"]
    text = runner.invoke(app, ["status", "-c", str(path)]).output
    assert "graphrag  NOT READY" in text and "per-token outputs of all-MiniLM-L6-v2" in text


def test_init_writes_a_spec_with_every_pipeline(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "ragstate.yaml"
    result = CliRunner().invoke(
        app,
        [
            "init",
            "--source",
            str(corpus),
            "--store",
            f"sqlite:///{tmp_path / 'rag.db'}",
            "--pipelines",
            ",".join(ALL_PIPELINES),
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(out.read_text())
    assert data["pipelines"] == ALL_PIPELINES
    plan = CliRunner().invoke(app, ["plan", "-c", str(out), "--json"])
    assert plan.exit_code == 2
    drift = json.loads(plan.output)["drift"]
    assert set(drift) == set(ALL_KINDS)
    assert all(d == {"missing": 18} for d in drift.values())
