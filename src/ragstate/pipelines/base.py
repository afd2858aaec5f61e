"""What every retrieval path shares: the result values, the query context, ranking helpers.

A retriever (one module per pipeline) reads only the active generation of each kind its
pipeline needs, through ``QueryContext``, inside one read transaction, and returns
``Found``: ranked documents with the passage that matched and the artifact kind whose
rows decided the rank. ``pipelines.query`` guards it with the readiness check, adds
titles and any passage the retriever could not take from the store, and times it.

==================  ===================================================================
``Hit``             one ranked document: id, title, score, passage, kind + generation
``Retrieval``       a query's answer: hits in rank order, readiness, warnings, notes
``QueryContext``    the session, the active generations and their tables, embedders
``Retriever``       ``check(spec)`` before anything else, ``retrieve(ctx, query, k)``
==================  ===================================================================
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ragstate.artifacts.base import Recipe
from ragstate.artifacts.desired import Desired
from ragstate.compute.embedders import Embedder, embed_query, make_embedder
from ragstate.spec.model import Spec
from ragstate.stores.base import Session, Store, VectorSearch
from ragstate.stores.ledger import Generation
from ragstate.stores.schema import TableDef

#: characters of a passage kept when it is cut from a longer text
PASSAGE_CHARS = 700


@dataclass(frozen=True)
class Hit:
    """One ranked document."""

    doc_id: str
    score: float
    title: str = ""
    #: the text that matched: a chunk, a window of the full text, or the embedded summary
    passage: str = ""
    #: the artifact kind whose rows decided the rank, and the generation read
    kind: str = ""
    generation: int | None = None
    #: what the pipeline adds: the chunk, the entities, the fused ranks, ...
    details: Mapping[str, Any] = field(default_factory=dict)
    #: where the passage lies, when it is a chunk: its first and last page (PDF; else
    #: None) and its section path ("Methods > Design"), so an answer can cite them
    page: int | None = None
    page_end: int | None = None
    section: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Retrieval:
    """The answer to one query: documents in rank order (iterate it, index it, ``len`` it).

    ``ready`` says whether the pipeline's data was converged when it answered (after a
    heal, if one ran); ``warnings`` say why not, in ``warn`` mode. ``healed`` summarises
    the run a ``heal`` made. ``notes`` hold what the pipeline reports beyond the ranking
    (CRAG's evaluator score, HyDE's hypothetical passage, GraphRAG's matched entities).
    """

    pipeline: str
    query: str
    results: tuple[Hit, ...]
    #: the active generation each kind was read from
    generations: Mapping[str, int]
    ready: bool
    readiness: str
    warnings: tuple[str, ...] = ()
    healed: Mapping[str, Any] | None = None
    #: CRAG: ``correct``, ``ambiguous`` or ``incorrect``; None for the other pipelines
    confidence: str | None = None
    notes: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> Hit:
        return self.results[i]

    @property
    def doc_ids(self) -> list[str]:
        return [h.doc_id for h in self.results]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["results"] = [h.to_dict() for h in self.results]
        return data


@dataclass
class Found:
    """What a retriever returns: hits best first (titles may be left empty), and notes."""

    hits: list[Hit]
    notes: dict[str, Any] = field(default_factory=dict)
    confidence: str | None = None


@dataclass
class QueryContext:
    """What a retriever reads: one session inside a read transaction, the active generation
    of each kind of its pipeline, and the spec's embedders (loaded once per process)."""

    spec: Spec
    store: Store
    session: Session
    desired: Desired
    generations: Mapping[str, Generation]
    #: what ``Retriever.prepare`` returned
    prepared: Any = None
    _vectors: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def generation(self, kind: str) -> int:
        return self.generations[kind].generation

    def recipe(self, kind: str) -> Recipe:
        """The recipe the active generation was built under (the spec's, once converged)."""
        gen = self.generations[kind]
        return replace(self.desired.kind(kind).recipe, params=gen.recipe, fingerprint=gen.recipe_fp)

    def tables(self, kind: str) -> tuple[TableDef, ...]:
        """The active generation's tables of ``kind``."""
        return self.desired.kind(kind).kind.tables(self.recipe(kind), self.generation(kind))

    def table(self, kind: str) -> str:
        return self.tables(kind)[0].name

    def embedder(self, kind: str) -> Embedder:
        """The model that made ``kind``'s vectors (``query.readiness`` refuses any other)."""
        d = self.desired.kind(kind)
        assert d.recipe.model is not None, f"{kind} holds no vectors"
        # held by a rollback: the model its generation was built with (``pin_holds``)
        return make_embedder(d.recipe.model, d.model_spec(self.spec))

    def encode(self, kind: str, text: str) -> np.ndarray:
        """``text`` embedded as ``kind``'s vectors were (cached per query)."""
        key = (kind, text)
        if key not in self._vectors:
            self._vectors[key] = embed_query(self.embedder(kind), [text])[0]
        return self._vectors[key]

    def nearest_documents(self, vector: np.ndarray, n: int) -> list[Hit]:
        """The ``n`` documents whose ``doc_embeddings`` are nearest to ``vector``; score = cosine."""
        gen = self.generation("doc_embeddings")
        search = self.store.capability(VectorSearch)
        rows = search.nearest(self.session, self.table("doc_embeddings"), "embedding", vector, n)
        return [Hit(doc_id, 1.0 - d, kind="doc_embeddings", generation=gen) for doc_id, d in rows]


class Retriever(ABC):
    """One pipeline's retrieval path."""

    name: str

    def check(self, spec: Spec) -> None:
        """Raise when the spec lacks what this pipeline needs at query time (before any
        readiness check or heal); nothing by default."""
        return None

    def prepare(self, spec: Spec, query: str) -> Any:
        """Work that needs no store, done before the read transaction opens (HyDE's
        generator call); its result reaches ``retrieve`` as ``ctx.prepared``."""
        return None

    @abstractmethod
    def retrieve(self, ctx: QueryContext, query: str, k: int) -> Found:
        """The ``k`` best documents for ``query``, best first."""


# --- text helpers ---------------------------------------------------------------------------

#: words too common to count as keywords (English)
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    using used use based study studies among within via vs versus""".split()
)
_WORD = re.compile(r"\w+(?:[-']\w+)*")


def keywords(text: str) -> list[str]:
    """The words of ``text`` that carry meaning: lower case, stop words and one-letter words left out."""
    return [w for w in (m.group().lower() for m in _WORD.finditer(text)) if len(w) > 1 and w not in STOPWORDS]


def bm25(query: Sequence[str], texts: Sequence[Sequence[str]], *, k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Okapi BM25 of each tokenised text for the query words, with IDF over ``texts`` themselves."""
    n = len(texts)
    if not n or not query:
        return [0.0] * n
    lengths = [len(t) for t in texts]
    mean = sum(lengths) / n or 1.0
    counts = [Counter(t) for t in texts]
    terms = set(query)
    df = {w: sum(1 for c in counts if w in c) for w in terms}
    idf = {w: math.log(1.0 + (n - df[w] + 0.5) / (df[w] + 0.5)) for w in terms}
    scores = []
    for c, length in zip(counts, lengths, strict=True):
        s = 0.0
        for w in terms:
            tf = c.get(w, 0)
            if tf:
                s += idf[w] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / mean))
        scores.append(s)
    return scores


