"""A writer thread, so the database writes of batch N overlap the model's work on N+1.

The queue is bounded: when writes fall behind, ``submit`` blocks, so memory holds at
most ``depth`` batches whatever the corpus size. Each submitted job runs in its own
transaction, through ``commit`` (by default a plain transaction; apply passes
``Safety.commit``, which fences and retries); a job that fails for good stops the
writer, and the error comes back from the next ``submit`` or from ``close``. Jobs
already committed stay committed.

Several threads may submit (concurrent artifact kinds share one writer, so SQLite never
sees two writers of one run): jobs commit one at a time, in the order they were queued.
A job's ``after`` runs on the writer thread once the job is committed (dependent kinds
learn which documents they may build); ``on_error`` runs when a job fails.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from ragstate.stores.base import Session, Store

Job = Callable[[Session], None]
_STOP = object()


class BatchWriter:
    def __init__(
        self,
        store: Store,
        *,
        depth: int = 2,
        commit: Callable[[Store, Job], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ):
        self._store = store
        self._commit = commit or _plain_commit
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, name="ragstate-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # drain: nothing more is written after a failure
            job, after = item  # type: ignore[misc]
            try:
                if job is not None:
                    self._commit(self._store, job)
                if after is not None:
                    after()
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc
                if self._on_error is not None:
                    self._on_error(exc)

    def submit(self, job: Job | None, *, after: Callable[[], None] | None = None) -> None:
        """Queue ``job`` (None: only ``after``, once every job queued before is committed);
        raise the writer's error if an earlier job failed."""
        self._raise()
        self._queue.put((job, after))

    def close(self) -> None:
        """Wait for every queued job, stop the thread, raise the first error if any."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise()

    def abandon(self) -> None:
        """Stop after the queued jobs without raising (used while unwinding an error)."""
        self._queue.put(_STOP)
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


def _plain_commit(store: Store, job: Job) -> None:
    with store.transaction() as session:
        job(session)
