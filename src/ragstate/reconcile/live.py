"""Live mode: change notifications as hints on top of level-triggered reconciliation.

The daemon's interval and its full observation stay the truth (as a Kubernetes informer's
resync does); notifications only make the next cycle come sooner and, for a folder, narrower.

=======================  ==============================================================
source                   what notifies, and what the next cycle observes
=======================  ==============================================================
a folder                 file-system events (``sources.watch``): the changed paths alone
                         (``observe.narrow``), once each is stable
a PostgreSQL table       ``NOTIFY`` from a trigger ragstate installs when the spec asks
                         (``source.notify: true``): the whole table (a shallow
                         observation, one query); a role that may not create the trigger
                         gets a warning, and the interval
a SQLite table           polling (``daemon.live_poll_s``) of a change counter
                         (``stores.changes``): the whole table
=======================  ==============================================================

Hints may be lost and nothing breaks. What they cannot carry is replaced by a full
observation, never by a missed change:

* a burst larger than ``daemon.live_queue`` pending paths is dropped (counted) and the
  next cycle observes the whole source; a watcher that fails does the same;
* a restart loses nothing: a daemon's first cycle observes everything;
* the full observation keeps its interval (``daemon.interval_s``): live cycles do not
  move it.

Bursts coalesce: an event for a path already waiting is merged into it (counted), and one
cycle takes at most ``daemon.live_batch`` paths, the oldest first. A path is taken once no
event came for it for ``daemon.live_debounce_s`` and its size and mtime did not change over
that time: a file being written is not embedded half-written.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragstate.errors import RagstateError
from ragstate.redact import redact

if TYPE_CHECKING:
    from ragstate.reconcile.run import Contexts
    from ragstate.spec.model import DaemonSpec

log = logging.getLogger(__name__)

#: a path's size and mtime, or None when it does not exist
Stamp = tuple[int, int] | None


def stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class Hint:
    """What the next live cycle observes: ``paths`` (relative to the source), or everything
    (``paths`` None); ``since`` holds the monotonic time of each change's first event (for the
    event-to-ready latency)."""

    paths: frozenset[str] | None
    since: tuple[float, ...]
    reason: str


@dataclass
class _Pending:
    first: float
    last: float
    stamp: Stamp


@dataclass
class Counts:
    """What the queue did since it was made (the daemon turns it into counters)."""

    received: int = 0
    dropped: int = 0
    coalesced: int = 0


class ChangeQueue:
    """Changed paths waiting for a live cycle: coalesced per path, bounded, thread-safe.

    ``put`` (any thread) adds paths, ``put_all`` asks for a full observation; ``take`` (the
    daemon) returns the next ``Hint`` once one is ready. ``wake`` is set whenever something
    came, so the daemon's wait can return at once.
    """

    def __init__(
        self,
        *,
        capacity: int,
        batch: int,
        settle_s: float,
        stamp_of: Callable[[str], Stamp] = lambda _path: None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.capacity = capacity
        self.batch = batch
        self.settle_s = settle_s
        self._stamp_of = stamp_of
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._all: tuple[float, str] | None = None
        self.counts = Counts()
        self.wake = threading.Event()

    def put(self, paths: Iterable[str]) -> None:
        """Paths changed now (their stamps are taken here, to tell a file still being written)."""
        now = self._clock()
        stamped = [(p, self._stamp_of(p)) for p in paths]
        with self._lock:
            for path, st in stamped:
                self.counts.received += 1
                pending = self._pending.get(path)
                if pending is not None:
                    self.counts.coalesced += 1
                    pending.last, pending.stamp = now, st
                elif self._all is not None:
                    self.counts.coalesced += 1  # a full observation is due anyway
                elif len(self._pending) >= self.capacity:
                    self._overflow(now)
                else:
                    self._pending[path] = _Pending(now, now, st)
        self.wake.set()

    def put_all(self, reason: str) -> None:
        """Observe everything next (a table changed, a watcher failed)."""
        now = self._clock()
        with self._lock:
            self.counts.received += 1
            if self._all is None:
                self._all = (min([now, *(p.first for p in self._pending.values())]), reason)
            else:
                self.counts.coalesced += 1
        self.wake.set()

    def _overflow(self, now: float) -> None:
        dropped = len(self._pending) + 1
        self.counts.dropped += dropped
        first = min([now, *(p.first for p in self._pending.values())])
        self._pending.clear()
        self._all = (first, f"a burst of more than {self.capacity} changed paths (daemon.live_queue)")
        log.warning(
            "%d change events dropped: more than daemon.live_queue (%d) paths waited; the next cycle observes "
            "the whole source",
            dropped,
            self.capacity,
            extra={"event": "live_overflow", "dropped": dropped},
        )

    def take(self) -> Hint | None:
        """The next hint, or None while nothing is ready (paths not yet stable)."""
        now = self._clock()
        with self._lock:
            self.wake.clear()  # set again by the next put; the caller sleeps until then or next_ready_s
            if self._all is not None:
                first, reason = self._all
                since = (first, *(p.first for p in self._pending.values()))
                self._all = None
                self._pending.clear()  # the full observation covers them
                return Hint(None, since, reason)
            quiet = [(path, p) for path, p in self._pending.items() if now - p.last >= self.settle_s]
        # Stamped outside the lock (a stat may be slow); a path whose size or mtime moved since
        # its last event is still being written: it waits another settle time.
        ready = []
        for path, p in sorted(quiet, key=lambda item: item[1].first):
            st = self._stamp_of(path)
            with self._lock:
                current = self._pending.get(path)
                if current is not p:
                    continue  # a new event meanwhile
                if st != p.stamp:
                    p.last, p.stamp = now, st
                    continue
                if len(ready) < self.batch:
                    ready.append((path, p.first))
                    del self._pending[path]
        if not ready:
            return None
        return Hint(frozenset(p for p, _ in ready), tuple(t for _, t in ready), "changed paths")

    def next_ready_s(self) -> float | None:
        """Seconds until a pending path may be ready (0: now), None when nothing waits."""
        now = self._clock()
        with self._lock:
            if self._all is not None:
                return 0.0
            if not self._pending:
                return None
            return max(0.0, min(p.last for p in self._pending.values()) + self.settle_s - now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending) + (self._all is not None)


@dataclass
class Live:
    """The hint feed of one daemon: its queue and the producer that fills it (a folder
    watcher, a PostgreSQL listener, a SQLite poller); ``start`` before the first cycle."""

    queue: ChangeQueue
    kind: str
    _stop: Callable[[], None] = field(default=lambda: None)

    def stop(self) -> None:
        self._stop()


def start(project: Contexts, settings: DaemonSpec) -> Live:
    """Start the producer that fits the project's source (see the module docstring).

    Raises:
        SourceError: the source cannot be opened.
    """
    from ragstate.sources.folder import FolderSource
    from ragstate.spec.model import TableSourceSpec

    source = project.context().source()
    inner = getattr(source, "inner", source)
    root = getattr(inner, "root", None)

    def stamp_at(path: str) -> Stamp:
        return stamp(os.path.join(root, path)) if root is not None else None

    queue = ChangeQueue(
        capacity=settings.live_queue, batch=settings.live_batch, settle_s=settings.live_debounce_s, stamp_of=stamp_at
    )
    spec = project.spec.source
    if isinstance(inner, FolderSource):
        from ragstate.sources.watch import FolderWatcher

        watcher = FolderWatcher(inner.root, queue.put, queue.put_all, debounce_s=settings.live_debounce_s)
        watcher.start()
        return Live(queue, "folder", watcher.stop)
    if isinstance(spec, TableSourceSpec):
        if project.context().store.dialect.name == "postgresql":
            return _start_listener(project, spec, queue)
        return _start_poller(project, spec, queue, settings.live_poll_s)
    log.warning("live mode: %s sends no change notifications; the daemon keeps its interval", source.description)
    return Live(queue, "none")


def _start_listener(project: Contexts, spec: Any, queue: ChangeQueue) -> Live:
    """PostgreSQL: install the notify trigger when asked, LISTEN in a thread."""
    from ragstate.stores import changes
    from ragstate.stores.postgres.notify import Listener

    store = project.context().store
    if not spec.notify:
        log.warning(
            "live mode: table %s sends no notifications (set source.notify: true to let ragstate install a trigger "
            "on it); the daemon keeps its interval",
            spec.table,
            extra={"event": "live_no_notify"},
        )
        return Live(queue, "none")
    try:
        with store.session() as s:
            changes.install_notify(s, spec, store.dialect.schema)
    except RagstateError as exc:
        log.warning(
            "live mode: could not install the change trigger on %s (%s). Creating a trigger needs the table's "
            "owner (or the TRIGGER privilege): have its owner run `ragstate daemon --live` once, or grant it; "
            "meanwhile changes are found at the daemon's interval (daemon.interval_s)",
            spec.table,
            redact(str(exc)),
            extra={"event": "live_trigger_refused"},
        )
        return Live(queue, "interval")
    wanted = changes.payload(spec)
    stop = threading.Event()
    listening = threading.Event()

    def run() -> None:
        listener = None
        while not stop.is_set():
            try:
                if listener is None:
                    listener = Listener(store)
                    if listening.is_set():  # reconnected: notifications may have been missed
                        queue.put_all("the notification connection was lost")
                    listening.set()
                if wanted in listener.wait(0.5):
                    queue.put_all(f"table {spec.table} changed")
            except RagstateError as exc:
                log.debug("live listener: %s", redact(str(exc)))
                if listener is not None:
                    listener.close()
                listener = None
                listening.set()
                stop.wait(1.0)
        if listener is not None:
            listener.close()

    thread = threading.Thread(target=run, name="ragstate-listen", daemon=True)
    thread.start()
    listening.wait(10)

    def halt() -> None:
        stop.set()
        thread.join(5)

    return Live(queue, "notify", halt)


def _start_poller(project: Contexts, spec: Any, queue: ChangeQueue, every_s: float) -> Live:
    """SQLite: read the data version each ``every_s``; when it moved, the table's signature."""
    from ragstate.stores import changes

    store = project.context().store
    stop = threading.Event()

    with store.session() as s:
        baseline = changes.table_signature(s, spec)

    def loop() -> None:
        version: int | None = None
        signature = baseline
        while not stop.wait(every_s):
            try:
                with store.session() as s:
                    now = changes.data_version(s)
                    if now == version:
                        continue  # no commit by another connection: nothing to look at
                    version = now
                    found = changes.table_signature(s, spec)
                if found != signature:
                    signature = found
                    queue.put_all(f"table {spec.table} changed")
            except RagstateError as exc:
                log.debug("live poller: %s", redact(str(exc)))

    thread = threading.Thread(target=loop, name="ragstate-poll", daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(5)

    return Live(queue, "poll", halt)


@contextmanager
def narrowing(project: Contexts, hint: Hint | None) -> Iterator[None]:
    """Observations inside look at ``hint``'s paths alone (``observe.narrow``); nothing changes
    without a hint, or for a hint that asks for everything."""
    if hint is None or hint.paths is None or project.spec.scope_limit is not None:
        # a scope of the first N documents depends on every file's place: observed whole
        yield
        return
    project.hinted_paths = hint.paths
    try:
        yield
    finally:
        project.hinted_paths = None
