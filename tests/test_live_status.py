"""Progress of a running apply is committed with each batch: ``status`` elsewhere shows it."""

from __future__ import annotations

from pathlib import Path

from embedders import HookEmbedder
from helpers import HASH_MODELS, write_tiny_corpus

N = 60


def test_status_from_another_connection_shows_the_running_apply(
    make_project, embedder_plugin, tmp_path: Path, monkeypatch
):
    embedder_plugin("hook", HookEmbedder)
    write_tiny_corpus(tmp_path / "docs", N)
    overrides = {
        "source": {"path": str(tmp_path / "docs")},
        "models": {"default": {**HASH_MODELS["default"], "provider": "hook"}},
        "reconcile": {"batch_size": 4},
    }
    applier = make_project(**overrides)
    watcher = make_project(**overrides)  # its own connections, as another terminal would have
    seen = []

    def hook(call: int) -> None:
        if call == 6:
            # Five batches were handed to the writer; its queue holds at most two and it
            # writes one, so at least two are committed, with their progress.
            seen.append(watcher.status())

    monkeypatch.setattr(HookEmbedder, "hook", staticmethod(hook))
    record = applier.apply()
    (status,) = seen
    (running,) = status.running
    assert running["run_id"] == record.run_id and running["command"] == "apply"
    progress = running["progress"]
    assert progress["kind"] == "doc_embeddings" and progress["total"] == N
    assert 8 <= progress["done"] < N and progress["quarantined"] == 0
    assert watcher.status().running == [] and record.converged
