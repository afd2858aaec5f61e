"""The error taxonomy: each kind of failure lands in its class, read from types, never messages."""

from __future__ import annotations

import pytest

from ragstate.errors import (
    CircuitOpen,
    ComputeUnavailable,
    DocumentTooLarge,
    EmptyDocument,
    ItemError,
    MalformedDocument,
    ModelError,
    SpecError,
    StoreConfigError,
    StoreLocked,
    StoreUnavailable,
    UndecodableDocument,
    WriterLockLost,
)
from ragstate.faults.taxonomy import FaultClass, classify, quarantine_reason


class OutOfMemoryError(RuntimeError):
    """Named like torch's."""


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (StoreUnavailable("server gone"), FaultClass.TRANSIENT),
        (StoreLocked("held"), FaultClass.TRANSIENT),
        (ComputeUnavailable("timeout"), FaultClass.TRANSIENT),
        (CircuitOpen("open", target="database", retry_in=1.0), FaultClass.TRANSIENT),
        (ConnectionResetError("reset"), FaultClass.TRANSIENT),
        (TimeoutError("slow"), FaultClass.TRANSIENT),
        (MemoryError(), FaultClass.MEMORY),
        (OutOfMemoryError("CUDA out of memory"), FaultClass.MEMORY),
        (UndecodableDocument("x"), FaultClass.ITEM),
        (ItemError("refused"), FaultClass.ITEM),
        (ValueError("plugin bug"), FaultClass.UNEXPECTED),
        (ModelError("cannot load"), FaultClass.FATAL),
        (SpecError("bad"), FaultClass.FATAL),
        (StoreConfigError("permission denied"), FaultClass.FATAL),
        (WriterLockLost("taken"), FaultClass.FATAL),
        (KeyboardInterrupt(), FaultClass.FATAL),
    ],
)
def test_classify(exc: BaseException, cls: FaultClass) -> None:
    assert classify(exc) is cls


def test_families_are_the_three_of_the_design() -> None:
    assert {c.family for c in FaultClass} == {"transient", "item", "fatal"}
    assert FaultClass.MEMORY.family == "transient" and FaultClass.UNEXPECTED.family == "item"


def test_the_message_does_not_matter() -> None:
    assert classify(ValueError("connection refused, timeout, out of memory")) is FaultClass.UNEXPECTED


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (UndecodableDocument("x"), "undecodable"),
        (EmptyDocument("x"), "empty"),
        (DocumentTooLarge("x"), "too_large"),
        (MalformedDocument("x"), "malformed"),
        (ItemError("x", reason="model_refused"), "model_refused"),
        (MemoryError(), "out_of_memory"),
        (RuntimeError("x"), "build_failed"),
    ],
)
def test_quarantine_reason(exc: BaseException, reason: str) -> None:
    assert quarantine_reason(exc) == reason
