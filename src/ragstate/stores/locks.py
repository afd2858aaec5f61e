"""The single-writer lock: one apply at a time per store, fenced so a lost lock writes nothing.

Two parts:

1. A **process lock** from the backend (``Store.process_lock``), released by the OS or the
   server when its holder dies, kill -9 included: a file lock beside the SQLite file, a
   PostgreSQL session advisory lock on a connection of its own. A crashed apply never
   leaves the store locked.
2. A **fencing epoch** in the ``locks`` table. Each new holder bumps it; every batch
   transaction checks it (``WriterLease.fence``) and updates the heartbeat in the same
   transaction. A holder whose lock was lost meanwhile (its server connection died and
   another process took over) cannot commit anything after that: its check fails and
   the batch rolls back. So two appliers never write the same items, whatever happens.

A second applier waits for the lock or fails at once with a message naming the holder
(``reconcile.lock``). Taking the lock also marks runs left ``running`` by a process that
died as ``interrupted``: whoever holds the lock knows no other apply is alive.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ragstate.errors import StoreLocked, WriterLockLost
from ragstate.stores.base import ProcessLock, ProcessLocks, Session, Store, now
from ragstate.stores.migrations import migrate
from ragstate.stores.schema import LOCKS, RUNS

log = logging.getLogger(__name__)

#: how often a waiting applier tries the lock again
POLL_S = 0.2

T = TypeVar("T")
#: runs a piece of store work, trying again on transient failures (``Guard.call`` bound to a target)
Retry = Callable[[Callable[[], T]], T]


def _once(fn: Callable[[], T]) -> T:
    return fn()


@dataclass
class WriterLease:
    """The writer lock, held: ``fence`` inside every write transaction, ``release`` at the end."""

    store: Store
    name: str
    epoch: int
    holder: dict[str, Any]
    plock: ProcessLock
    #: schema migrations applied when the lock was taken
    migrated: list[int] = field(default_factory=list)
    #: runs found ``running`` (their process died) and marked interrupted
    interrupted_runs: int = 0
    waited_s: float = 0.0

    def fence(self, session: Session) -> None:
        """Check, inside the caller's transaction, that this process still holds the lock.

        Raises:
            WriterLockLost: another process took the lock; the transaction must roll back.
            StoreUnavailable: it cannot be told now (transient).
        """
        self.plock.check()
        changed = session.execute(
            "UPDATE {locks} SET heartbeat_at = ? WHERE name = ? AND epoch = ?", (now(), self.name, self.epoch)
        )
        if changed != 1:
            raise WriterLockLost(
                f"{self.store.description}: another process took the writer lock while this one was applying "
                "(its connection was lost); this run stopped, nothing of the batch was written"
            )

    def release(self) -> None:
        self.plock.release()


def acquire(
    store: Store,
    *,
    name: str = "writer",
    mode: str = "wait",
    timeout_s: float = 900.0,
    command: str = "apply",
    on_wait: Callable[[dict[str, Any]], None] | None = None,
    retry: Retry | None = None,
    reap_runs: bool = True,
    cancel: Callable[[], str | None] | None = None,
) -> WriterLease:
    """Take the writer lock of ``store``, waiting for it or not (``mode`` wait | fail).

    Another ``name`` is another lock with the same machinery (the daemon's single-instance
    lock is ``daemon``); only the writer lock's holder may mark the runs of dead
    processes interrupted (``reap_runs``), since only it knows no apply is alive.

    ``retry`` runs the store work (taking the process lock, migrating, bumping the
    epoch) so that a transient failure, such as two processes opening a new SQLite
    file at the same moment, is tried again rather than fatal.

    ``cancel``, asked while waiting, ends the wait when it returns a reason (the
    daemon's SIGTERM must not wait for another applier to finish).

    Raises:
        StoreLocked: another process holds it (``fail``), it did not come free in
            ``timeout_s`` (``wait``), or ``cancel`` ended the wait. The message names
            the holder.
    """
    retry = retry or _once
    locks = store.capability(ProcessLocks)
    started = time.monotonic()
    announced = False
    while True:
        plock = retry(lambda: locks.process_lock(name))
        if plock is not None:
            break
        holder = current_holder(store, name)
        waited = time.monotonic() - started
        if mode == "fail" or waited >= timeout_s:
            raise StoreLocked(_locked_message(store, holder, mode, waited), holder=holder)
        why = cancel() if cancel is not None else None
        if why:
            raise StoreLocked(
                f"stopped waiting for {store.description}, which is being written by {describe(holder)}: {why}",
                holder=holder,
            )
        if not announced:
            announced = True
            # A warning, so that a run with no terminal (CI, cron) says why it is not moving.
            log.warning(
                "waiting for the writer lock of %s, held by %s (giving up after %g s: reconcile.lock_timeout_s)",
                store.description,
                describe(holder),
                timeout_s,
            )
            if on_wait is not None:
                on_wait(holder)
        time.sleep(POLL_S)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "since": now()}

    def take() -> tuple[int, int]:
        with store.transaction() as s:
            store.ensure_table(s, LOCKS)
            epoch = int(s.scalar("SELECT epoch FROM {locks} WHERE name = ?", (name,)) or 0) + 1
            stamp = now()
            s.execute(
                s.dialect.upsert(LOCKS.name, LOCKS.column_names, LOCKS.primary_key),
                (name, epoch, store.encode_json(holder), stamp, stamp),
            )
            return epoch, _interrupt_dead_runs(store, s) if reap_runs else 0

    try:
        migrated = retry(lambda: migrate(store))
        epoch, interrupted = retry(take)
    except BaseException:
        plock.release()
        raise
    return WriterLease(
        store=store,
        name=name,
        epoch=epoch,
        holder=holder,
        plock=plock,
        migrated=migrated,
        interrupted_runs=interrupted,
        waited_s=round(time.monotonic() - started, 3),
    )


def current_holder(store: Store, name: str = "writer") -> dict[str, Any]:
    """What the ``locks`` table says about the holder of ``name`` ({} if it cannot tell)."""
    try:
        with store.session() as s:
            if store.columns(s, LOCKS.name) is None:
                return {}
            value = s.scalar("SELECT holder FROM {locks} WHERE name = ?", (name,))
    except Exception:  # best effort: the message must not fail for want of details
        return {}
    holder = store.decode_json(value) if isinstance(value, (str, bytes)) else value
    return holder if isinstance(holder, dict) else {}


def describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another ragstate process"
    since = holder.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    return f"`{holder.get('command', '?')}` (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {when})"


def _locked_message(store: Store, holder: dict[str, Any], mode: str, waited: float) -> str:
    who = describe(holder)
    if mode == "fail":
        return (
            f"{store.description} is being written by {who}; only one apply at a time may write a store. "
            "Run again when it has finished, or set reconcile.lock: wait to queue behind it"
        )
    return (
        f"gave up after waiting {waited:.0f} s for {store.description}, which is being written by {who} "
        "(reconcile.lock_timeout_s)"
    )


def _interrupt_dead_runs(store: Store, s: Session) -> int:
    if store.columns(s, RUNS.name) is None:
        return 0
    changed = s.execute(
        "UPDATE {runs} SET status = 'interrupted', finished_at = ?, error = ? WHERE status = 'running'",
        (now(), "the process ended without finishing (killed or crashed); committed batches were kept"),
    )
    return max(0, changed)
