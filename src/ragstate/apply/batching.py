"""Memory-aware batch sizes: as many documents per batch as the memory budget allows.

The size of the next batch is::

    min(reconcile.batch_size, ceiling, room // (bytes_per_item · IN_FLIGHT))

where ``room`` is the budget (``reconcile.memory_budget_mb``, by default half the memory
available when apply starts), capped by half the memory available now; ``bytes_per_item``
is measured on every batch (its text, the rows it produced, and how much the process
grew while building it) and follows increases at once, decreases slowly; and
``IN_FLIGHT`` is how many batches can be alive at once (one being built, two queued for
the writer, one being written). The first batch is small (``PROBE``) since nothing is
measured yet. A ``MemoryError`` halves the batch that raised it and lowers ``ceiling``
to that half for the rest of the run: sizes never grow past what failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import psutil

T = TypeVar("T")

#: batches alive at once: one being built, the writer queue's two, one being written
IN_FLIGHT = 4
#: documents in the first batch, before anything is measured
PROBE = 8


def available_memory() -> int:
    """Bytes of memory the system can give without swapping."""
    return int(psutil.virtual_memory().available)


def process_memory() -> int:
    """Resident bytes of this process."""
    return int(psutil.Process().memory_info().rss)


class BatchSizer:
    def __init__(
        self,
        ceiling: int,
        budget_bytes: int | None = None,
        *,
        available: Callable[[], int] = available_memory,
    ):
        self.ceiling = max(1, ceiling)
        self._available = available
        self.budget = budget_bytes if budget_bytes else max(1, available() // 2)
        self.bytes_per_item: float | None = None
        self.halvings = 0
        self.smallest: int | None = None
        self.largest: int | None = None

    @classmethod
    def from_spec(cls, batch_size: int, memory_budget_mb: int | None) -> BatchSizer:
        return cls(batch_size, memory_budget_mb * 2**20 if memory_budget_mb else None)

    def next_size(self) -> int:
        """Documents to put in the next batch."""
        if self.bytes_per_item is None:
            size = min(self.ceiling, PROBE)
        else:
            room = min(self.budget, self._available() // 2)
            size = max(1, min(self.ceiling, int(room // (self.bytes_per_item * IN_FLIGHT))))
        self.smallest = size if self.smallest is None else min(self.smallest, size)
        self.largest = size if self.largest is None else max(self.largest, size)
        return size

    def measured(self, items: int, nbytes: int) -> None:
        """A batch of ``items`` documents took ``nbytes``."""
        if items <= 0:
            return
        per = max(1.0, nbytes / items)
        old = self.bytes_per_item
        # Up at once, down slowly: one light batch must not make the next one too big.
        self.bytes_per_item = per if old is None else max(per, 0.7 * old + 0.3 * per)

    def out_of_memory(self, size: int) -> int:
        """A batch of ``size`` ran out of memory; return the size to try its halves at."""
        half = max(1, size // 2)
        self.ceiling = max(1, min(self.ceiling, half))
        self.halvings += 1
        return half

    def batches(self, items: Sequence[T]) -> Iterator[Sequence[T]]:
        """``items`` in consecutive batches, each sized when it is due."""
        i = 0
        while i < len(items):
            n = self.next_size()
            yield items[i : i + n]
            i += n

    def summary(self) -> dict[str, Any]:
        return {
            "budget_mb": round(self.budget / 2**20, 1),
            "bytes_per_item": round(self.bytes_per_item) if self.bytes_per_item else None,
            "batch_sizes": [self.smallest, self.largest],
            "ceiling": self.ceiling,
            "halvings": self.halvings,
        }


def payload_bytes(rows: Sequence[Sequence[Any]]) -> int:
    """Approximate bytes held by built rows (strings, bytes, arrays; 8 per other value)."""
    total = 0
    for row in rows:
        for value in row:
            if isinstance(value, (bytes, bytearray, memoryview)):
                total += len(value)
            elif isinstance(value, str):
                total += len(value)
            elif isinstance(value, np.ndarray):
                total += value.nbytes
            else:
                total += 8
    return total
