"""Observe: read source, ledger and store into an ``Observed`` value (read-only)."""

from ragstate.observe.observe import KindObservation, Observed, observe

__all__ = ["KindObservation", "Observed", "observe"]
