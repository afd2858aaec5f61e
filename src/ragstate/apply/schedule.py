"""Concurrent artifact kinds: which documents each kind may build now, and the run's overlap.

Apply builds the kinds of a plan on threads of their own (``reconcile.concurrent_kinds``
at most compute a batch at once). A kind that depends on none of the others (full text,
document embeddings, chunks) starts at once. A dependent kind does not wait for its
upstream kind to finish: a document becomes ready for it as soon as every upstream kind
that rebuilds that document has *committed* it (its rows are then what the dependent
build reads); documents its upstream kinds do not rebuild are ready from the start.

``Gate`` is that bookkeeping, fed by the writer thread after each commit (``settle``) and
by each kind when it has no more batches (``finish``: what it still held is released,
whether built, set aside or abandoned). A document an upstream kind set aside
(quarantined) is skipped by the kinds built from it, and by theirs in turn. Each document
moves from blocked to ready (or skipped) once, so the cost is linear in the documents,
whatever the number of batches.

The model's thread budget is kept where texts are embedded (one forward pass at a time,
``artifacts/cache.py``); the memory budget by each kind's batch sizer (``batching``,
given its share of the budget) and by how many batches are computed at once (``slots``)
or queued for the one writer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragstate.stores.documents import DocRef


class Stopped(Exception):
    """Another kind (or the writer) failed: the run is stopping."""


@dataclass
class _Feed:
    upstream: tuple[str, ...]
    ready: deque[DocRef] = field(default_factory=deque)
    #: doc_id -> (ref, upstream kinds that still have to commit it)
    blocked: dict[str, tuple[DocRef, set[str]]] = field(default_factory=dict)
    #: documents an upstream kind set aside (quarantined) in this run: never built here
    poisoned: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)


class Gate:
    """Documents each kind still has to commit, and the ready queues of the kinds built
    from them (thread-safe)."""

    def __init__(self, pending: Mapping[str, Sequence[str]]):
        self._cond = threading.Condition()
        self._pending: dict[str, set[str]] = {k: set(ids) for k, ids in pending.items()}
        self._feeds: dict[str, _Feed] = {}
        self._stopped = False

    def register(self, kind: str, refs: Sequence[DocRef], upstream: Sequence[str]) -> None:
        """Queue ``refs`` (in order) for ``kind``, built from ``upstream`` kinds."""
        with self._cond:
            feed = self._feeds[kind] = _Feed(tuple(u for u in upstream if u in self._pending))
            for ref in refs:
                waits = {u for u in feed.upstream if ref.doc_id in self._pending[u]}
                if waits:
                    feed.blocked[ref.doc_id] = (ref, waits)
                else:
                    feed.ready.append(ref)

    def settle(self, kind: str, doc_ids: Sequence[str], *, lost: Collection[str] = ()) -> None:
        """``kind`` committed (or gave up on) ``doc_ids``, of which it set ``lost`` aside:
        the kinds built from it may go on, and skip the documents set aside (which they
        in turn pass on as set aside)."""
        with self._cond:
            todo: list[tuple[str, Sequence[str], Collection[str]]] = [(kind, doc_ids, lost)]
            while todo:
                kind, doc_ids, lost = todo.pop()
                pending = self._pending.get(kind)
                if pending is None:
                    continue
                pending.difference_update(doc_ids)
                for name, feed in self._feeds.items():
                    if kind not in feed.upstream:
                        continue
                    skipped: list[str] = []
                    for d in doc_ids:
                        entry = feed.blocked.get(d)
                        if entry is None:
                            continue
                        if d in lost:
                            feed.poisoned.add(d)
                        entry[1].discard(kind)
                        if not entry[1]:
                            del feed.blocked[d]
                            if d in feed.poisoned:
                                feed.skipped.add(d)
                                skipped.append(d)
                            else:
                                feed.ready.append(entry[0])
                    if skipped:
                        todo.append((name, skipped, set(skipped)))
            self._cond.notify_all()

    def finish(self, kind: str) -> None:
        """``kind`` has no more batches: whatever it still held is released."""
        with self._cond:
            remaining = list(self._pending.get(kind, ()))
        self.settle(kind, remaining)

    def skipped(self, kind: str) -> set[str]:
        """Documents ``kind`` did not build because an upstream kind set them aside."""
        with self._cond:
            feed = self._feeds.get(kind)
            return set(feed.skipped) if feed is not None else set()

    def stop(self) -> None:
        """Wake every waiting kind with ``Stopped``."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def batches(self, kind: str, size: Callable[[], int]) -> Iterator[list[DocRef]]:
        """``kind``'s ready documents, ``size()`` at a time (asked before each batch: the
        memory-aware sizer); a smaller batch only when the upstream kinds have nothing
        more to give; ends when every document was taken.

        Raises:
            Stopped: the run is stopping.
        """
        while True:
            want = max(1, size())
            with self._cond:
                feed = self._feeds[kind]
                while True:
                    if self._stopped:
                        raise Stopped
                    if len(feed.ready) >= want or (feed.ready and not feed.blocked):
                        batch = [feed.ready.popleft() for _ in range(min(want, len(feed.ready)))]
                        break
                    if not feed.ready and not feed.blocked:
                        return
                    self._cond.wait()
            yield batch


@dataclass
class Overlap:
    """When each kind built, relative to the start of the build phase (the run record's
    ``schedule``): how much of the kinds' work ran at the same time."""

    concurrent_kinds: int
    started: float = field(default_factory=time.perf_counter)
    spans: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self, kind: str) -> None:
        with self._lock:
            self.spans[kind] = [round(time.perf_counter() - self.started, 4), -1.0]

    def end(self, kind: str) -> None:
        with self._lock:
            if kind in self.spans:
                self.spans[kind][1] = round(time.perf_counter() - self.started, 4)

    def summary(self, busy: Mapping[str, float]) -> dict[str, Any]:
        """``{concurrent_kinds, wall_s, work_s, overlap, kinds: {kind: {start_s, end_s, busy_s}}}``:
        ``work_s`` adds up each kind's span, so ``overlap`` (``work_s / wall_s``) is 1.0
        when the kinds ran one after another, and more the more they overlapped."""
        wall = round(time.perf_counter() - self.started, 4)
        kinds = {
            k: {"start_s": s, "end_s": e if e >= 0 else wall, "busy_s": round(busy.get(k, 0.0), 4)}
            for k, (s, e) in self.spans.items()
        }
        work = round(sum(v["end_s"] - v["start_s"] for v in kinds.values()), 4)
        return {
            "concurrent_kinds": self.concurrent_kinds,
            "wall_s": wall,
            "work_s": work,
            "overlap": round(work / wall, 3) if wall > 0 else 1.0,
            "kinds": kinds,
        }
