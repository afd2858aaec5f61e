"""Fault handling: the error taxonomy, retries with backoff, circuit breakers, the run's fault log."""

from ragstate.faults.breaker import CircuitBreaker
from ragstate.faults.log import FaultLog
from ragstate.faults.retry import Guard
from ragstate.faults.taxonomy import FaultClass, classify, quarantine_reason

__all__ = ["CircuitBreaker", "FaultClass", "FaultLog", "Guard", "classify", "quarantine_reason"]
