"""``basic``: the documents whose embeddings are nearest to the query's.

The query is embedded with the model of ``doc_embeddings`` and compared by cosine
distance: exhaustively by sqlite-vec on SQLite, through the HNSW index on PostgreSQL.
The score is the cosine similarity; the passage is the embedded text (title and summary).
"""

from __future__ import annotations

from ragstate.pipelines.base import Found, QueryContext, Retriever


class Basic(Retriever):
    name = "basic"

    def retrieve(self, ctx: QueryContext, query: str, k: int) -> Found:
        return Found(ctx.nearest_documents(ctx.encode("doc_embeddings", query), k))
