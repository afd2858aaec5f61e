"""How apply touches the store: every write in one fenced transaction, retried when transient.

``Safety.commit(store, job)`` runs ``job(session)`` inside a fresh transaction that first
checks the writer lock's fence (``stores.locks``), through the ``database`` breaker and
the retry policy (``faults.retry``). A retried job runs again from the start in a new
transaction, so jobs must be idempotent (every batch job is: old rows out, new rows in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ragstate.faults.retry import Guard
from ragstate.spec.model import Spec
from ragstate.stores.base import Session, Store

T = TypeVar("T")

Job = Callable[[Session], None]


@dataclass
class Safety:
    guard: Guard
    #: checks, inside each write transaction, that this process still holds the writer lock
    fence: Callable[[Session], None] | None = None

    @classmethod
    def unlocked(cls, spec: Spec) -> Safety:
        """Retries without a writer lock (for library callers that manage none)."""
        return cls(Guard(spec.reconcile.retry, spec.reconcile.breaker))

    def commit(self, store: Store, job: Job) -> None:
        """``job`` in one fenced transaction, retried on transient failures."""

        def attempt() -> None:
            with store.transaction() as s:
                if self.fence is not None:
                    self.fence(s)
                job(s)

        self.guard.call("database", attempt)

    def read(self, fn: Callable[[], T]) -> T:
        """``fn`` (which reads the store), retried on transient failures."""
        return self.guard.call("database", fn)
