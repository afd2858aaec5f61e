"""``colbert``: candidates from document embeddings, reranked by late interaction (MaxSim).

1. The ``query.colbert.candidates`` documents nearest to the query in ``doc_embeddings``.
2. The query is encoded token by token with the model and tokenizer of
   ``token_embeddings`` (special tokens included, rows unit length, as the chunks were).
3. Each chunk of a candidate scores MaxSim(Q, D) = Σ over query tokens of the largest
   dot product with any of the chunk's token vectors; a document scores its best chunk's
   MaxSim (passage-level late interaction, the document as its best passage), divided by
   the number of query tokens so that it reads as a mean cosine in [-1, 1].

The passage is the best chunk's text. By default the token vectors are the configured
model's own outputs, not a model trained for late interaction (``status`` says so);
a real ColBERT checkpoint plugs in as an embedder plugin (docs/pipelines.md).
"""

from __future__ import annotations

import numpy as np

from ragstate.artifacts.token_embeddings import decode_matrix
from ragstate.pipelines.base import Found, Hit, QueryContext, Retriever
from ragstate.stores import retrieval

#: token vectors scored per matrix product (bounds memory: 32768 × 384 float32 is 48 MiB)
TOKENS_PER_BATCH = 32768


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """Late-interaction score: Σ_i max_j ⟨query_i, doc_j⟩ (ColBERT, Khattab and Zaharia, 2020)."""
    return float((query @ doc.T).max(axis=1).sum())


def maxsim_many(query: np.ndarray, docs: list[np.ndarray]) -> np.ndarray:
    """``maxsim(query, d)`` for each matrix of ``docs``, as one matrix product over all their
    rows (a product per chunk costs more in BLAS calls than in arithmetic)."""
    if not docs:
        return np.zeros(0, dtype=np.float32)
    sims = query @ np.vstack(docs).T
    starts = np.cumsum([0] + [len(d) for d in docs[:-1]])
    return np.maximum.reduceat(sims, starts, axis=1).sum(axis=0)


class Colbert(Retriever):
    name = "colbert"

    def retrieve(self, ctx: QueryContext, query: str, k: int) -> Found:
        n = max(k, ctx.spec.query.colbert.candidates)
        candidates = ctx.nearest_documents(ctx.encode("doc_embeddings", query), n)
        if not candidates:
            return Found([])
        q = ctx.embedder("token_embeddings").embed_tokens([query])[0].astype(np.float32)
        best: dict[str, tuple[float, str]] = {}
        keys: list[tuple[str, str]] = []
        matrices: list[np.ndarray] = []

        def score_batch() -> None:
            for (doc_id, chunk_id), score in zip(keys, maxsim_many(q, matrices), strict=True):
                if doc_id not in best or score > best[doc_id][0]:
                    best[doc_id] = (float(score), chunk_id)
            keys.clear()
            matrices.clear()

        tokens = 0
        for doc_id, chunk_id, n_tokens, dim, blob in retrieval.token_matrices(
            ctx.session, ctx.table("token_embeddings"), [c.doc_id for c in candidates]
        ):
            keys.append((doc_id, chunk_id))
            matrices.append(decode_matrix(blob, n_tokens, dim))
            tokens += n_tokens
            if tokens >= TOKENS_PER_BATCH:
                score_batch()
                tokens = 0
        score_batch()
        dense = {c.doc_id: (rank, c.score) for rank, c in enumerate(candidates, start=1)}
        ranked = sorted(best, key=lambda d: (-best[d][0], dense[d][0]))[:k]
        texts = chunk_texts(ctx, [(d, best[d][1]) for d in ranked])
        gen = ctx.generation("token_embeddings")
        hits = [
            Hit(
                doc_id,
                best[doc_id][0] / len(q),
                passage=texts.get((doc_id, best[doc_id][1]), ""),
                kind="token_embeddings",
                generation=gen,
                details={
                    "maxsim": best[doc_id][0],
                    "chunk_id": best[doc_id][1],
                    "candidate_rank": dense[doc_id][0],
                    "candidate_score": dense[doc_id][1],
                },
            )
            for doc_id in ranked
        ]
        return Found(hits, notes={"query_tokens": len(q), "candidates": len(candidates)})


def chunk_texts(ctx: QueryContext, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Text of each ``(doc_id, chunk_id)`` from the active ``chunks`` generation."""
    if not keys:
        return {}
    wanted = set(keys)
    rows = retrieval.chunk_texts(
        ctx.session, ctx.table("chunks"), sorted({d for d, _ in keys}), sorted({c for _, c in keys})
    )
    return {(d, c): text for d, c, text in rows if (d, c) in wanted}