def best_window(text: str, query: str, width: int = PASSAGE_CHARS) -> str:
    """About ``width`` characters of ``text`` starting at the sentence that holds the most of
    the query's keywords (cut at a sentence end where it can); the opening when none occurs."""
    if len(text) <= width:
        return text.strip()
    words = set(keywords(query))
    starts = [0] + [m.end() for m in re.finditer(r"(?<=[.!?])\s+|\n+", text)]
    best, best_score = 0, 0
    for start, end in zip(starts, starts[1:] + [len(text)], strict=True):
        score = len(words & set(keywords(text[start:end])))
        if score > best_score:
            best, best_score = start, score
    window = text[best : best + width]
    end = max(window.rfind(". "), window.rfind("\n"))
    return (window[: end + 1] if end > width // 2 else window).strip()


def cut(text: str, width: int = PASSAGE_CHARS) -> str:
    """``text`` cut to about ``width`` characters at a word boundary."""
    text = text.strip()
    if len(text) <= width:
        return text
    space = text.rfind(" ", 0, width)
    return text[: space if space > width // 2 else width] + " …"


def reciprocal_rank_fusion(rankings: Sequence[tuple[Sequence[str], float]], k: int) -> dict[str, float]:
    """RRF: each document gets Σ weight / (k + rank) over the rankings it appears in (rank from 1)."""
    fused: dict[str, float] = {}
    for ranking, weight in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (k + rank)
    return fused


def unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
