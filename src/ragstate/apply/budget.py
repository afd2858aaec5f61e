"""When apply stops early, on purpose: a work budget spent, or a stop asked for.

Apply checks ``Budget.exhausted()`` at batch boundaries only (before each batch of
builds or deletions, and before each kind), so it always stops with every started batch
committed: each batch is its own transaction, and the next run continues from what it
observes. The run's status is then ``partial`` (``apply.record``).

=============  =====================================================================
reason         what spent it
=============  =====================================================================
``stop``       ``request_stop`` was called (the daemon's SIGTERM or SIGINT handler)
``items``      ``max_items`` documents were built (the batch sizes are cut to fit it)
``seconds``    ``max_seconds`` passed since the budget was made
=============  =====================================================================

``request_stop`` only sets attributes, so a signal handler may call it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

STOP, ITEMS, SECONDS = "stop", "items", "seconds"


@dataclass
class Budget:
    max_items: int | None = None
    max_seconds: float | None = None
    #: documents built (or set aside) so far under this budget
    items: int = 0
    started: float = field(default_factory=time.monotonic)
    #: why a stop was asked for (``request_stop``), for the run record
    stop_reason: str | None = None
    #: the reason the budget ran out, once apply noticed
    stopped: str | None = None

    def request_stop(self, why: str = "asked to stop") -> None:
        """Stop at the next batch boundary (safe to call from a signal handler)."""
        self.stop_reason = why

    def remaining_items(self) -> int | None:
        """Documents that may still be built (None: no limit)."""
        return None if self.max_items is None else max(0, self.max_items - self.items)

    def spend(self, items: int) -> None:
        self.items += items

    def exhausted(self) -> str | None:
        """Why no new batch may start (``stop``, ``items``, ``seconds``), or None."""
        if self.stop_reason is not None:
            reason = STOP
        elif self.max_items is not None and self.items >= self.max_items:
            reason = ITEMS
        elif self.max_seconds is not None and time.monotonic() - self.started >= self.max_seconds:
            reason = SECONDS
        else:
            return None
        self.stopped = self.stopped or reason
        return reason

    def describe(self) -> str:
        """Why the run stopped, in words (once ``stopped`` is set)."""
        if self.stopped == STOP:
            return f"stopped after the current batch: {self.stop_reason}"
        if self.stopped == ITEMS:
            return f"work budget spent: {self.items} documents (max_items {self.max_items})"
        if self.stopped == SECONDS:
            return f"work budget spent: {self.max_seconds:g} s of work (max_seconds)"
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_items": self.max_items,
            "max_seconds": self.max_seconds,
            "items": self.items,
            "seconds": round(time.monotonic() - self.started, 3),
            "stopped": self.stopped,
            "stop_reason": self.stop_reason,
        }
