"""``hybrid``: document embeddings and full text, fused by reciprocal rank fusion.

Two rankings of ``query.hybrid.candidates`` documents each: the nearest document
embeddings (as ``basic``), and the full-text index of ``fulltext`` (FTS5 bm25 on
SQLite, ``ts_rank`` on PostgreSQL; a document matches when it holds any of the query's
words, stemmed for ``english``). RRF (Cormack et al., 2009) fuses them by rank alone,
so the two scales never need calibrating: a document scores Σ weight / (rrf_k + rank)
with ``query.hybrid.vector_weight`` and ``text_weight``. The passage is the window of
the document's full text holding most of the query's keywords.
"""

from __future__ import annotations

from ragstate.pipelines.base import Found, Hit, QueryContext, Retriever, best_window, reciprocal_rank_fusion
from ragstate.stores import retrieval
from ragstate.stores.base import FullTextSearch


class Hybrid(Retriever):
    name = "hybrid"

    def retrieve(self, ctx: QueryContext, query: str, k: int) -> Found:
        params = ctx.spec.query.hybrid
        dense = [h.doc_id for h in ctx.nearest_documents(ctx.encode("doc_embeddings", query), params.candidates)]
        table = ctx.tables("fulltext")[0]
        search = ctx.store.capability(FullTextSearch)
        text = [d for d, _ in search.fulltext_search(ctx.session, table, query, params.candidates, any_word=True)]
        fused = reciprocal_rank_fusion(((dense, params.vector_weight), (text, params.text_weight)), params.rrf_k)
        # A document only a zero-weight ranking found has no score: it is not a result.
        ranked = sorted((d for d in fused if fused[d] > 0), key=lambda d: -fused[d])[:k]
        content = retrieval.fulltext_contents(ctx.session, table.name, ranked)
        vector_rank = {d: r for r, d in enumerate(dense, start=1)}
        text_rank = {d: r for r, d in enumerate(text, start=1)}
        hits = []
        for d in ranked:
            # The kind that served it: the ranking that gave it the larger share of its score.
            parts = {
                "doc_embeddings": params.vector_weight / (params.rrf_k + vector_rank[d]) if d in vector_rank else 0.0,
                "fulltext": params.text_weight / (params.rrf_k + text_rank[d]) if d in text_rank else 0.0,
            }
            kind = max(parts, key=lambda name: parts[name])
            hits.append(
                Hit(
                    d,
                    fused[d],
                    passage=best_window(content.get(d, ""), query),
                    kind=kind,
                    generation=ctx.generation(kind),
                    details={"vector_rank": vector_rank.get(d), "text_rank": text_rank.get(d)},
                )
            )
        return Found(hits, notes={"vector_candidates": len(dense), "text_matches": len(text)})
