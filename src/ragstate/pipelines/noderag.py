"""``noderag``: nearest chunks, expanded through the chunk hierarchy, aggregated to documents.

1. Seeds: the ``query.noderag.chunks`` chunks whose embeddings are nearest to the query
   (score = cosine similarity).
2. Expansion: each seed's parent section (its heading) and its sibling chunks (the other
   chunks of that section), read from the active ``chunks`` generation.
3. Aggregation: a section scores its best seed plus ``query.noderag.sibling_weight`` times
   the similarities of its other seeds (a section that matches in several chunks is
   stronger evidence than one chunk alone); a document scores its best section.

The passage is the best seed chunk; ``details.context`` holds the section heading and
up to ``query.noderag.context`` sibling chunks on each side of it, in document order.
"""

from __future__ import annotations

from collections import defaultdict

from ragstate.pipelines.base import Found, Hit, QueryContext, Retriever
from ragstate.stores import retrieval
from ragstate.stores.base import VectorSearch


class Noderag(Retriever):
    name = "noderag"

    def retrieve(self, ctx: QueryContext, query: str, k: int) -> Found:
        params = ctx.spec.query.noderag
        seeds = ctx.store.capability(VectorSearch).nearest_items(
            ctx.session,
            ctx.table("chunk_embeddings"),
            "embedding",
            ctx.encode("chunk_embeddings", query),
            params.chunks,
            key="chunk_id",
        )
        if not seeds:
            return Found([])
        sims = {(d, c): 1.0 - dist for d, c, dist in seeds}
        docs = sorted({d for d, _, _ in seeds})
        chunks = ctx.table("chunks")
        parents = {
            (d, c): p
            for d, c, p in retrieval.chunk_parents(ctx.session, chunks, docs, sorted({c for _, c in sims}))
            if (d, c) in sims
        }
        # The expansion: the seeds' sections (headings) and every chunk under them.
        wanted = {(d, p) for (d, _), p in parents.items() if p is not None}
        section_ids = sorted({p for _, p in wanted})
        sections: dict[tuple[str, str], str] = {}
        members: dict[tuple[str, str], list[tuple[int, str, str]]] = defaultdict(list)
        for d, c, p, level, seq, text in retrieval.sections_and_members(ctx.session, chunks, docs, section_ids):
            if level == 0 and (d, c) in wanted:
                sections[(d, c)] = text
            elif level == 1 and (d, p) in wanted:
                members[(d, p)].append((seq, c, text))
        scored: dict[tuple[str, str | None], list[tuple[float, str]]] = defaultdict(list)
        for (d, c), sim in sims.items():
            scored[(d, parents.get((d, c)))].append((sim, c))
        best: dict[str, tuple[float, str | None, str, int]] = {}
        for (d, section), found in scored.items():
            found.sort(reverse=True)
            score = found[0][0] + params.sibling_weight * sum(s for s, _ in found[1:])
            if d not in best or score > best[d][0]:
                best[d] = (score, section, found[0][1], len(found))
        ranked = sorted(best, key=lambda d: -best[d][0])[:k]
        gen = ctx.generation("chunk_embeddings")
        hits = []
        for d in ranked:
            score, section, chunk_id, n_seeds = best[d]
            siblings = sorted(members.get((d, section), [])) if section is not None else []
            at = next((i for i, (_, c, _) in enumerate(siblings) if c == chunk_id), None)
            passage = siblings[at][2] if at is not None else ""
            around = siblings[max(0, at - params.context) : at + params.context + 1] if at is not None else []
            hits.append(
                Hit(
                    d,
                    score,
                    passage=passage,
                    kind="chunk_embeddings",
                    generation=gen,
                    details={
                        "chunk_id": chunk_id,
                        "similarity": sims[(d, chunk_id)],
                        "section_id": section,
                        "section": sections.get((d, section), "") if section is not None else "",
                        "seeds_in_section": n_seeds,
                        "context": [text for _, _, text in around],
                    },
                )
            )
        return Found(hits, notes={"seed_chunks": len(seeds)})
