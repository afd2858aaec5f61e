"""Executors: the Ray executor converges to the same store as the local one, row by row."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import write_short_corpus
from ragstate import Project, spec_from_dict
from ragstate.apply.executors import LocalExecutor, RayExecutor, open_executor
from ragstate.stores import ledger

#: every kind of basic, noderag and hybrid: document and chunk vectors, chunks, full text
PIPELINES = ["basic", "noderag", "hybrid"]
#: columns that differ between two runs by design (which run wrote the row, and when)
VOLATILE = {"run_id", "created_at", "updated_at"}


def _rows(project: Project) -> dict[str, list[tuple[Any, ...]]]:
    """Every artifact and ledger row of the active generations, sorted, volatile columns out."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with project.store.session() as s:
        gens = {g.kind: g for g in ledger.generations(project.store, s) if g.state == "active"}
        for d in project.desired().kinds:
            for table in d.kind.tables(d.recipe, gens[d.name].generation):
                keep = [c for c in table.column_names if c not in VOLATILE]
                rows = s.query("SELECT * FROM {t}", t=table.name)
                names = list(table.column_names)
                out[f"{d.name}/{table.name}"] = sorted(tuple(r[names.index(c)] for c in keep) for r in rows)
        out["ledger"] = sorted(s.query("SELECT kind, generation, doc_id, source_hash, recipe_fp, items FROM {ledger}"))
    return out


def _same(a: Any, b: Any, store: Any) -> bool:
    if not isinstance(a, np.ndarray) and a == b:
        return True
    try:  # vectors: the same model in another process may differ in the last bits
        va, vb = np.asarray(store.decode_vector(a)), np.asarray(store.decode_vector(b))
    except (ValueError, TypeError):
        return False
    return va.shape == vb.shape and bool(np.allclose(va, vb, atol=1e-5))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a Ray cluster and two actors loading the model, on two shared cores
def test_ray_executor_converges_to_the_local_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pytest.importorskip("ray", reason="the ray extra is part of the dev extras (CI installs it)")
    corpus = write_short_corpus(tmp_path / "corpus")

    def store(name: str) -> dict[str, Any]:
        if backend == "sqlite":
            return {"url": f"sqlite:///{tmp_path / name}.db"}
        return {"url": request.getfixturevalue("pg_url"), "schema": f"{name}_{os.getpid()}_{id(tmp_path) % 10**6}"}

    base = {"source": str(corpus), "pipelines": PIPELINES, "reconcile": {"batch_size": 2}}
    local = Project(spec_from_dict({**base, "store": store("local")}, base_dir=tmp_path))
    ray_ = Project(
        spec_from_dict(
            {**base, "store": store("ray"), "executor": {"type": "ray", "workers": 2, "cpus_per_worker": 0.5}},
            base_dir=tmp_path,
        )
    )
    try:
        first = local.apply()
        second = ray_.apply()
        assert first.converged and second.converged, (first.error, second.error)
        assert first.executor == "local" and second.executor.startswith("ray (2 workers")
        assert {k: (c.built, c.rows) for k, c in first.kinds.items()} == {
            k: (c.built, c.rows) for k, c in second.kinds.items()
        }
        # Locally each text is embedded once (the embedding cache); the actors, once a batch.
        assert all(c.embedded <= second.kinds[k].embedded for k, c in first.kinds.items())
        a, b = _rows(local), _rows(ray_)
        assert set(a) == set(b)
        for table in a:
            assert len(a[table]) == len(b[table]), table
            for ra, rb in zip(a[table], b[table], strict=True):
                assert len(ra) == len(rb)
                assert all(_same(x, y, local.store) for x, y in zip(ra, rb, strict=True)), (table, ra[:3])
        assert ray_.verify().in_sync
        assert ray_.plan().in_sync  # and a second apply has nothing to do
    finally:
        local.close()
        ray_.close()


def test_executor_from_spec(tmp_path: Path) -> None:
    spec = spec_from_dict({"store": f"sqlite:///{tmp_path / 's.db'}", "source": str(tmp_path)})
    assert isinstance(open_executor(spec), LocalExecutor)
    spec = spec_from_dict({"store": f"sqlite:///{tmp_path / 's.db'}", "source": str(tmp_path), "executor": "ray"})
    executor = open_executor(spec)
    assert isinstance(executor, RayExecutor) and executor.workers == 2
    executor.close()  # nothing was started, nothing to stop


class ElsewhereExecutor:
    """An executor that is not the local one: builds in this process, as an actor would
    remotely, and hands back the error of a batch whose build raised (the Ray contract)."""

    description = "elsewhere"
    startup_seconds = 0.0

    def __init__(self) -> None:
        self.batches = 0
        self.errors = 0

    def map(self, kind, recipe, ctx, batches):
        for key, docs in batches:
            self.batches += 1
            try:
                yield key, kind.build(docs, recipe, ctx)
            except Exception as exc:
                self.errors += 1
                yield key, exc

    def close(self) -> None:
        pass


def test_a_batch_failing_on_the_executor_is_rebuilt_here_and_isolated(
    make_project, embedder_plugin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose build raised elsewhere is built again in the applying process, through
    the same splitting and quarantine as a local build; every other batch is used as built."""
    from embedders import PickyEmbedder
    from helpers import HASH_MODELS, check_store, write_tiny_corpus
    from ragstate.apply import apply as apply_module

    embedder_plugin("picky", PickyEmbedder)
    write_tiny_corpus(tmp_path / "tiny", 24)
    (tmp_path / "tiny" / "txt" / "p1.txt").write_text("Bad one POISON\n\nThis document makes the model fail.\n")
    executor = ElsewhereExecutor()
    monkeypatch.setattr(apply_module, "open_executor", lambda spec: executor)
    project = make_project(
        source={"path": str(tmp_path / "tiny")},
        models={"default": {**HASH_MODELS["default"], "provider": "picky"}},
        reconcile={"batch_size": 5},
    )
    record = project.apply()

    assert record.converged and record.executor == "elsewhere"
    assert executor.batches == 5 and executor.errors == 1
    assert (record.kinds["doc_embeddings"].built, record.quarantined) == (24, {"doc_embeddings": 1})
    assert [e.item for e in project.quarantine_list()] == ["txt/p1.txt"]
    check_store(project)
    assert project.plan().in_sync
