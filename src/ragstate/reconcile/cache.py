"""The embedding cache's commands: its report (size, per embedding recipe, recent use) and eviction."""

from __future__ import annotations

from ragstate.artifacts.cache import evict as cache_evict
from ragstate.artifacts.cache import references as cache_references
from ragstate.errors import SpecError
from ragstate.reconcile.reports import CacheReport
from ragstate.reconcile.run import RunContext, writer_lock
from ragstate.stores import embedding_cache, records
from ragstate.stores.schema import EMBEDDING_CACHE


def status(ctx: RunContext) -> CacheReport:
    """How big the embedding cache is, per embedding recipe, and how recent runs used it."""
    with ctx.store.session() as s:
        if ctx.store.columns(s, EMBEDDING_CACHE.name) is None:  # never migrated: empty
            return CacheReport(enabled=ctx.spec.cache.enabled, max_bytes=int(ctx.spec.cache.max_mb * 2**20))
    return _report(ctx)


def evict(ctx: RunContext, mode: str = "limit") -> CacheReport:
    """Evict embedding-cache entries (holding the writer lock); report what is left.

    Args:
        mode: ``limit``: entries no artifact references, least recently used first,
            until the cache fits ``cache.max_mb`` (what every apply does);
            ``unreferenced``: every entry no artifact references; ``everything``:
            every entry (the next builds embed their texts again).

    Raises:
        SpecError: an unknown mode.
        StoreLocked: another process is writing the store (``reconcile.lock``).
    """
    if mode not in ("limit", "unreferenced", "everything"):
        raise SpecError(f"unknown eviction mode {mode!r}: use limit, unreferenced or everything")
    with writer_lock(ctx, command="cache evict"):
        if mode == "everything":
            with ctx.store.transaction() as s:
                before = embedding_cache.stats(s)
                evicted, freed = embedding_cache.clear(s), before.bytes
        else:
            evicted, freed = cache_evict(ctx.store, ctx.spec.cache.max_mb, everything=mode == "unreferenced")
        return _report(ctx, evicted, freed)


def _report(ctx: RunContext, evicted: int = 0, freed: int = 0) -> CacheReport:
    with ctx.store.session() as s:
        stats = embedding_cache.stats(s)
        unreferenced = embedding_cache.unreferenced(s, cache_references(ctx.store, s))
        runs = records.recent(ctx.store, s, limit=10)
    return CacheReport(
        enabled=ctx.spec.cache.enabled,
        entries=stats.entries,
        bytes=stats.bytes,
        max_bytes=int(ctx.spec.cache.max_mb * 2**20),
        per_recipe={fp: {"entries": n, "bytes": b} for fp, (n, b) in stats.per_recipe.items()},
        unreferenced=unreferenced,
        evicted=evicted,
        evicted_bytes=freed,
        recent_runs=[
            {
                "run_id": r.run_id,
                "command": r.command,
                **{k: (r.counts or {}).get("cache", {}).get(k, 0) for k in ("hits", "misses", "evicted")},
            }
            for r in runs
            if r.status != "running"
        ],
    )
