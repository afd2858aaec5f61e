"""Quarantine as it bears on one observation: what is held back, what is new, what is over.

=====================  ==================================================================
recorded entry         in effect when
=====================  ==================================================================
``source`` (a file or  its file is still there and was not read again, or was read again
JSONL line)            and still fails the same way; read again and failing differently,
                       it is *new* (recorded again); gone or read cleanly, it is *stale*
an artifact kind       its document is in scope with the content hash it failed with,
                       the kind has the recipe it failed with, and it is not marked
                       ``retry``; out of scope, of a kind no longer wanted, with other
                       content or another recipe, it is *stale* (tried again at once)
=====================  ==================================================================

Documents of entries in effect are **held**: not built (artifact-kind entries), and
their rows are not deleted though they left the scope (``source`` entries with a
document id: artifacts built before the file broke are kept). Problems the source found
now that match no entry are *new*. Apply records new entries and removes stale ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ragstate.hashing import quarantine_fingerprint
from ragstate.stores import quarantine
from ragstate.stores.base import Session
from ragstate.stores.documents import DocumentProblem, Snapshot
from ragstate.stores.quarantine import DROPPED, QUARANTINED, RETRY, SOURCE, Entry


@dataclass(frozen=True)
class QuarantineView:
    #: recorded entries in effect
    active: tuple[Entry, ...] = ()
    #: entries apply must record (new problems, or old ones failing anew)
    new: tuple[Entry, ...] = ()
    #: recorded entries that no longer apply: ``(kind, item)``
    stale: tuple[tuple[str, str], ...] = ()
    #: per artifact kind: documents in scope that are not built
    held: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: documents out of scope whose artifacts are kept (their file cannot be read now)
    kept: frozenset[str] = frozenset()
    #: kinds with any recorded entry (their builds clear entries of what they build)
    recorded_kinds: frozenset[str] = frozenset()

    @property
    def writes(self) -> int:
        return len(self.new) + len(self.stale)

    def counts(self, state: str = QUARANTINED) -> dict[str, int]:
        """Entries in effect (and new ones) in ``state``, per kind."""
        return quarantine.counts_by_kind((*self.active, *self.new), state=state)

    def to_dict(self) -> dict[str, object]:
        return {
            "quarantined": self.counts(),
            "dropped": self.counts(DROPPED),
            "new": [_short(e) for e in self.new],
            "stale": len(self.stale),
        }


def quarantine_view(
    session: Session, recorded: Iterable[Entry], snapshot: Snapshot | None, kinds: Mapping[str, str]
) -> QuarantineView:
    """Compare the recorded entries with what was observed now (inside the staged scope);
    ``kinds`` maps each artifact kind observed to its recipe fingerprint.

    ``snapshot`` is None for an in-place source (a table): it has no files, so no
    ``source`` entries apply.
    """
    recorded = list(recorded)
    wanted = set(kinds)
    present = {f.path for f in snapshot.files} if snapshot is not None else set()
    reread = snapshot.changed_paths if snapshot is not None else frozenset()
    problems = {p.key: p for p in snapshot.problems} if snapshot is not None else {}
    known = {e.key for e in recorded}
    active: list[Entry] = []
    new: list[Entry] = []
    stale: list[tuple[str, str]] = []

    for e in recorded:
        if e.kind != SOURCE:
            continue
        problem = problems.get(e.item)
        if e.path not in present or (e.path in reread and problem is None):
            stale.append(e.key)
        elif problem is not None and (problem.fingerprint != e.fingerprint or e.state == RETRY):
            new.append(_entry(problem))
        else:
            active.append(e)
    new.extend(_entry(p) for key, p in problems.items() if (SOURCE, key) not in known)

    by_kind = [e for e in recorded if e.kind != SOURCE]
    hashes = quarantine.scope_hashes(session, [e.item for e in by_kind])
    for e in by_kind:
        if e.kind not in wanted or e.item not in hashes:
            stale.append(e.key)
        elif quarantine_fingerprint(hashes[e.item], kinds[e.kind]) != e.fingerprint:
            stale.append(e.key)  # new content or recipe: built again now, quarantined again if it fails
        elif e.state != RETRY:
            active.append(e)

    held: dict[str, set[str]] = {}
    for e in active:
        if e.kind != SOURCE:
            held.setdefault(e.kind, set()).add(e.item)
    kept = frozenset(e.doc_id for e in (*active, *new) if e.kind == SOURCE and e.doc_id)
    return QuarantineView(
        active=tuple(active),
        new=tuple(new),
        stale=tuple(sorted(stale)),
        held={k: frozenset(v) for k, v in held.items()},
        kept=kept,
        recorded_kinds=frozenset(e.kind for e in recorded if e.kind != SOURCE),
    )


def _entry(p: DocumentProblem) -> Entry:
    return Entry(
        kind=SOURCE,
        item=p.key,
        doc_id=p.doc_id,
        path=p.path,
        reason=p.reason,
        error_type=p.error_type,
        message=p.message[: quarantine.MAX_MESSAGE],
        fingerprint=p.fingerprint,
    )


def _short(e: Entry) -> dict[str, object]:
    return {"kind": e.kind, "item": e.item, "doc_id": e.doc_id, "reason": e.reason, "message": e.message}


def held_downstream(
    held: Mapping[str, frozenset[str]], depends_on: Mapping[str, tuple[str, ...]]
) -> dict[str, frozenset[str]]:
    """``held`` extended to the kinds built from held ones, transitively.

    A dependent kind reads its upstream kind's rows, so a document held back upstream
    (never built, or built from older content) is held back downstream too.
    ``depends_on`` lists the kinds in build order (upstream first).
    """
    out: dict[str, frozenset[str]] = {}
    for kind, ups in depends_on.items():
        ids = set(held.get(kind, frozenset()))
        for up in ups:
            ids |= out.get(up, frozenset())
        out[kind] = frozenset(ids)
    return out
