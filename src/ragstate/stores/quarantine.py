"""Quarantine: items that failed permanently, set aside so that everything else converges.

Two levels of entry, in one table:

===============  ============================  ==============================================
``kind``         ``item``                      meaning
===============  ============================  ==============================================
``source``       the file's path, or           the document cannot be read (undecodable,
                 ``path:line`` for a JSONL     empty, too large, malformed): it is in no
                 record                        scope; artifacts built before it broke stay
an artifact      the document id               building this kind failed for the document
kind                                           (the model refused it, a bad vector, out of
                                               memory alone): it is not built again until
                                               its content changes or ``retry``
===============  ============================  ==============================================

``state``: ``quarantined`` (counts toward apply's exit 4), ``retry`` (tried again by the
next apply), ``dropped`` (left out on purpose, not counted; tried again when its content
changes). ``fingerprint`` is what the item was when it failed (content hash, or a file's
size and mtime), so a change is seen as "try again". Entries are written in the same
transaction as the batch or the registry update that found them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ragstate.redact import redact
from ragstate.stores.base import Session, now
from ragstate.stores.schema import QUARANTINE

#: the ``kind`` of entries for documents the source cannot read
SOURCE = "source"
QUARANTINED, RETRY, DROPPED = "quarantined", "retry", "dropped"
#: longest message kept per entry (a parser's message can quote a whole line)
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class Entry:
    """One quarantined item."""

    kind: str
    item: str
    doc_id: str | None
    path: str | None
    reason: str
    error_type: str
    message: str
    fingerprint: str
    attempts: int = 1
    state: str = QUARANTINED
    first_seen: float = 0.0
    last_seen: float = 0.0
    run_id: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.item)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def entries(session: Session, *, kinds: Sequence[str] | None = None) -> list[Entry]:
    """Every entry (of ``kinds``, if given), ordered by kind and item."""
    if kinds is None:
        rows = session.query(
            "SELECT kind, item, doc_id, path, reason, error_type, message, attempts, fingerprint, state, "
            "first_seen, last_seen, run_id FROM {quarantine} ORDER BY kind, item"
        )
    else:
        rows = session.query(
            "SELECT kind, item, doc_id, path, reason, error_type, message, attempts, fingerprint, state, "
            "first_seen, last_seen, run_id FROM {quarantine} WHERE kind = ANY(?) ORDER BY kind, item",
            (list(kinds),),
        )
    return [_entry(r) for r in rows]


def record(session: Session, found: Iterable[Entry], run_id: str) -> int:
    """Add or update entries for items that failed now; return how many.

    An item already in quarantine keeps its first-seen time and counts one more attempt;
    a ``dropped`` one stays dropped unless its fingerprint changed (new content that
    fails again is a new failure).
    """
    found = list(found)
    if not found:
        return 0
    existing: dict[tuple[str, str], Entry] = {}
    for kind in sorted({e.kind for e in found}):
        items = [e.item for e in found if e.kind == kind]
        rows = session.query(
            "SELECT kind, item, doc_id, path, reason, error_type, message, attempts, fingerprint, state, "
            "first_seen, last_seen, run_id FROM {quarantine} WHERE kind = ? AND item = ANY(?)",
            (kind, items),
        )
        for r in rows:
            existing[(r[0], r[1])] = _entry(r)
    stamp = now()
    merged = []
    for e in found:
        old = existing.get(e.key)
        keep_dropped = old is not None and old.state == DROPPED and old.fingerprint == e.fingerprint
        merged.append(
            replace(
                e,
                message=redact(e.message)[:MAX_MESSAGE],
                attempts=(old.attempts + 1) if old is not None else max(1, e.attempts),
                state=DROPPED if keep_dropped else QUARANTINED,
                first_seen=old.first_seen if old is not None else stamp,
                last_seen=stamp,
                run_id=run_id,
            )
        )
    session.executemany(
        session.dialect.upsert(QUARANTINE.name, QUARANTINE.column_names, QUARANTINE.primary_key),
        [_row(e) for e in merged],
    )
    return len(merged)


def remove(session: Session, keys: Iterable[tuple[str, str]]) -> int:
    """Delete the entries ``(kind, item)``; return how many were deleted."""
    by_kind: dict[str, list[str]] = {}
    for kind, item in keys:
        by_kind.setdefault(kind, []).append(item)
    removed = 0
    for kind, items in sorted(by_kind.items()):
        removed += max(
            0, session.execute("DELETE FROM {quarantine} WHERE kind = ? AND item = ANY(?)", (kind, sorted(items)))
        )
    return removed


def set_state(session: Session, keys: Iterable[tuple[str, str]], state: str) -> None:
    """Set the state of entries ``(kind, item)`` (``retry`` or ``dropped``)."""
    by_kind: dict[str, list[str]] = {}
    for kind, item in keys:
        by_kind.setdefault(kind, []).append(item)
    for kind, items in sorted(by_kind.items()):
        session.execute(
            "UPDATE {quarantine} SET state = ? WHERE kind = ? AND item = ANY(?)", (state, kind, sorted(items))
        )


def scope_hashes(session: Session, doc_ids: Sequence[str]) -> dict[str, str]:
    """Content hash of each of ``doc_ids`` in the staged scope (absent: not in scope)."""
    if not doc_ids:
        return {}
    rows = session.query("SELECT doc_id, content_hash FROM {tmp_scope} WHERE doc_id = ANY(?)", (sorted(set(doc_ids)),))
    return {r[0]: r[1] for r in rows}


def forget_files(session: Session, paths: Sequence[str]) -> None:
    """Forget the recorded stat of ``paths``, so the next observation reads them again."""
    if paths:
        session.execute("DELETE FROM {source_files} WHERE path = ANY(?)", (sorted(set(paths)),))


def _row(e: Entry) -> tuple[Any, ...]:
    return (
        e.kind,
        e.item,
        e.doc_id,
        e.path,
        e.reason,
        e.error_type,
        e.message,
        e.attempts,
        e.fingerprint,
        e.state,
        e.first_seen,
        e.last_seen,
        e.run_id,
    )


def _entry(r: tuple[Any, ...]) -> Entry:
    return Entry(
        kind=r[0],
        item=r[1],
        doc_id=r[2],
        path=r[3],
        reason=r[4],
        error_type=r[5],
        message=r[6],
        attempts=int(r[7]),
        fingerprint=r[8],
        state=r[9],
        first_seen=float(r[10]),
        last_seen=float(r[11]),
        run_id=r[12],
    )


def counts_by_kind(found: Iterable[Entry], *, state: str = QUARANTINED) -> dict[str, int]:
    """How many of ``found`` are in ``state``, per kind."""
    out: dict[str, int] = {}
    for e in found:
        if e.state == state:
            out[e.kind] = out.get(e.kind, 0) + 1
    return dict(sorted(out.items()))
