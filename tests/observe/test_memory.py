"""What observation keeps in Python per document: counted, not timed (issue 20)."""

from __future__ import annotations

import gc
import importlib
import json
from pathlib import Path

from helpers import HASH_MODELS
from ragstate.stores.documents import DocRef


def write_jsonl(folder: Path, n: int, per_file: int = 50) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, n, per_file):
        lines = [
            json.dumps({"doc_id": f"d{i:05d}", "title": f"Title {i}", "abstract": f"Abstract of document {i}."})
            for i in range(start, min(n, start + per_file))
        ]
        (folder / f"shard-{start // per_file:04d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def held(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is kind)


def test_a_no_op_plan_holds_nothing_per_document(make_project, tmp_path) -> None:
    """Ten times the documents, the same number of document refs and ids held after a no-op plan: none."""
    counts = {}
    for n in (30, 300):
        corpus = write_jsonl(tmp_path / f"c{n}", n)
        project = make_project(source={"path": str(corpus)}, models=HASH_MODELS)
        assert project.apply().converged
        # Counted against what the process held before the plan: refs other tests left alive
        # (caches, fixtures not yet collected) are not this plan's.
        before = held(DocRef)
        plan = project.plan()
        assert plan.in_sync and plan.scope_size == n
        ids = sum(len(ids) for k in plan.kinds for ids in k.build.values()) + sum(len(k.delete) for k in plan.kinds)
        counts[n] = (held(DocRef) - before, ids)
        del plan
    assert counts[30] == counts[300] == (0, 0)


def test_verify_reads_the_vectors_of_its_sample_only(make_project, tmp_path, monkeypatch) -> None:
    """The re-embedded sample of a one-vector kind reads ``sample_recheck`` vectors, whatever the corpus size."""
    observe_module = importlib.import_module("ragstate.observe.observe")

    corpus = write_jsonl(tmp_path / "c", 120)
    project = make_project(source={"path": str(corpus)}, models=HASH_MODELS, reconcile={"sample_recheck": 4})
    assert project.apply().converged
    seen: list[int] = []
    real = observe_module.disagreeing

    def counting(store, embedder, keep):
        seen.append(len(keep))
        return real(store, embedder, keep)

    monkeypatch.setattr(observe_module, "disagreeing", counting)
    rows_read: list[int] = []
    with project.store.session() as s:
        real_query = type(s).query

    def query(self, sql, *args, **kwargs):
        rows = real_query(self, sql, *args, **kwargs)
        if "text_hash" in sql and "embedding" in str(kwargs.get("col", "")):
            rows_read.append(len(rows))
        return rows

    monkeypatch.setattr(type(s), "query", query)
    assert project.verify().in_sync
    assert seen == [4]
    assert sum(rows_read) == 4  # before: every row of the table (120), vectors included, to keep 4
