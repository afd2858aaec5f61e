"""Memory-aware batch sizes: fit the budget by measured bytes per item, halve on out-of-memory."""

from __future__ import annotations

import numpy as np

from ragstate.apply.batching import IN_FLIGHT, PROBE, BatchSizer, payload_bytes

MB = 2**20


def sizer(budget: int, *, ceiling: int = 64, available: int = 64 * 1024 * MB) -> BatchSizer:
    return BatchSizer(ceiling, budget, available=lambda: available)


def test_first_batch_is_a_small_probe() -> None:
    assert sizer(1024 * MB).next_size() == PROBE
    assert sizer(1024 * MB, ceiling=3).next_size() == 3


def test_size_fits_the_budget_by_measured_bytes_per_item() -> None:
    s = sizer(8 * MB)
    s.measured(items=8, nbytes=8 * 256 * 1024)  # 256 KiB per item
    assert s.next_size() == 8 * MB // (256 * 1024 * IN_FLIGHT) == 8
    s.measured(items=8, nbytes=8 * 1024 * 1024)  # heavier documents: 1 MiB per item, followed at once
    assert s.next_size() == 2


def test_size_never_exceeds_the_configured_batch_size_and_is_at_least_one() -> None:
    s = sizer(1024 * MB, ceiling=64)
    s.measured(items=8, nbytes=8 * 100)
    assert s.next_size() == 64
    tight = sizer(1 * MB)
    tight.measured(items=1, nbytes=50 * MB)
    assert tight.next_size() == 1


def test_lighter_batches_bring_the_estimate_down_slowly() -> None:
    s = sizer(64 * MB)
    s.measured(items=4, nbytes=4 * 4 * MB)
    first = s.bytes_per_item
    s.measured(items=4, nbytes=4 * 1024)
    assert s.bytes_per_item is not None and first is not None
    assert first * 0.5 < s.bytes_per_item < first


def test_free_memory_caps_the_budget() -> None:
    s = BatchSizer(64, 1024 * MB, available=lambda: 16 * MB)
    s.measured(items=8, nbytes=8 * MB)  # 1 MiB per item; only 8 MiB may be used (half of what is free)
    assert s.next_size() == 2


def test_out_of_memory_halves_and_lowers_the_ceiling_for_good() -> None:
    s = sizer(1024 * MB, ceiling=64)
    s.measured(items=8, nbytes=8 * 1024)
    assert s.next_size() == 64
    assert s.out_of_memory(64) == 32
    assert s.next_size() == 32
    assert s.out_of_memory(32) == 16 and s.out_of_memory(1) == 1
    assert s.ceiling == 1 and s.halvings == 3
    assert s.summary()["halvings"] == 3


def test_batches_cover_every_item_once_in_order() -> None:
    s = sizer(1024 * MB, ceiling=5)
    items = list(range(23))
    out = [list(b) for b in s.batches(items)]
    assert [i for b in out for i in b] == items
    assert all(1 <= len(b) <= 5 for b in out)


def test_payload_bytes_counts_text_blobs_and_arrays() -> None:
    rows = [("doc", b"\x00" * 1536, np.zeros(384, dtype=np.float32), 1.5)]
    assert payload_bytes(rows) == 3 + 1536 + 1536 + 8
