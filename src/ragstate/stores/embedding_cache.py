"""The embedding cache in the store: one value per (embedding recipe, exact text).

An entry holds what a model made of one text under one embedding recipe (``model_fp``:
the embedder's identity and the kind of output, a vector or a token matrix), keyed by
the text's exact hash. Entries are written in the same transaction as the artifact rows
of the batch that embedded them, so every process and run (and the daemon) shares them,
and a crash never leaves an entry without the batch that paid for it. ``artifacts/cache.py``
is the one place that reads and fills it.

The cache is bounded: ``evict`` removes the least recently used entries that no artifact
row references (no row of a table built under the same embedding recipe holds the same
``text_hash``) until the entries fit the limit. Entries that artifacts reference are
never evicted; they are what a moved chunk or a duplicate article is served from.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragstate.stores.base import Session, Store, now
from ragstate.stores.schema import EMBEDDING_CACHE, EVICTABLE

#: an entry row, in ``EMBEDDING_CACHE`` column order
Entry = tuple[str, str, int, int | None, bool, bytes, str, int, float, float, str | None]

_UPSERT_COLUMNS = EMBEDDING_CACHE.column_names


@dataclass(frozen=True)
class CacheStats:
    """How big the cache is, in total and per embedding recipe."""

    entries: int
    bytes: int
    #: ``{model_fp: (entries, bytes)}``
    per_recipe: dict[str, tuple[int, int]]


def key(model_fp: str, text_hash: str) -> str:
    """An entry's key as plans and reports spell it."""
    return f"{model_fp}:{text_hash}"


def split_key(k: str) -> tuple[str, str]:
    fp, _, h = k.partition(":")
    return fp, h


def get(session: Session, model_fp: str, hashes: Sequence[str]) -> list[tuple[str, int, int | None, bytes]]:
    """``(text_hash, dim, n_tokens, value)`` of the entries of ``hashes`` under ``model_fp``."""
    if not hashes:
        return []
    rows = session.query(
        "SELECT text_hash, dim, n_tokens, value FROM {embedding_cache} WHERE model_fp = ? AND text_hash = ANY(?)",
        (model_fp, list(hashes)),
    )
    return [(r[0], int(r[1]), None if r[2] is None else int(r[2]), bytes(r[3])) for r in rows]


def put(store: Store, session: Session, entries: Sequence[Entry]) -> None:
    """Insert ``entries``; an entry already there is replaced (a fresh embedding of a text
    whose entry failed its checks overwrites it)."""
    if not entries:
        return
    session.executemany(
        store.dialect.upsert(EMBEDDING_CACHE.name, _UPSERT_COLUMNS, EMBEDDING_CACHE.primary_key), entries
    )


def touch(session: Session, keys: Sequence[tuple[str, str]], at: float) -> None:
    """Mark entries as used at ``at`` (eviction removes the least recently used first)."""
    by_fp: dict[str, list[str]] = defaultdict(list)
    for fp, h in keys:
        by_fp[fp].append(h)
    for fp, hashes in by_fp.items():
        session.execute(
            "UPDATE {embedding_cache} SET used_at = ? WHERE model_fp = ? AND text_hash = ANY(?)",
            (at, fp, sorted(set(hashes))),
        )


def delete(session: Session, keys: Sequence[str]) -> int:
    """Remove the entries named by ``keys`` (``model_fp:text_hash``); return how many."""
    by_fp: dict[str, list[str]] = defaultdict(list)
    for k in keys:
        fp, h = split_key(k)
        by_fp[fp].append(h)
    return sum(
        session.execute(
            "DELETE FROM {embedding_cache} WHERE model_fp = ? AND text_hash = ANY(?)", (fp, sorted(set(hashes)))
        )
        for fp, hashes in by_fp.items()
    )


def clear(session: Session) -> int:
    """Remove every entry; return how many."""
    return session.execute("DELETE FROM {embedding_cache}")


def stats(session: Session) -> CacheStats:
    rows = session.query("SELECT model_fp, count(*), coalesce(sum(nbytes), 0) FROM {embedding_cache} GROUP BY model_fp")
    per = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    return CacheStats(entries=sum(n for n, _ in per.values()), bytes=sum(b for _, b in per.values()), per_recipe=per)


def evict(
    store: Store, session: Session, max_bytes: int, references: Mapping[str, Sequence[str]], *, everything: bool = False
) -> tuple[int, int]:
    """Remove unreferenced entries, least recently used first, until the cache holds at
    most ``max_bytes`` (or every unreferenced entry with ``everything``).

    ``references`` maps each embedding recipe to the artifact tables built under it
    (each has a ``text_hash`` column): an entry whose text one of them holds is kept.
    Returns ``(entries, bytes)`` removed.
    """
    total = int(session.scalar("SELECT coalesce(sum(nbytes), 0) FROM {embedding_cache}"))
    excess = total if everything else total - max_bytes
    if excess <= 0:
        return 0, 0
    session.execute("DROP TABLE IF EXISTS {tmp_evictable}")
    for statement in session.dialect.create_table(EVICTABLE, temp=True):
        session.execute(statement)
    try:
        session.execute(
            "INSERT INTO {tmp_evictable} (model_fp, text_hash, nbytes, used_at) "
            "SELECT model_fp, text_hash, nbytes, used_at FROM {embedding_cache}"
        )
        for fp, tables in references.items():
            for table in tables:
                session.execute(
                    "DELETE FROM {tmp_evictable} WHERE model_fp = ? AND text_hash IN (SELECT text_hash FROM {t})",
                    (fp,),
                    t=table,
                )
        chosen: list[str] = []
        freed = 0
        for fp, h, nbytes in session.query(
            "SELECT model_fp, text_hash, nbytes FROM {tmp_evictable} ORDER BY used_at, model_fp, text_hash"
        ):
            if freed >= excess:
                break
            chosen.append(key(fp, h))
            freed += int(nbytes)
        removed = 0
        for i in range(0, len(chosen), 1000):
            with session.transaction():
                removed += delete(session, chosen[i : i + 1000])
        return removed, freed
    finally:
        session.execute("DROP TABLE IF EXISTS {tmp_evictable}")


