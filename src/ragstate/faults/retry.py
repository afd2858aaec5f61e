"""Retries: the one place ragstate tries anything again (tenacity), behind circuit breakers.

``Guard.call(target, fn)`` runs ``fn`` through the breaker of ``target`` (``database``,
``embedder``, ``source``) and retries it while it fails with a *transient* error
(``faults.taxonomy``), at most ``reconcile.retry.attempts`` times in all, waiting
``initial_delay_s · multiplier^n`` (capped at ``max_delay_s``) plus up to ``jitter_s`` of
random jitter between tries, or as long as the open breaker still cools down, or as
long as the failing server asked (``TransientError.retry_after``: HTTP ``Retry-After``),
whichever is longest. Any other error is raised at once. When the tries run out the last error is
raised: the caller's run fails and the next run resumes.

A ``Guard`` outlives runs (a daemon keeps its breakers between cycles); each run points
it at its own ``FaultLog`` with ``recording``.

Failures and retries are logged under the dependency that failed (``origin``), not the
call's target: a build (target ``embedder``) that reads the embedding cache fails with a
``StoreError`` when the database is down, and that outage is the database's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from ragstate.errors import CircuitOpen, SourceError, StoreError
from ragstate.faults.breaker import CircuitBreaker
from ragstate.faults.log import FaultLog
from ragstate.faults.taxonomy import is_transient
from ragstate.spec.model import BreakerSpec, RetrySpec

T = TypeVar("T")

#: the longest ``Retry-After`` honoured (a server asking for hours is waited for by the next run)
MAX_RETRY_AFTER_S = 600.0


class Guard:
    """Retry policy and breakers for one project."""

    def __init__(
        self,
        retry: RetrySpec,
        breaker: BreakerSpec,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.retry = retry
        self.breaker_spec = breaker
        self.log = FaultLog()
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, target: str) -> CircuitBreaker:
        with self._lock:
            if target not in self._breakers:
                self._breakers[target] = CircuitBreaker(
                    target,
                    threshold=self.breaker_spec.threshold,
                    cooldown_s=self.breaker_spec.cooldown_s,
                    clock=self._clock,
                    on_change=lambda *change: self.log.breaker_changed(*change),
                )
            return self._breakers[target]

    def states(self) -> dict[str, str]:
        """The state of every breaker used so far, by target."""
        with self._lock:
            breakers = dict(self._breakers)
        return {t: b.state for t, b in sorted(breakers.items())}

    @contextmanager
    def recording(self, log: FaultLog) -> Iterator[FaultLog]:
        """Record into ``log`` for the duration of the block (one run)."""
        previous, self.log = self.log, log
        try:
            yield log
        finally:
            self.log = previous

    def call(self, target: str, fn: Callable[[], T]) -> T:
        """``fn()``, through ``target``'s breaker, retried on transient errors (see above)."""
        breaker = self.breaker(target)
        r = self.retry
        backoff = wait_exponential(
            multiplier=r.initial_delay_s, exp_base=r.multiplier, max=r.max_delay_s
        ) + wait_random(0, r.jitter_s)

        def wait(state: RetryCallState) -> float:
            # A server's Retry-After is a floor, not a replacement: the breaker's cool-down
            # and our own backoff still apply when they are longer.
            exc = state.outcome.exception() if state.outcome is not None else None
            asked = min(getattr(exc, "retry_after", None) or 0.0, MAX_RETRY_AFTER_S)
            return max(backoff(state), breaker.remaining(), asked)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            if isinstance(exc, CircuitOpen):
                self.log.turned_away(target)
                return
            self.log.retried(origin(exc, target))
            if exc is not None:
                delay = state.next_action.sleep if state.next_action is not None else 0.0
                self.log.failed(
                    origin(exc, target),
                    "transient",
                    exc,
                    f"retry {state.attempt_number + 1}/{r.attempts} in {delay:.2f} s",
                )

        retrying = Retrying(
            stop=stop_after_attempt(r.attempts),
            wait=wait,
            retry=retry_if_exception(is_transient),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(breaker.call, fn)
        except BaseException as exc:
            if is_transient(exc):
                self.log.failed(origin(exc, target), "transient", exc, f"gave up after {r.attempts} attempts")
            raise


def origin(exc: BaseException | None, target: str) -> str:
    """The dependency ``exc`` came from: ``database`` for a store error, ``source`` for a
    source error, else the call's ``target``."""
    if isinstance(exc, StoreError):
        return "database"
    if isinstance(exc, SourceError):
        return "source"
    return target
