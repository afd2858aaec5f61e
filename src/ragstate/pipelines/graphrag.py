"""``graphrag``: the query's entities, a walk over the relations, documents that share them.

1. Entities in the query, matched to stored entities three ways (each stored entity
   keeps its strongest match as its activation, 0..1):

   * the entities the spec's extractor (``artifacts.entities``, the same one that built
     the graph) finds in the query, by canonical key (activation 1);
   * every run of one to five words of the query whose canonical key is a stored
     entity's, so that lower-case or sentence-case queries still hit names (activation 1);
   * by embedding: each query entity and the whole query, embedded with the model of
     ``entity_embeddings``, against the stored entity vectors; a match needs cosine
     similarity of at least ``query.graphrag.entity_similarity`` to a query entity, or
     ``query.graphrag.query_similarity`` to the whole query (a sentence is never as close
     to a name as a name is), activation = the similarity; at most
     ``query.graphrag.seeds`` stored entities per probe. When none of the three
     matches anything, the ``seeds`` entities nearest to the whole query are the start,
     whatever their similarity (activation = it), so a query in words the extractor does
     not see as names still reaches the graph.

2. A walk of ``query.graphrag.hops`` (0-2) over the relations (``co_occurs``,
   ``abbreviates``; both directions, weights summed over the corpus): a neighbour gets
   ``query.graphrag.hop_decay`` times its source's activation; the ``fanout`` strongest
   neighbours (activation × relation weight) are kept per hop.

3. Each document scores Σ activation × idf over the activated entities it holds (idf =
   ln(1 + documents / documents holding the entity), so an entity named everywhere
   counts little), plus Σ activation(source) × activation(target) over its relations
   whose two ends are activated. The passage is the chunk holding the most of that weight.
"""

from __future__ import annotations

import math
from collections import defaultdict

from ragstate.artifacts.entities import entity_id
from ragstate.compute.extractors import entity_key, make_extractor
from ragstate.pipelines.base import Found, Hit, QueryContext, Retriever
from ragstate.pipelines.colbert import chunk_texts
from ragstate.stores import ledger, retrieval
from ragstate.stores.base import VectorSearch

#: longest run of query words looked up as an entity name
MAX_NGRAM = 5
#: stored rows asked of the vector index per query entity (entities repeat per document)
ROWS_PER_SEED = 8


class Graphrag(Retriever):
    name = "graphrag"

    def retrieve(self, ctx: QueryContext, query: str, k: int) -> Found:
        entities, relations = (t.name for t in ctx.tables("entities"))
        found, activation, names = _seeds(ctx, query, entities)
        seeds = dict(activation)
        _walk(ctx, relations, activation)
        if not activation:
            return Found([], notes={"query_entities": found, "matched": {}})
        score, per_chunk, shared, edges, weight = _score(ctx, entities, relations, activation)
        ranked = sorted(score, key=lambda d: (-score[d], d))[:k]
        best = _best_chunks(per_chunk, ranked)
        texts = chunk_texts(ctx, list(best.items()))
        if len(names) < len(activation):
            names.update(retrieval.entity_names(ctx.session, entities, sorted(set(activation) - set(names))))
        gen = ctx.generation("entities")
        hits = [
            Hit(
                d,
                score[d],
                passage=texts.get((d, best[d]), "") if d in best else "",
                kind="entities",
                generation=gen,
                details={
                    "chunk_id": best.get(d),
                    "entities": [names.get(e, e) for e in sorted(shared[d], key=lambda e: -weight[e])],
                    "relations": edges.get(d, 0),
                },
            )
            for d in ranked
        ]
        return Found(
            hits,
            notes={
                "query_entities": found,
                "matched": {names.get(e, e): round(a, 4) for e, a in sorted(seeds.items(), key=lambda x: -x[1])},
                "activated": len(activation),
            },
        )


