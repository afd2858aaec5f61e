"""ragstate.stores.records on both backends: run records, measured rates, pipeline and daemon states."""

from __future__ import annotations

import os
import time
from typing import Any

from ragstate.stores import records
from ragstate.stores.base import Store


def finished(store: Store, run_id: str, kinds: dict[str, Any], *, started: float, command: str = "apply") -> None:
    with store.session() as s:
        records.insert_finished(
            store,
            s,
            run_id,
            command,
            "spec",
            status="converged",
            started_at=started,
            finished_at=started + 1,
            counts={"kinds": kinds},
            timings={},
            error=None,
        )


def test_a_run_is_started_progressed_and_finished_with_its_secrets_masked(store: Store) -> None:
    with store.session() as s:
        records.start(store, s, "run-1", "apply", "spec-hash", {"actions": 3})
        running = records.get(store, s, "run-1")
        assert running is not None and running.status == "running" and running.finished_at is None
        assert running.plan == {"actions": 3} and running.pid == os.getpid() and running.host
        with s.transaction():
            records.progress(store, s, "run-1", {"done": 2, "of": 3})
        records.finish(
            store, s, "run-1", "failed", {"kinds": {}}, {"apply_s": 1.5}, error="connect postgresql://u:hunter2@db/x"
        )
        run = records.get(store, s, "run-1")
        assert run is not None
        assert (run.status, run.progress, run.counts, run.timings) == (
            "failed",
            {"done": 2, "of": 3},
            {"kinds": {}},
            {"apply_s": 1.5},
        )
        assert run.finished_at is not None and run.finished_at >= run.started_at
        assert "hunter2" not in (run.error or "") and "postgresql://u:" in (run.error or "")
        assert records.get(store, s, "run-2") is None


def test_a_run_recorded_after_the_fact_never_overwrites_one_that_recorded_itself(store: Store) -> None:
    with store.session() as s:
        records.start(store, s, "run-1", "apply", "spec", {})
    finished(store, "run-1", {}, started=1.0)
    finished(store, "run-2", {}, started=2.0, command="verify")
    with store.session() as s:
        assert records.get(store, s, "run-1").status == "running"  # type: ignore[union-attr]
        assert records.get(store, s, "run-2").status == "converged"  # type: ignore[union-attr]
        assert [r.run_id for r in records.recent(store, s)] == ["run-1", "run-2"]  # newest first
        assert [r.run_id for r in records.recent(store, s, command="verify")] == ["run-2"]
        assert [r.run_id for r in records.recent(store, s, limit=1)] == ["run-1"]
        assert records.last_since(store, s, 1.5).run_id == "run-1"  # type: ignore[union-attr]
        assert records.last_since(store, s, time.time() + 60) is None


def test_the_measured_rate_comes_from_the_newest_run_that_built_enough(store: Store) -> None:
    t = time.time()
    # oldest: a real measurement of both kinds
    finished(
        store,
        "old",
        {
            "chunks": {"built": 20, "build_seconds": 4.0},
            "doc_embeddings": {
                "built": 20,
                "build_seconds": 10.0,
                "embedded": 10,
                "cache_hits": 10,
                "estimate_tokens": 4000,
                "model_fp": "m1",
            },
        },
        started=t - 30,
    )
    # newer, but too small to count (start-up, not throughput), and another model
    finished(store, "tiny", {"chunks": {"built": 3, "build_seconds": 0.1}}, started=t - 20)
    finished(
        store,
        "other",
        {
            "doc_embeddings": {
                "built": 50,
                "build_seconds": 5.0,
                "embedded": 50,
                "estimate_tokens": 9000,
                "model_fp": "m2",
            }
        },
        started=t - 10,
    )
    with store.session() as s:
        chunks = records.measured_rate(store, s, "chunks")
        assert chunks == records.Rate(5.0, "documents", "measured by run old")
        # only the share fed to the model counts: half of 4000 tokens in 10 s
        assert records.measured_rate(store, s, "doc_embeddings", "m1") == records.Rate(
            200.0, "tokens", "measured by run old"
        )
        assert records.measured_rate(store, s, "doc_embeddings", "m2").value == 1800.0  # type: ignore[union-attr]
        assert records.measured_rate(store, s, "doc_embeddings", "m3") is None
        assert records.measured_rate(store, s, "entities") is None


def test_pipeline_states_are_replaced_whole(store: Store) -> None:
    with store.session() as s:
        assert records.pipeline_states(store, s) == {}
        records.set_pipeline_states(store, s, {"basic": (True, []), "hyde": (False, ["no generator"])}, "h1")
        records.set_pipeline_states(store, s, {"basic": (False, ["doc_embeddings: stale 2"])}, "h2")
        states = records.pipeline_states(store, s)
    assert list(states) == ["basic"]
    assert states["basic"]["ready"] is False and states["basic"]["reasons"] == ["doc_embeddings: stale 2"]
    assert states["basic"]["spec_hash"] == "h2"


def test_the_daemon_state_is_upserted_by_name_with_its_error_masked(store: Store) -> None:
    with store.session() as s:
        assert records.daemon_state(store, s) is None
        state = {"state": "backoff", "cycle": 3, "consecutive_failures": 2, "interval_s": 30.0}
        assert records.set_daemon_state(store, s, {**state, "holder": {"pid": 7}, "last_error": "password=hunter2"})
        assert records.set_daemon_state(store, s, {**state, "cycle": 4, "last_error": None})
        assert records.set_daemon_state(store, s, {**state, "state": "idle"}, name="other")
        read = records.daemon_state(store, s)
        assert read is not None
        assert (read["state"], read["cycle"], read["consecutive_failures"], read["holder"]) == ("backoff", 4, 2, {})
        assert read["last_error"] is None
        records.set_daemon_state(store, s, {**state, "last_error": "password=hunter2 refused"})
        assert "hunter2" not in records.daemon_state(store, s)["last_error"]  # type: ignore[index]
        assert records.daemon_state(store, s, "other")["state"] == "idle"  # type: ignore[index]
        assert records.daemon_state(store, s, "nobody") is None
