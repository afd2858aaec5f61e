"""Retries: exponential backoff with jitter from the spec, transient errors only, behind the breaker."""

from __future__ import annotations

import pytest

from ragstate.errors import ComputeUnavailable, ModelError, StoreUnavailable
from ragstate.faults import FaultLog, Guard
from ragstate.spec.model import BreakerSpec, RetrySpec


class FakeTime:
    """A clock that only moves when the guard sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def flaky(failures: int, error: Exception):
    state = {"calls": 0}

    def call() -> str:
        state["calls"] += 1
        if state["calls"] <= failures:
            raise error
        return "done"

    return call, state


def make_guard(t: FakeTime, *, attempts=6, threshold=100, cooldown=5.0, jitter=0.0) -> Guard:
    retry = RetrySpec(attempts=attempts, initial_delay_s=0.5, multiplier=2.0, max_delay_s=3.0, jitter_s=jitter)
    return Guard(retry, BreakerSpec(threshold=threshold, cooldown_s=cooldown), sleep=t.sleep, clock=t.clock)


def test_transient_errors_are_retried_with_exponential_backoff_capped() -> None:
    t = FakeTime()
    guard = make_guard(t)
    call, state = flaky(4, StoreUnavailable("connection refused"))
    with guard.recording(FaultLog()) as log:
        assert guard.call("database", call) == "done"
    assert state["calls"] == 5
    assert t.sleeps == [0.5, 1.0, 2.0, 3.0], "initial · multiplier^n, capped at max_delay_s"
    assert log.retries == {"database": 4}
    assert log.failures == {"database": {"transient": 4}}
    assert [e["handling"] for e in log.events][:2] == ["retry 2/6 in 0.50 s", "retry 3/6 in 1.00 s"]


def test_jitter_adds_at_most_jitter_s() -> None:
    t = FakeTime()
    guard = make_guard(t, jitter=0.25)
    call, _ = flaky(3, ComputeUnavailable("rate limited"))
    guard.call("embedder", call)
    base = [0.5, 1.0, 2.0]
    assert all(b <= s <= b + 0.25 for b, s in zip(base, t.sleeps, strict=True))


def test_gives_up_after_attempts_with_the_last_error() -> None:
    t = FakeTime()
    guard = make_guard(t, attempts=3)
    call, state = flaky(10, StoreUnavailable("server gone"))
    with guard.recording(FaultLog()) as log, pytest.raises(StoreUnavailable, match="server gone"):
        guard.call("database", call)
    assert state["calls"] == 3 and log.retries == {"database": 2}
    assert log.events[-1]["handling"] == "gave up after 3 attempts"


def test_other_errors_are_not_retried() -> None:
    t = FakeTime()
    guard = make_guard(t)
    call, state = flaky(1, ModelError("no such model"))
    with pytest.raises(ModelError):
        guard.call("embedder", call)
    assert state["calls"] == 1 and t.sleeps == []


def test_an_open_breaker_makes_retries_wait_for_its_cooldown() -> None:
    t = FakeTime()
    guard = make_guard(t, attempts=8, threshold=2, cooldown=5.0)
    call, state = flaky(3, StoreUnavailable("server restarting"))
    with guard.recording(FaultLog()) as log:
        assert guard.call("database", call) == "done"
    # two failures open the breaker; the next wait lasts the whole cool-down, then one probe
    # (failing: open again, wait again), then the probe that succeeds.
    assert t.sleeps[0] == 0.5 and t.sleeps[1] == pytest.approx(5.0)
    assert state["calls"] == 4, "no call reached the dependency while the breaker was open"
    assert [(c["from"], c["to"]) for c in log.breaker] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert guard.states() == {"database": "closed"}


def test_breaker_state_outlives_a_run() -> None:
    t = FakeTime()
    guard = make_guard(t, attempts=2, threshold=2, cooldown=60.0)
    call, _ = flaky(10, StoreUnavailable("down"))
    with pytest.raises(StoreUnavailable):
        guard.call("database", call)
    assert guard.states() == {"database": "open"}
    # The next run's first try is turned away without reaching the server; the retry
    # waits out the cool-down and probes.
    with guard.recording(FaultLog()) as log, pytest.raises(StoreUnavailable):
        guard.call("database", call)
    assert log.fast_failed == {"database": 1} and t.sleeps[-1] == pytest.approx(60.0)
    assert [(c["from"], c["to"]) for c in log.breaker] == [("open", "half_open"), ("half_open", "open")]


def test_a_database_outage_inside_a_build_is_counted_as_the_databases() -> None:
    """Issue 15, item 9: a build (target embedder) reading the embedding cache while the database
    was down logged the outage as embedder retries."""
    t = FakeTime()
    guard = make_guard(t)
    call, _ = flaky(2, StoreUnavailable("connection refused"))
    with guard.recording(FaultLog()) as log:
        assert guard.call("embedder", call) == "done"
    assert log.retries == {"database": 2} and log.failures == {"database": {"transient": 2}}
    assert {e["target"] for e in log.events} == {"database"}
    model, _ = flaky(1, ComputeUnavailable("rate limited"))
    with guard.recording(FaultLog()) as log:
        guard.call("embedder", model)
    assert log.retries == {"embedder": 1}, "the model's own failures stay the embedder's"
