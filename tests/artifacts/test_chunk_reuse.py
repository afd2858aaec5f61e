"""Chunk-level reuse: editing one paragraph of a long article re-embeds only its chunk."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import edit
from helpers import query

pytestmark = pytest.mark.slow

ARTICLE = "jats/PMC12429890.xml"  # the first document in path order: 29,000 characters


def test_editing_one_paragraph_re_embeds_only_its_chunk(make_project, corpus: Path) -> None:
    project = make_project(pipelines=["noderag"], scope={"first": 1})
    first = project.apply()
    assert first.converged
    leaves = first.kinds["chunk_embeddings"].rows
    assert leaves > 30 and first.kinds["chunk_embeddings"].embedded == leaves
    before = dict(query(project, "chunk_embeddings", "SELECT chunk_id, text_hash FROM {t}"))
    stamps = dict(query(project, "chunk_embeddings", "SELECT chunk_id, run_id FROM {t}"))

    edit(
        corpus / ARTICLE,
        "Fruits were stored at ambient temperature until fully ripened.",
        "Fruits were kept at room temperature until they were fully ripe.",
    )
    plan = project.plan()
    assert plan.drift == {"chunks": {"stale": 1}, "chunk_embeddings": {"stale": 1}}
    record = project.apply()
    counts = record.kinds["chunk_embeddings"]
    assert record.converged
    assert (counts.embedded, counts.reused) == (1, leaves - 1)

    after = dict(query(project, "chunk_embeddings", "SELECT chunk_id, text_hash FROM {t}"))
    assert len(after) == leaves
    assert len(set(after) - set(before)) == 1 and len(set(before) - set(after)) == 1
    # The kept chunks keep their ids and their vectors (rows are rewritten, values kept).
    kept = set(after) & set(before)
    assert all(after[c] == before[c] for c in kept)
    new_stamps = dict(query(project, "chunk_embeddings", "SELECT chunk_id, run_id FROM {t}"))
    assert all(new_stamps[c] == record.run_id for c in after)
    assert {stamps[c] for c in kept} == {first.run_id}
    assert project.verify().in_sync
