"""The error taxonomy: the class of a failure decides how the engine handles it.

Read from markers and exception types, never from messages:

==============  ========================================  ======================================
class           what                                      handling
==============  ========================================  ======================================
``transient``   ``TransientError`` (lost connection,      retried with exponential backoff and
                busy or locked database, serialisation    jitter (``reconcile.retry``), counted
                conflict, ``ComputeUnavailable``),        by the dependency's circuit breaker;
                ``ConnectionError``, ``TimeoutError``     still failing: the run fails (exit 1)
                                                          and the next one resumes
``memory``      ``MemoryError``, a framework's            transient too: the batch is halved
                ``OutOfMemoryError``                      and built again; a document that runs
                                                          out alone is quarantined
``item``        ``ItemError`` (a document that cannot be  the batch is split to find it; it is
                read, a model refusing one input, a       quarantined and the rest goes on
                vector failing the quality checks)
``unexpected``  any other ``Exception`` from a model or   as ``item``; but ``max_failure_streak``
                plugin while building                     in a row with no success stop the run
``fatal``       ``TerminalError`` and every other         the run stops (exit 1); committed
                ragstate error (bad spec, missing model   batches stay, nothing is half-written
                or permission, schema), interrupts
==============  ========================================  ======================================

The run record lists the failures by class (``faults.failures``); ``family`` folds the
five into the three of the design (transient, item, fatal).
"""

from __future__ import annotations

from enum import StrEnum

from ragstate.errors import ItemError, RagstateError, TransientError

#: class names frameworks give their out-of-memory errors (torch: ``OutOfMemoryError``)
_OOM_NAMES = frozenset({"OutOfMemoryError"})


class FaultClass(StrEnum):
    TRANSIENT = "transient"
    MEMORY = "memory"
    ITEM = "item"
    UNEXPECTED = "unexpected"
    FATAL = "fatal"

    @property
    def family(self) -> str:
        """transient, item or fatal."""
        return _FAMILY[self]


_FAMILY = {
    FaultClass.TRANSIENT: "transient",
    FaultClass.MEMORY: "transient",
    FaultClass.ITEM: "item",
    FaultClass.UNEXPECTED: "item",
    FaultClass.FATAL: "fatal",
}


def classify(exc: BaseException) -> FaultClass:
    """The class of ``exc`` (see the table above)."""
    if isinstance(exc, TransientError):
        return FaultClass.TRANSIENT
    if isinstance(exc, ItemError):
        return FaultClass.ITEM
    if isinstance(exc, RagstateError):
        return FaultClass.FATAL
    if isinstance(exc, MemoryError) or any(t.__name__ in _OOM_NAMES for t in type(exc).__mro__):
        return FaultClass.MEMORY
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return FaultClass.TRANSIENT
    if isinstance(exc, Exception):
        return FaultClass.UNEXPECTED
    return FaultClass.FATAL  # KeyboardInterrupt, SystemExit


def is_transient(exc: BaseException) -> bool:
    """True when trying the same call again later may succeed (memory is handled apart)."""
    return classify(exc) is FaultClass.TRANSIENT


def quarantine_reason(exc: BaseException) -> str:
    """The reason class a quarantine entry records for ``exc``."""
    if isinstance(exc, ItemError):
        return exc.reason
    if classify(exc) is FaultClass.MEMORY:
        return "out_of_memory"
    return "build_failed"
