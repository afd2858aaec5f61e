"""Embedder plugins that misbehave on purpose, for the fault tests.

Each wraps the deterministic ``hash`` embedder, so what is stored is checkable, and is
registered under a provider name with the ``embedder_plugin`` fixture (the same lookup
as an installed ``ragstate.embedders`` entry point).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence

import numpy as np

from ragstate.compute.embedders import HashEmbedder
from ragstate.errors import ComputeUnavailable, ItemError


class CountingEmbedder(HashEmbedder):
    def __init__(self, spec, *, name: str = "default"):
        super().__init__(spec, name=name)
        self.calls = 0
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.calls += 1
            self.batches.append(len(texts))
        self.before(texts)
        return self.after(texts, super().embed(texts))

    def before(self, texts: Sequence[str]) -> None:
        pass

    def after(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        return vectors


class FlakyEmbedder(CountingEmbedder):
    """Raises a transient error on ``rate`` of its calls (seeded: the same run every time)."""

    rate = 0.3
    seed = 1234

    def __init__(self, spec, *, name: str = "default"):
        super().__init__(spec, name=name)
        self.rng = random.Random(self.seed)
        self.raised = 0

    def before(self, texts: Sequence[str]) -> None:
        if self.rng.random() < self.rate:
            self.raised += 1
            raise ComputeUnavailable("embedding service timed out (simulated)")


class PickyEmbedder(CountingEmbedder):
    """Fails on texts containing a marker: ``POISON`` with a plain exception (a plugin bug),
    ``REFUSE`` with an ``ItemError``, ``NAN`` by returning a NaN vector."""

    def before(self, texts: Sequence[str]) -> None:
        if any("POISON" in t for t in texts):
            raise ValueError("tokenizer crashed on this input (simulated)")
        if any("REFUSE" in t for t in texts):
            raise ItemError("the model refuses this input (simulated)", reason="model_refused")

    def after(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        for i, t in enumerate(texts):
            if "NAN" in t:
                vectors[i] = np.nan
        return vectors


class BrokenEmbedder(CountingEmbedder):
    """Every call fails with a plain exception: a broken plugin, not bad documents."""

    def before(self, texts: Sequence[str]) -> None:
        raise RuntimeError("CUDA driver error (simulated)")


class HungryEmbedder(CountingEmbedder):
    """Runs out of memory on batches larger than ``limit``."""

    limit = 3

    def before(self, texts: Sequence[str]) -> None:
        if len(texts) > self.limit:
            raise MemoryError


class HookEmbedder(CountingEmbedder):
    """Calls ``hook(call_number)`` before each embedding (set by the test)."""

    hook: Callable[[int], None] | None = None

    def before(self, texts: Sequence[str]) -> None:
        if self.hook is not None:
            self.hook(self.calls)
