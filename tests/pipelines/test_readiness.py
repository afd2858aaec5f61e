"""The readiness guard: a query on drifted data is refused, answered with a warning, or healed first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import edit
from helpers import HASH_MODELS, artifact_ids, cli, count, execute, set_vector
from ragstate.errors import NotReady

TEXT = "polyester fiber tension"


def test_fail_warn_heal_on_missing_token_matrices(built) -> None:
    make, _ = built
    project = make()
    execute(project, "token_embeddings", "DELETE FROM {t} WHERE doc_id = 'seeds.md'")
    reason = "token_embeddings: drift 1 incomplete"
    colbert = project.pipeline("colbert")
    assert colbert.readiness().reasons == (reason,)

    with pytest.raises(NotReady) as refused:
        colbert.retrieve(TEXT, 3)
    assert refused.value.reasons == [reason] and refused.value.exit_code == 2
    assert "colbert is not ready" in str(refused.value) and "ragstate reconcile" in str(refused.value)

    warned = colbert.retrieve(TEXT, 3, readiness_mode="warn")
    assert not warned.ready and warned.warnings == (f"colbert is not ready: {reason}",)
    assert warned[0].doc_id == "tension.md" and warned.healed is None
    # The other pipelines do not read token matrices: they answer as before.
    assert project.pipeline("basic").retrieve(TEXT, 3).ready

    before = count(project, "token_embeddings")
    healed = colbert.retrieve(TEXT, 3, readiness_mode="heal")
    assert healed.ready and not healed.warnings and healed[0].doc_id == "tension.md"
    assert healed.healed["status"] == "converged" and set(healed.healed["kinds"]) == {"token_embeddings"}
    assert healed.healed["kinds"]["token_embeddings"]["built"] == 1
    assert count(project, "token_embeddings") > before
    assert project.status().pipelines["colbert"].ready
    assert project.pipeline("colbert").retrieve(TEXT, 3).ready  # fail mode answers again


def test_source_drift_and_heal_limited_to_the_pipelines_kinds(built) -> None:
    make, corpus = built
    project = make()
    # an edit of the title, which the document embedding reads (one past its text is no drift)
    edit(corpus / "acai.txt", old="Phenolic Quantification", new="Phenolic Acid Quantification")
    execute(project, "entity_embeddings", "DELETE FROM {t} WHERE doc_id = 'seeds.md'")
    with pytest.raises(NotReady, match="doc_embeddings: drift 1 stale"):
        project.pipeline("basic").retrieve(TEXT, 3)
    healed = project.pipeline("basic").retrieve(TEXT, 3, readiness_mode="heal")
    # Only what basic reads is rebuilt: graphrag's missing entity vectors wait for their own heal.
    assert set(healed.healed["kinds"]) == {"doc_embeddings"} and healed.healed["kinds"]["doc_embeddings"]["built"] == 1
    status = project.status().pipelines
    assert status["basic"].ready and not status["graphrag"].ready
    with project.store.session() as s:
        commands = [r[0] for r in s.query("SELECT command FROM {runs} ORDER BY started_at")]
    assert commands[-1] == "heal"


def test_the_cli_exit_codes_of_the_guard(built, tmp_path: Path) -> None:
    make, corpus = built
    project = make()
    execute(project, "chunk_embeddings", "DELETE FROM {t} WHERE doc_id = 'acai.txt'")
    code, out = cli(project, corpus, tmp_path, "query", "noderag", TEXT, "--json")
    assert code == 2 and out["error_type"] == "NotReady"
    assert out["reasons"] == ["chunk_embeddings: drift 1 incomplete"]
    code, out = cli(project, corpus, tmp_path, "query", "noderag", TEXT, "--json", "--readiness", "warn")
    assert code == 0 and out["ready"] is False and out["warnings"] and out["results"]
    code, out = cli(project, corpus, tmp_path, "query", "noderag", TEXT, "--json", "--readiness", "heal")
    assert code == 0 and out["ready"] is True and out["healed"]["kinds"]["chunk_embeddings"]["built"] == 1
    code, out = cli(project, corpus, tmp_path, "query", "noderag", TEXT, "--json", "--readiness", "maybe")
    assert code == 1 and "readiness mode 'maybe'" in out["error"]


def test_nothing_built_is_refused_in_every_mode(make_project) -> None:
    project = make_project(pipelines=["basic"])
    with pytest.raises(NotReady, match="no active generation"):
        project.pipeline("basic").retrieve("seeds", 3, readiness_mode="warn")


def test_vectors_of_another_model_are_never_compared_with_the_query(built) -> None:
    make, _ = built
    # The store holds all-MiniLM-L6-v2 vectors; a spec naming another model (the hash
    # embedder stands in for it) cannot encode queries comparable with them.
    project = make(models={"default": {"provider": "hash", "dimension": 384}}, pipelines=["basic"])
    readiness = project.pipeline("basic").readiness()
    assert not readiness.ready and "another recipe" in readiness.reasons[0]
    with pytest.raises(NotReady, match="another model"):
        project.pipeline("basic").retrieve(TEXT, 3, readiness_mode="warn")


def test_corrupt_vectors_an_audit_found_keep_the_pipeline_not_ready_until_an_apply(make_project, backend) -> None:
    """Issue 15, item 7: NaN vectors were invisible to status and the guard (both read shallowly)."""
    project = make_project(pipelines=["hybrid"], models=HASH_MODELS)
    assert project.apply().converged
    # pgvector refuses NaN in a vector column: there, the corrupt rows are vectors not of unit length
    value = np.full(32, np.nan if backend == "sqlite" else 5.0, dtype=np.float32)
    for doc_id in artifact_ids(project)[:3]:
        set_vector(project, doc_id, project.store.encode_vector(value))
    hybrid = project.pipeline("hybrid")
    assert hybrid.readiness().ready, "no audit has looked yet: a shallow check reads no vector"

    report = project.verify()
    assert report.drift["doc_embeddings"] == {"corrupt": 3}
    status = project.status()
    assert not status.pipelines["hybrid"].ready
    assert "doc_embeddings: an audit (deep) found 3 corrupt" in status.pipelines["hybrid"].reasons[0]
    ready, _, degraded, _ = status.conditions["kinds"]["doc_embeddings"]
    assert (ready["status"], ready["reason"]) == ("False", "AuditFound")
    assert (degraded["status"], degraded["reason"]) == ("True", "AuditFound")
    assert not hybrid.readiness().ready
    with pytest.raises(NotReady, match="3 corrupt"):
        hybrid.retrieve("seeds", 3)
    assert not project.status().pipelines["hybrid"].ready, "a second shallow look keeps what the audit found"

    record = project.apply()
    assert record.converged and record.kinds["doc_embeddings"].built == 3
    assert project.status().pipelines["hybrid"].ready
    _, _, degraded, _ = project.status().conditions["kinds"]["doc_embeddings"]
    assert degraded["status"] == "False"
    assert hybrid.retrieve("seeds", 3).ready