def unreferenced(session: Session, references: Mapping[str, Sequence[str]]) -> int:
    """How many entries no artifact table in ``references`` holds the text of."""
    n = 0
    fps = [r[0] for r in session.query("SELECT DISTINCT model_fp FROM {embedding_cache}")]
    for fp in fps:
        tables = references.get(fp, ())
        if not tables:
            n += int(session.scalar("SELECT count(*) FROM {embedding_cache} WHERE model_fp = ?", (fp,)))
            continue
        # Entries of fp minus those some table holds: counted one table at a time (a
        # statement per table, never a query per entry).
        held: set[str] = set()
        for table in tables:
            held.update(
                r[0]
                for r in session.query(
                    "SELECT c.text_hash FROM {embedding_cache} c WHERE c.model_fp = ? "
                    "AND EXISTS (SELECT 1 FROM {t} a WHERE a.text_hash = c.text_hash)",
                    (fp,),
                    t=table,
                )
            )
        n += int(session.scalar("SELECT count(*) FROM {embedding_cache} WHERE model_fp = ?", (fp,))) - len(held)
    return n


def iter_entries(session: Session) -> Iterator[tuple[Any, ...]]:
    """``(model_fp, text_hash, dim, n_tokens, normalized, value, text)`` of every entry; ``text``
    is None where the stored text is not valid UTF-8 (a corrupt entry, never a failed read)."""
    rows = session.iter_query(
        session.dialect.cache_entries_sql(),
        chunk=2_000,
    )
    for row in rows:
        yield (*row[:6], decoded(row[6]))


def decoded(raw: bytes | memoryview | str | None) -> str | None:
    """The text of stored UTF-8 bytes; None when they are not valid UTF-8."""
    if raw is None or isinstance(raw, str):
        return raw
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def duplicates(session: Session) -> list[tuple[str, str, str | None, tuple[str, str]]]:
    """``(model_fp, text_hash, text, group)`` of entries whose value is identical to another
    entry's of a different text under the same recipe (entries of one value share
    ``group``): placeholders, unless the model reads the texts alike (a case variant for
    an uncased model: ``artifacts.cache.placeholders`` tells them apart)."""
    rows = session.query(
        "SELECT c.model_fp, c.text_hash, c.text, d.g1, d.g2 FROM {embedding_cache} c JOIN (SELECT model_fp, value, "
        "min(text_hash) AS g1, max(text_hash) AS g2 FROM {embedding_cache} GROUP BY model_fp, value "
        "HAVING count(*) > 1) d ON d.model_fp = c.model_fp AND d.value = c.value ORDER BY c.model_fp, c.text_hash"
    )
    return [(r[0], r[1], r[2], (r[3], r[4])) for r in rows]


def texts(session: Session, model_fp: str, hashes: Sequence[str]) -> dict[str, str]:
    """``{text_hash: text}`` of the entries of ``hashes`` under ``model_fp``."""
    if not hashes:
        return {}
    rows = session.query(
        "SELECT text_hash, text FROM {embedding_cache} WHERE model_fp = ? AND text_hash = ANY(?)",
        (model_fp, sorted(set(hashes))),
    )
    return {r[0]: r[1] for r in rows if isinstance(r[1], str)}


def sample(session: Session, model_fp: str, n: int, skip: set[str]) -> list[tuple[str, str, int, int | None, bytes]]:
    """``(text_hash, text, dim, n_tokens, value)`` of up to ``n`` entries of ``model_fp`` (a
    deterministic sample: the lowest hashes), none of those keyed in ``skip``."""
    rows = session.query(
        session.dialect.cache_sample_sql(),
        (model_fp, n + len(skip)),
    )
    out = [(r[0], decoded(r[1]), int(r[2]), None if r[3] is None else int(r[3]), bytes(r[4])) for r in rows]
    return [r for r in out if key(model_fp, r[0]) not in skip and r[1] is not None][:n]


def entry(
    model_fp: str,
    text_hash: str,
    text: str,
    value: bytes,
    *,
    dim: int,
    n_tokens: int | None,
    normalized: bool,
    run_id: str | None,
) -> Entry:
    """An entry row for ``put``."""
    stamp = now()
    nbytes = len(value) + len(text.encode("utf-8"))
    return (model_fp, text_hash, dim, n_tokens, normalized, value, text, nbytes, stamp, stamp, run_id)
