"""Progress events from apply to whoever watches (the CLI's bar, a daemon's metrics).

The library never draws anything: it calls these methods, and ``NullProgress`` ignores
them. Calls come from the threads that build artifact kinds, several at once when kinds
are built concurrently (``reconcile.concurrent_kinds``): implementations must be
thread-safe (rich's progress bar is).
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, kind: str, total: int) -> None:
        """Work on ``kind`` begins: ``total`` documents to build."""

    def advance(self, kind: str, done: int) -> None:
        """``done`` more documents of ``kind`` are committed."""

    def finish(self, kind: str) -> None:
        """Work on ``kind`` is over."""

    def note(self, message: str) -> None:
        """Something worth a line of its own (a generation switched, a repair)."""

    # Optional (apply calls it when present): ``planned(estimate)`` before any work, with
    # the plan's ``Estimate`` (documents to build over every kind, seconds expected from
    # the measured throughput), for an overall bar whose ETA is known from the start.


class NullProgress:
    def start(self, kind: str, total: int) -> None:
        pass

    def advance(self, kind: str, done: int) -> None:
        pass

    def finish(self, kind: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass
