"""A circuit breaker: fail fast while a dependency is down, probe it after a cool-down.

=============  ====================================================================
state          behaviour
=============  ====================================================================
``closed``     calls go through; ``threshold`` transient failures in a row open it
``open``       calls fail at once with ``CircuitOpen`` until ``cooldown_s`` passed
``half_open``  one call, the probe, goes through: success closes the breaker, a
               transient failure opens it for another cool-down
=============  ====================================================================

Only transient failures count. An item error or a refused statement means the
dependency answered, which is what the breaker wants to know; an out-of-memory error
is this process's problem and changes nothing. Every change of state is reported to
``on_change`` (the run record keeps them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ragstate.errors import CircuitOpen
from ragstate.faults.taxonomy import FaultClass, classify
from ragstate.redact import redact

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

#: how soon a caller turned away during someone else's probe may try again
PROBE_WAIT_S = 0.05

OnChange = Callable[[str, str, str, int, str], None]


class CircuitBreaker:
    """One dependency's breaker (``database``, ``embedder``, ``source``). Thread-safe."""

    def __init__(
        self,
        target: str,
        *,
        threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: OnChange | None = None,
    ):
        self.target = target
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe: int | None = None
        self._last_error = ""

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def remaining(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        with self._lock:
            if self._state != OPEN:
                return 0.0
            return max(0.0, self._opened_at + self.cooldown_s - self._clock())

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` unless the breaker is open; record how it went."""
        self._enter()
        try:
            result = fn()
        except BaseException as exc:
            self._exit(classify(exc), exc)
            raise
        self._exit(None, None)
        return result

    # --- internals --------------------------------------------------------------------

    def _enter(self) -> None:
        me = threading.get_ident()
        with self._lock:
            if self._state == CLOSED:
                return
            if self._state == OPEN:
                wait = self._opened_at + self.cooldown_s - self._clock()
                if wait > 0:
                    raise self._open_error(wait)
                self._change(HALF_OPEN)
            if self._probe is None:
                self._probe = me
                return
            if self._probe != me:
                raise self._open_error(PROBE_WAIT_S)

    def _exit(self, cls: FaultClass | None, exc: BaseException | None) -> None:
        me = threading.get_ident()
        with self._lock:
            probing = self._probe == me
            if probing:
                self._probe = None
            if cls is FaultClass.MEMORY:
                return
            if cls is FaultClass.TRANSIENT:
                self._failures += 1
                self._last_error = redact(f"{type(exc).__name__}: {exc}")[:300]
                if self._state == HALF_OPEN and probing:
                    self._opened_at = self._clock()
                    self._change(OPEN)
                elif self._state == CLOSED and self._failures >= self.threshold:
                    self._opened_at = self._clock()
                    self._change(OPEN)
                return
            # Success, or an answer that is not about reachability: the dependency is up.
            self._failures = 0
            if self._state != CLOSED:
                self._change(CLOSED)

    def _change(self, new: str) -> None:
        old, self._state = self._state, new
        if self.on_change is not None and old != new:
            self.on_change(self.target, old, new, self._failures, self._last_error)

    def _open_error(self, wait: float) -> CircuitOpen:
        return CircuitOpen(
            f"{self.target}: circuit open after {self._failures} failures in a row "
            f"(last: {self._last_error or 'unknown'}); next try in {wait:.1f} s",
            target=self.target,
            retry_in=wait,
        )
