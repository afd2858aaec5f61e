"""The daemon's Prometheus metrics of embedding tokens and their cost."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ragstate.apply.record import KindCounts, RunRecord
from ragstate.reconcile.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_tokens_and_cost_are_counted_by_kind_and_model() -> None:
    metrics = Metrics()
    models = {"doc_embeddings": "api", "chunk_embeddings": "local"}
    for _ in range(2):
        record = RunRecord(run_id="r", command="reconcile")
        record.kinds["doc_embeddings"] = KindCounts(tokens=1500, cost=0.03)
        record.kinds["chunk_embeddings"] = KindCounts(tokens=700)  # a local model: no price, no cost
        metrics.record_run("converged", 1.0, "reconcile", record, 0.0, models)
    seen = samples(metrics)
    api, local = (("kind", "doc_embeddings"), ("model", "api")), (("kind", "chunk_embeddings"), ("model", "local"))
    assert seen[("ragstate_embedding_tokens_total", api)] == 3000
    assert seen[("ragstate_embedding_tokens_total", local)] == 1400
    assert abs(seen[("ragstate_embedding_cost_total", api)] - 0.06) < 1e-12
    assert ("ragstate_embedding_cost_total", local) not in seen
