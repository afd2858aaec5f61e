"""Documents out of scope are deleted, never rebuilt, whatever their rows look like.

After narrowing ``source.formats``, apply once crashed with ``KeyError: 'jats/PMC….xml'``:
its audit found an out-of-scope document's vector broken (or identical to another's) and
planned to rebuild a document the scope no longer holds (issue 23).
"""

from __future__ import annotations

import numpy as np

from helpers import artifact_ids, set_vector

HASH = {"default": {"provider": "hash", "dimension": 32}}
NO_XML = {"formats": ["txt", "md", "jsonl"]}


def test_narrowing_formats_deletes_out_of_scope_documents_with_broken_vectors(make_project, corpus) -> None:
    everything = make_project(models=HASH)
    assert everything.apply().converged
    xml = sorted(d for d in artifact_ids(everything) if d.startswith("jats/"))
    assert len(xml) == 3
    store = everything.store
    set_vector(everything, xml[0], store.encode_vector(np.zeros(32, dtype=np.float32)))  # corrupt
    twin = store.encode_vector(np.full(32, 32**-0.5, dtype=np.float32))
    set_vector(everything, xml[1], twin)  # identical vectors of different texts: placeholders
    set_vector(everything, xml[2], twin)

    narrowed = make_project(models=HASH, source={"path": str(corpus), **NO_XML})
    plan = narrowed.plan()
    kind = plan.kind("doc_embeddings")
    assert kind.build_ids == () and sorted(kind.delete) == xml
    record = narrowed.apply(allow_destructive=True)
    assert record.converged and record.kinds["doc_embeddings"].deleted == 3
    assert not any(d.startswith("jats/") for d in artifact_ids(narrowed))
