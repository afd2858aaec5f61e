"""Which artifact kinds each retrieval pipeline reads (the seeds' requirements).

=============  ================================================  =========================
pipeline       artifact kinds it reads                           (plus, built first)
=============  ================================================  =========================
``basic``      doc_embeddings
``crag``       doc_embeddings, chunks (knowledge strips)
``hyde``       doc_embeddings
``colbert``    doc_embeddings, token_embeddings                  chunks
``noderag``    chunks (sections → chunks), chunk_embeddings
``graphrag``   entities (with relations), entity_embeddings      chunks
``hybrid``     doc_embeddings, fulltext
=============  ================================================  =========================

The spec enables pipelines; the plan covers the union of their kinds and of the kinds
those depend on; a kind that several pipelines need (``doc_embeddings`` for basic, CRAG,
HyDE, ColBERT and hybrid) is built once. A pipeline is ready when every kind it reads,
and every kind those are built from, is.
"""

from __future__ import annotations

from collections.abc import Iterable

from ragstate.errors import SpecError
from ragstate.spec.model import Spec

#: why hyde cannot answer without a generator (the query's error, and its readiness reason)
HYDE_NEEDS_GENERATOR = (
    "pipeline hyde needs a text generator to write its hypothetical passage, and none is configured: "
    "add one under generators (e.g. an OpenAI-compatible server: {provider: openai, url: "
    "http://localhost:8000/v1, model: NAME}) and name it in query.hyde.generator (docs/retrieval.md)"
)

REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "basic": ("doc_embeddings",),
    "crag": ("doc_embeddings", "chunks"),
    "hyde": ("doc_embeddings",),
    "colbert": ("doc_embeddings", "token_embeddings"),
    "noderag": ("chunks", "chunk_embeddings"),
    "graphrag": ("entities", "entity_embeddings"),
    "hybrid": ("doc_embeddings", "fulltext"),
}


def kinds_for(pipelines: tuple[str, ...]) -> tuple[str, ...]:
    """The distinct kinds the given pipelines read, in first-mention order."""
    kinds: list[str] = []
    for pipeline in pipelines:
        if pipeline not in REQUIREMENTS:
            raise SpecError(
                f"pipelines: '{pipeline}' is not available in this version of ragstate "
                f"(available: {', '.join(REQUIREMENTS)})"
            )
        for kind in REQUIREMENTS[pipeline]:
            if kind not in kinds:
                kinds.append(kind)
    return tuple(kinds)


def unusable(spec: Spec, pipelines: Iterable[str]) -> dict[str, str]:
    """Pipelines the spec enables but that cannot answer whatever the data: pipeline -> why.

    Their readiness says so (``status``, the report), rather than "ready" and a refusal.
    """
    return {"hyde": HYDE_NEEDS_GENERATOR} if "hyde" in pipelines and spec.query.hyde.generator is None else {}
