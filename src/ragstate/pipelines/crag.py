"""``crag``: retrieve, grade the retrieval, and refine it when the grade is low.

Corrective RAG (Yan et al., 2024), with a similarity-based retrieval evaluator in place
of the paper's trained one, and keyword search over the knowledge strips in place of
its web search:

1. Retrieve the ``query.crag.candidates`` documents nearest to the query in
   ``doc_embeddings``.
2. Grade: the evaluator score is the best cosine similarity retrieved. At or above
   ``query.crag.upper`` the retrieval is ``correct``; below ``query.crag.lower``
   ``incorrect``; between them ``ambiguous``. The answer carries the label
   (``Retrieval.confidence``) and the score (``notes.evaluator_score``).
3. ``correct``: the retrieved ranking stands. Otherwise refine, over the chunks
   (knowledge strips, from ``chunks``) of the ``query.crag.refine_pool`` nearest
   documents: a keyword search (BM25 over the strips) and a chunk-level search (the
   ``query.crag.strips`` best keyword strips, embedded now with the documents' model,
   compared with the query). The rankings are fused by RRF (k = 60): keyword and chunk
   rankings always, the first retrieval too when ``ambiguous`` (``incorrect`` discards
   it, as the paper does).

The passage of each document is its best strip: by keywords (``correct``), or by the
chunk-level similarity (refined).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ragstate.pipelines.base import (
    Found,
    Hit,
    QueryContext,
    Retriever,
    bm25,
    keywords,
    reciprocal_rank_fusion,
    unit,
)
from ragstate.stores import retrieval

#: the RRF constant of the refinement's fusion
RRF_K = 60
CORRECT, AMBIGUOUS, INCORRECT = "correct", "ambiguous", "incorrect"


def grade(score: float, upper: float, lower: float) -> str:
    """The evaluator's label for a retrieval whose best similarity is ``score``."""
    if score >= upper:
        return CORRECT
    return INCORRECT if score < lower else AMBIGUOUS


class Crag(Retriever):
    name = "crag"

    def retrieve(self, ctx: QueryContext, query: str, k: int) -> Found:
        params = ctx.spec.query.crag
        vector = ctx.encode("doc_embeddings", query)
        retrieved = ctx.nearest_documents(vector, max(k, params.candidates))
        if not retrieved:
            return Found([], confidence=INCORRECT, notes={"evaluator_score": None, "refined": False})
        evaluator = retrieved[0].score
        label = grade(evaluator, params.upper, params.lower)
        notes = {"evaluator_score": evaluator, "upper": params.upper, "lower": params.lower, "refined": False}
        terms = keywords(query)
        if label == CORRECT:
            top = retrieved[:k]
            strips = self.strips(ctx, [h.doc_id for h in top])
            hits = []
            for h in top:
                texts = strips.get(h.doc_id, [])
                scores = bm25(terms, [keywords(t) for _, t in texts])
                best = int(np.argmax(scores)) if texts else None
                hits.append(
                    Hit(
                        h.doc_id,
                        h.score,
                        passage=texts[best][1] if best is not None else "",
                        kind="doc_embeddings",
                        generation=h.generation,
                        details={"similarity": h.score, "chunk_id": texts[best][0] if best is not None else None},
                    )
                )
            return Found(hits, confidence=label, notes=notes)
        return self.refine(ctx, query, k, vector, label, retrieved, notes)

    def refine(
        self,
        ctx: QueryContext,
        query: str,
        k: int,
        vector: np.ndarray,
        label: str,
        retrieved: list[Hit],
        notes: dict,
    ) -> Found:
        params = ctx.spec.query.crag
        pool = ctx.nearest_documents(vector, max(params.refine_pool, len(retrieved)))
        strips = [(d, c, t) for d, texts in self.strips(ctx, [h.doc_id for h in pool]).items() for c, t in texts]
        terms = keywords(query)
        lexical = bm25(terms, [keywords(t) for _, _, t in strips])
        # Best keyword matches first; among equals, strips of nearer documents, in document order.
        near = {h.doc_id: rank for rank, h in enumerate(pool)}
        by_keyword = sorted(range(len(strips)), key=lambda i: (-lexical[i], near[strips[i][0]], i))
        chosen = by_keyword[: params.strips]
        embedded = ctx.embedder("doc_embeddings").embed([strips[i][2] for i in chosen]) if chosen else []
        q = unit(vector)
        semantic = {i: float(unit(v) @ q) for i, v in zip(chosen, embedded, strict=True)}
        keyword_docs = _docs_in_order([strips[i][0] for i in by_keyword if lexical[i] > 0])
        strip_docs = _docs_in_order([strips[i][0] for i in sorted(semantic, key=lambda i: -semantic[i])])
        rankings = [(keyword_docs, 1.0), (strip_docs, 1.0)]
        if label == AMBIGUOUS:
            rankings.append(([h.doc_id for h in retrieved], 1.0))
        fused = reciprocal_rank_fusion(rankings, RRF_K)
        ranked = sorted(fused, key=lambda d: -fused[d])[:k]
        best: dict[str, int] = {}
        for i, sim in semantic.items():
            d = strips[i][0]
            if d not in best or sim > semantic[best[d]]:
                best[d] = i
        for i in by_keyword:  # documents no embedded strip came from: their best keyword strip
            best.setdefault(strips[i][0], i)
        similarity = {h.doc_id: h.score for h in pool}
        gen = ctx.generation("chunks")
        hits = []
        for d in ranked:
            i = best.get(d)
            hits.append(
                Hit(
                    d,
                    fused[d],
                    passage=strips[i][2] if i is not None else "",
                    kind="chunks",
                    generation=gen,
                    details={
                        "chunk_id": strips[i][1] if i is not None else None,
                        "strip_similarity": semantic.get(i) if i is not None else None,
                        "keyword_score": lexical[i] if i is not None else None,
                        "similarity": similarity.get(d),
                    },
                )
            )
        notes.update(refined=True, pool=len(pool), strips_searched=len(strips), strips_embedded=len(chosen))
        return Found(hits, confidence=label, notes=notes)

    def strips(self, ctx: QueryContext, doc_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
        """``(chunk_id, text)`` of each document's chunks, in document order."""
        out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for d, c, text in retrieval.strips(ctx.session, ctx.table("chunks"), doc_ids):
            out[d].append((c, text))
        return out


def _docs_in_order(doc_ids: list[str]) -> list[str]:
    """Distinct documents in first-seen order (a ranking of strips → a ranking of documents)."""
    return list(dict.fromkeys(doc_ids))
