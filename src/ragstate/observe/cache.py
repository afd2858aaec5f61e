"""Observe the embedding cache as ``verify`` observes any artifact (deep observation only).

A cache entry is served in place of the model, so a bad one would spread to every
artifact built from it. Builds check each entry they read (dimension, finite, non-zero,
unit length), so a corrupt entry is never used; a deep observation also finds:

==========  ==================================================================
``corrupt``  a value that fails the quality checks, or a text that no longer
             hashes to its key
``mock``     identical values of texts the model reads differently (other token
             ids within its window) under one embedding recipe, or
             a sampled entry whose text the model (one of the spec's) re-embeds to
             something else (cosine under ``RECHECK_MIN_COSINE``)
==========  ==================================================================

Either is drift of ``embedding_cache``; apply removes those entries (the next build of
their texts embeds them afresh).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ragstate.artifacts.base import RECHECK_MIN_COSINE
from ragstate.artifacts.cache import decode_entry, embedding_fp, placeholders, value_problem
from ragstate.artifacts.desired import Desired
from ragstate.compute.embedders import Embedder, make_embedder
from ragstate.hashing import text_hash
from ragstate.spec.model import Spec
from ragstate.stores import embedding_cache
from ragstate.stores.base import Session, cosines


@dataclass(frozen=True)
class CacheFindings:
    """What a deep observation found in the embedding cache (keys ``model_fp:text_hash``)."""

    entries: int = 0
    corrupt: tuple[tuple[str, str], ...] = ()
    mock: tuple[str, ...] = ()
    #: groups of entries with identical values whose texts the model reads alike (not drift)
    duplicates: tuple[tuple[str, ...], ...] = ()


def observe_cache(spec: Spec, desired: Desired, session: Session) -> CacheFindings:
    """Audit every entry; re-embed a sample of each of the spec's embedding recipes."""
    corrupt: list[tuple[str, str]] = []
    entries = 0
    for fp, h, dim, n_tokens, normalized, value, text in embedding_cache.iter_entries(session):
        entries += 1
        k = embedding_cache.key(fp, h)
        if text is None:
            corrupt.append((k, "text is not valid UTF-8"))
            continue
        if text_hash(text) != h:
            corrupt.append((k, "text does not match its hash"))
            continue
        problem = value_problem(int(dim), None if n_tokens is None else int(n_tokens), bool(normalized), bytes(value))
        if problem:
            corrupt.append((k, problem))
    bad = {k for k, _ in corrupt}
    recipes = _recipes(spec, desired)
    mock: set[str] = set()
    duplicates: list[tuple[str, ...]] = []
    by_fp: dict[str, list[tuple[str, str, str | None, tuple[str, str]]]] = {}
    for row in embedding_cache.duplicates(session):
        by_fp.setdefault(row[0], []).append(row)
    for fp, rows in by_fp.items():
        # Identical values of texts the model reads alike are duplicates, not placeholders.
        embedder = recipes[fp][0] if fp in recipes else None
        texts = {h: t for _, h, t, _ in rows if isinstance(t, str)}
        fake, same = placeholders([(embedding_cache.key(fp, h), h, g) for _, h, _, g in rows], texts, embedder)
        mock.update(fake)
        duplicates += same
    mock -= bad
    n = spec.reconcile.sample_recheck
    if n:
        for fp, (embedder, output) in recipes.items():
            rows = embedding_cache.sample(session, fp, n, bad | mock)
            mock.update(embedding_cache.key(fp, h) for h in _disagreeing(embedder, output, rows))
    return CacheFindings(
        entries=entries, corrupt=tuple(sorted(corrupt)), mock=tuple(sorted(mock)), duplicates=tuple(duplicates)
    )


def _recipes(spec: Spec, desired: Desired) -> dict[str, tuple[Embedder, str]]:
    """The embedding recipes the spec's kinds use, with their embedders."""
    out: dict[str, tuple[Embedder, str]] = {}
    for d in desired.kinds:
        output, model = d.kind.embedding_output, d.recipe.model
        if output is None or model is None:
            continue
        embedder = make_embedder(model, d.model_spec(spec))
        out[embedding_fp(embedder.identity(), output)] = (embedder, output)
    return out


def _disagreeing(embedder: Embedder, output: str, rows: list[tuple[str, str, int, int | None, bytes]]) -> list[str]:
    if not rows:
        return []
    texts = [r[1] for r in rows]
    fresh = list(embedder.embed(texts)) if output == "vector" else embedder.embed_tokens(texts)
    out = []
    for (h, _, dim, n_tokens, value), new in zip(rows, fresh, strict=True):
        try:
            stored = decode_entry(dim, n_tokens, value)
        except ValueError:
            continue  # corrupt, reported above
        new = np.asarray(new, dtype=np.float32)
        if stored.shape != new.shape:
            out.append(h)
            continue
        if float(np.mean(cosines(np.atleast_2d(stored), np.atleast_2d(new)))) < RECHECK_MIN_COSINE:
            out.append(h)
    return out