def _seeds(ctx: QueryContext, query: str, entities: str) -> tuple[list[str], dict[str, float], dict[str, str]]:
    """Step 1: the entities the extractor finds in the query, the stored entities it
    activates (entity id -> activation) and the canonical names of those matched by key."""
    params = ctx.spec.query.graphrag
    recipe = ctx.recipe("entities").params
    extractor = make_extractor(recipe["extractor_name"], dict(recipe["options"]))
    found = [e.key for findings in extractor.extract([query]) for e in findings.entities]
    words = query.split()
    grams = {
        entity_key(" ".join(words[i : i + n]).strip(".,;:!?()[]\"'"))
        for n in range(1, MAX_NGRAM + 1)
        for i in range(len(words) - n + 1)
    }
    by_text = {entity_id(key): key for key in set(found) | grams if key}
    activation: dict[str, float] = {}
    names: dict[str, str] = {}
    for eid, canonical in retrieval.entity_names(ctx.session, entities, sorted(by_text)):
        activation[eid] = 1.0
        names[eid] = canonical
    embedder = ctx.embedder("entity_embeddings")
    probes = [(key, params.entity_similarity) for key in dict.fromkeys(found)]
    probes.append((query, params.query_similarity))
    vectors = embedder.embed([text for text, _ in probes])
    nearest: list[tuple[str, float]] = []
    for vector, (_, threshold) in zip(vectors, probes, strict=True):
        rows = ctx.store.capability(VectorSearch).nearest_items(
            ctx.session,
            ctx.table("entity_embeddings"),
            "embedding",
            vector,
            params.seeds * ROWS_PER_SEED,
            key="entity_id",
        )
        # An entity has one row per document that names them, all with one vector.
        distinct: dict[str, float] = {}
        for _, eid, distance in rows:
            distinct.setdefault(eid, 1.0 - distance)
        nearest = list(distinct.items())[: params.seeds]
        for eid, sim in nearest:
            if sim >= threshold:
                activation[eid] = max(activation.get(eid, 0.0), sim)
    if not activation:
        # Nothing named in the query is in the graph: start from the entities nearest
        # to the whole query (the last probe), however weak, rather than answer nothing.
        activation = dict(nearest)
    return found, activation, names


def _walk(ctx: QueryContext, relations: str, activation: dict[str, float]) -> None:
    """Step 2: ``hops`` walks over the relations, adding the ``fanout`` strongest
    neighbours of each hop to ``activation`` (in place)."""
    params = ctx.spec.query.graphrag
    for _ in range(params.hops):
        frontier = sorted(activation)
        if not frontier:
            break
        strength: dict[str, float] = defaultdict(float)
        reach: dict[str, float] = {}
        for source, target, weight in retrieval.relation_weights(ctx.session, relations, frontier):
            for a, b in ((source, target), (target, source)):
                if a in activation and b not in activation:
                    value = activation[a] * params.hop_decay
                    reach[b] = max(reach.get(b, 0.0), value)
                    strength[b] += value * float(weight)
        for eid in sorted(strength, key=lambda e: -strength[e])[: params.fanout]:
            activation[eid] = reach[eid]


def _score(
    ctx: QueryContext, entities: str, relations: str, activation: dict[str, float]
) -> tuple[dict[str, float], dict[tuple[str, str], float], dict[str, set[str]], dict[str, int], dict[str, float]]:
    """Step 3: each document's score, each chunk's share of it, the activated entities each
    document holds, its relations between activated entities, and each entity's weight."""
    active = sorted(activation)
    df = retrieval.entity_document_counts(ctx.session, entities, active)
    # Documents of the generation (those with no entity too): the N of the idf.
    total = ledger.documents_built(ctx.session, "entities", ctx.generation("entities"))
    weight = {e: activation[e] * math.log(1.0 + total / df[e]) for e in active if df.get(e)}
    score: dict[str, float] = defaultdict(float)
    per_chunk: dict[tuple[str, str], float] = defaultdict(float)
    shared: dict[str, set[str]] = defaultdict(set)
    for doc_id, chunk_id, eid in retrieval.entity_mentions(ctx.session, entities, sorted(weight)):
        if eid not in shared[doc_id]:
            score[doc_id] += weight[eid]
            shared[doc_id].add(eid)
        per_chunk[(doc_id, chunk_id)] += weight[eid]
    edges: dict[str, int] = defaultdict(int)
    for doc_id, chunk_id, source, target in retrieval.relations_among(ctx.session, relations, active):
        value = activation[source] * activation[target]
        score[doc_id] += value
        per_chunk[(doc_id, chunk_id)] += value
        edges[doc_id] += 1
    return score, per_chunk, shared, edges, weight


def _best_chunks(per_chunk: dict[tuple[str, str], float], ranked: list[str]) -> dict[str, str]:
    """The passage of each ranked document: its chunk holding the most of its weight."""
    best: dict[str, str] = {}
    for (d, c), value in sorted(per_chunk.items()):
        if d not in best or value > per_chunk[(d, best[d])]:
            best[d] = c
    return {d: best[d] for d in ranked if d in best}
