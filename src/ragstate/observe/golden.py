"""Golden queries: known-item queries, and the recall one generation's vectors give them.

A known-item query names the document (or documents) it must find. By default a
document's title is the query and the document itself the answer, drawn from the
documents in scope; a user's own pairs come from a JSONL file. ``measure`` runs the
queries against one generation's own table with nearest-neighbour search
(``Store.nearest``) and counts the queries whose documents are among the top k:
recall@k. Any generation can be measured the same way, so a new one is compared with
the active one on the same queries before it is switched in; retrieval benchmarks can
use the same functions.

=======================  ===============================================================
``title_queries``        up to n "title → document" queries (ambiguous titles left out)
``load_queries``         the user's queries from a JSONL file
``without_documents``    the queries without some documents (quarantined ones)
``ranked_documents``     per query vector, the distinct documents of the nearest rows
``recall_at_k``          the share of each query's documents found in its top k, averaged
``measure``              embed the queries, rank, count: a ``GoldenResult``
=======================  ===============================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ragstate.compute.embedders import Embedder
from ragstate.errors import GoldenSetError
from ragstate.hashing import text_hash
from ragstate.stores.base import Session, Store, VectorSearch

#: queries whose documents were missed, listed in a result (the count is always complete)
MISSES_LISTED = 5


@dataclass(frozen=True)
class GoldenQuery:
    """A query and the documents it must find."""

    text: str
    doc_ids: tuple[str, ...]


@dataclass(frozen=True)
class GoldenResult:
    """Recall@k of one generation over a set of known-item queries."""

    k: int
    queries: int
    #: mean over the queries of the share of their documents found in the top k
    recall: float
    #: the first few queries whose documents were not all found
    missed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def title_queries(rows: Iterable[tuple[str, str]], n: int) -> tuple[GoldenQuery, ...]:
    """Up to ``n`` queries "a document's title finds the document" from ``(doc_id, title)``.

    Titles shared by several documents are left out (no single right answer), and so
    are titles of one word. The choice is stable: documents are taken in the order of a
    hash of their id, so the same scope gives the same queries on every run and machine.
    """
    rows = list(rows)
    by_title: dict[str, list[str]] = {}
    for doc_id, title in rows:
        words = title.split()
        if len(words) >= 2:
            by_title.setdefault(" ".join(words).casefold(), []).append(doc_id)
    unique = {doc_ids[0] for doc_ids in by_title.values() if len(doc_ids) == 1}
    texts = {doc_id: title.strip() for doc_id, title in rows if doc_id in unique}
    chosen = sorted(unique, key=text_hash)[:n]
    return tuple(GoldenQuery(texts[d], (d,)) for d in chosen)


def without_documents(queries: Sequence[GoldenQuery], doc_ids: Iterable[str]) -> tuple[GoldenQuery, ...]:
    """``queries`` with ``doc_ids`` removed from their answers; a query left with no
    answer is left out."""
    out = set(doc_ids)
    if not out:
        return tuple(queries)
    kept = (GoldenQuery(q.text, tuple(d for d in q.doc_ids if d not in out)) for q in queries)
    return tuple(q for q in kept if q.doc_ids)


def load_queries(path: Path) -> tuple[GoldenQuery, ...]:
    """The queries of a JSONL file: ``{"query": "...", "doc_id": "..."}`` (or ``"doc_ids":
    [...]``) a line; blank lines are skipped.

    Raises:
        GoldenSetError: the file cannot be read, or a line is not such an object (names
            the file and line).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GoldenSetError(f"{path}: cannot read golden queries: {exc.strerror}", path=path) from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldenSetError(f"{path}:{number}: not JSON ({exc.msg})", path=path, line=number) from None
        query = record.get("query") if isinstance(record, dict) else None
        ids = record.get("doc_ids", [record.get("doc_id")]) if isinstance(record, dict) else None
        if not isinstance(query, str) or not query.strip():
            raise GoldenSetError(f'{path}:{number}: needs "query": a non-empty string', path=path, line=number)
        if not isinstance(ids, list) or not ids or not all(isinstance(d, str) and d for d in ids):
            raise GoldenSetError(
                f'{path}:{number}: needs "doc_id": a string, or "doc_ids": a list of strings', path=path, line=number
            )
        out.append(GoldenQuery(query, tuple(ids)))
    if not out:
        raise GoldenSetError(f"{path}: holds no queries", path=path)
    return tuple(out)


def ranked_documents(
    store: Store, session: Session, table: str, column: str, vectors: np.ndarray, k: int, *, fetch: int = 1
) -> list[list[str]]:
    """For each query vector, the distinct documents of its nearest rows, best first, at most ``k``.

    ``fetch`` > 1 reads ``k * fetch`` rows, for tables with several rows per document
    (chunks), so that ``k`` distinct documents are usually found.
    """
    out = []
    search = store.capability(VectorSearch)
    for vector in vectors:
        seen: dict[str, None] = {}
        for doc_id, _ in search.nearest(session, table, column, vector, k * fetch, key="doc_id"):
            seen.setdefault(doc_id)
            if len(seen) == k:
                break
        out.append(list(seen))
    return out


def recall_at_k(ranked: Sequence[Sequence[str]], queries: Sequence[GoldenQuery], k: int) -> GoldenResult:
    """Mean over ``queries`` of the share of their documents among the first ``k`` of ``ranked``."""
    if not queries:
        return GoldenResult(k=k, queries=0, recall=0.0)
    total = 0.0
    missed = []
    for query, found in zip(queries, ranked, strict=True):
        top = set(found[:k])
        share = sum(1 for d in query.doc_ids if d in top) / len(query.doc_ids)
        total += share
        if share < 1.0:
            missed.append(query.text)
    return GoldenResult(
        k=k, queries=len(queries), recall=round(total / len(queries), 4), missed=tuple(missed[:MISSES_LISTED])
    )


def measure(
    store: Store,
    session: Session,
    table: str,
    column: str,
    embedder: Embedder | np.ndarray,
    queries: Sequence[GoldenQuery],
    k: int,
    *,
    fetch: int = 1,
) -> GoldenResult:
    """Recall@k of ``queries`` on the vectors in ``table.column``, the queries embedded by
    ``embedder`` (or given as its vectors, to measure two generations of one model with
    one embedding of the queries)."""
    if not queries:
        return GoldenResult(k=k, queries=0, recall=0.0)
    vectors = embedder if isinstance(embedder, np.ndarray) else embed_queries(embedder, queries)
    return recall_at_k(ranked_documents(store, session, table, column, vectors, k, fetch=fetch), queries, k)


def embed_queries(
    embedder: Embedder,
    queries: Sequence[GoldenQuery],
    batch_size: int = 64,
    run: Callable[[Callable[[], np.ndarray]], np.ndarray] = lambda call: call(),
) -> np.ndarray:
    """The queries' vectors, embedded ``batch_size`` at a time, each batch through ``run``
    (apply retries transient failures there); a batch that runs out of memory is halved
    for the rest (as apply's batches are, ``apply.batching``)."""
    texts = [q.text for q in queries]
    parts = []
    size, i = max(1, batch_size), 0
    while i < len(texts):
        try:
            parts.append(run(partial(embedder.embed, texts[i : i + size])))
        except MemoryError:
            if size == 1:
                raise
            size //= 2
            continue
        i += size
    return np.vstack(parts)
