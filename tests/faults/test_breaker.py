"""The circuit breaker: opens after N transient failures in a row, fails fast, probes after a cool-down."""

from __future__ import annotations

import pytest

from ragstate.errors import CircuitOpen, ItemError, StoreUnavailable
from ragstate.faults.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail() -> None:
    raise StoreUnavailable("server closed the connection")


def ok() -> str:
    return "ok"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changes() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def breaker(clock: Clock, changes: list[tuple[str, str]]) -> CircuitBreaker:
    return CircuitBreaker(
        "database",
        threshold=3,
        cooldown_s=10.0,
        clock=clock,
        on_change=lambda target, old, new, failures, last: changes.append((old, new)),
    )


def test_opens_after_threshold_failures_in_a_row_then_fails_fast(breaker, clock, changes) -> None:
    calls = []
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            breaker.call(fail)
    assert breaker.state == OPEN and changes == [(CLOSED, OPEN)]
    with pytest.raises(CircuitOpen) as fast:
        breaker.call(lambda: calls.append(1))
    assert calls == [], "an open breaker does not call the dependency"
    assert fast.value.target == "database" and fast.value.retry_in == pytest.approx(10.0)
    assert "3 failures in a row" in str(fast.value) and "server closed the connection" in str(fast.value)
    clock.now += 4
    assert breaker.remaining() == pytest.approx(6.0)


def test_a_success_between_failures_resets_the_count(breaker) -> None:
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            breaker.call(fail)
    breaker.call(ok)
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            breaker.call(fail)
    assert breaker.state == CLOSED


def test_probe_after_cooldown_closes_on_success(breaker, clock, changes) -> None:
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            breaker.call(fail)
    clock.now += 10
    assert breaker.call(ok) == "ok"
    assert breaker.state == CLOSED
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_failed_probe_opens_again_for_another_cooldown(breaker, clock, changes) -> None:
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            breaker.call(fail)
    clock.now += 10
    with pytest.raises(StoreUnavailable):
        breaker.call(fail)
    assert breaker.state == OPEN and breaker.remaining() == pytest.approx(10.0)
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]


def test_only_transient_failures_count(breaker) -> None:
    def refused() -> None:
        raise ItemError("the model refuses this input")

    def oom() -> None:
        raise MemoryError

    for _ in range(5):
        with pytest.raises(ItemError):
            breaker.call(refused)
        with pytest.raises(MemoryError):
            breaker.call(oom)
    assert breaker.state == CLOSED
