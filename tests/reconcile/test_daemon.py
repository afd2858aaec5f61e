"""The daemon in this process (a thread), for its mechanics: backoff after failed cycles and
the interval again after a good one, one daemon per store (or a standby), triggers that
run a cycle now, metrics and health endpoints, budgets over cycles, ``once``.

The acceptance tests with the real CLI in a subprocess (signals, the real model, a
PostgreSQL stopped) are in ``tests/test_daemon_process.py``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import edit
from helpers import HASH_MODELS, check_store, http_json, metrics_of, write_tiny_corpus
from ragstate import Project
from ragstate.errors import DaemonRunning
from ragstate.reconcile.daemon import Daemon
from ragstate.stores import ledger, records

#: engine mechanics the backends do not change (the lock, which they do, runs on both)
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
FAST = {"interval_s": 0.2, "jitter": 0, "backoff_multiplier": 2, "max_backoff_s": 10, "verify_interval_s": None}


class Running:
    """A daemon run in a thread (signals stay with the main thread: ``stop`` ends it)."""

    #: every daemon started in this module, stopped after its test even when the test failed
    started: list[Running] = []

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        Running.started.append(self)
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.code = self.daemon.run()
        except BaseException as exc:
            self.error = exc

    def until(self, predicate: Callable[[Daemon], bool], what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.daemon):
            assert self.error is None, self.error
            assert self.thread.is_alive(), f"the daemon ended (code {self.code}) before {what}"
            assert time.monotonic() < deadline, f"gave up waiting for {what}"
            time.sleep(0.05)

    def stop(self) -> int | None:
        self.daemon.stop("the test is over")
        self.thread.join(120)
        assert not self.thread.is_alive() and self.error is None, self.error
        return self.code


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test() -> Iterator[None]:
    # A daemon left running after a failed assertion keeps cycling (and logging) into the
    # tests that follow.
    yield
    while Running.started:
        running = Running.started.pop()
        if running.thread.is_alive():
            running.daemon.stop("the test is over")
            running.thread.join(120)


def daemon_runs(project: Any) -> list[records.RunRow]:
    """Runs with their daemon field, oldest first."""
    with project.store.session() as s:
        rows = records.recent(project.store, s, limit=1000)
    return sorted((r for r in rows if (r.counts or {}).get("daemon")), key=lambda r: r.started_at)


@SQLITE_ONLY
def test_failed_cycles_back_off_and_a_good_one_brings_back_the_interval(make_project, corpus: Path) -> None:
    project = make_project(models=HASH_MODELS, daemon=FAST)
    running = Running(Daemon(project))
    running.until(lambda d: d.last_success_at is not None, "a first converged cycle")
    away = corpus.with_name("away")
    corpus.rename(away)  # every cycle now fails: the source folder is gone
    running.until(lambda d: d.failures >= 2, "two failed cycles")
    away.rename(corpus)
    back = running.daemon.cycle
    running.until(lambda d: d.failures == 0 and d.cycle >= back + 2, "two cycles after the source came back")
    assert running.stop() == 0

    runs = daemon_runs(project)
    steps = [(r.status, r.counts["daemon"]["consecutive_failures"], r.counts["daemon"]["delay_s"]) for r in runs]
    failed = [i for i, (status, _, _) in enumerate(steps) if status == "failed"]
    assert len(failed) >= 2, steps
    # The failed cycles could not record themselves (they failed before a run started);
    # the daemon recorded them when the next cycle began.
    assert all("SourceError" in (runs[i].counts.get("error_type") or "") for i in failed)
    for previous, (_status, failures, delay) in zip(steps, steps[1:], strict=False):
        expected_failures = previous[1] + 1 if previous[0] == "failed" else 0
        assert failures == expected_failures, steps
        assert delay == (0.2 if failures == 0 else min(10, 0.2 * 2**failures)), steps
    recovered = runs[failed[-1] + 1]
    assert recovered.status == "converged" and recovered.counts["daemon"]["backoff"] is True
    assert recovered.counts["daemon"]["delay_s"] == 0.2 * 2 ** len(failed)
    after = runs[failed[-1] + 2]
    assert after.counts["daemon"]["backoff"] is False and after.counts["daemon"]["delay_s"] == 0.2
    for r in runs[1:]:
        assert r.counts["daemon"]["waited_s"] >= r.counts["daemon"]["delay_s"] * 0.99, "no cycle starts early"


def test_one_daemon_per_store_and_a_standby_takes_over(make_project) -> None:
    first = Running(Daemon(make_project(models=HASH_MODELS, daemon=FAST)))
    first.until(lambda d: d.cycle >= 1, "the first daemon's first cycle")
    with pytest.raises(DaemonRunning) as refused:
        Daemon(make_project(models=HASH_MODELS, daemon=FAST)).run()
    message = str(refused.value)
    assert f"pid {os.getpid()}" in message and "only one daemon may run per store" in message
    assert "daemon.on_conflict: wait" in message and refused.value.exit_code == 1

    standby_project = make_project(models=HASH_MODELS, daemon={**FAST, "on_conflict": "wait"})
    standby = Running(Daemon(standby_project))
    standby.until(lambda d: d.state == "waiting_for_lock", "the standby to wait")
    assert standby.daemon.cycle == 0
    assert first.stop() == 0
    standby.until(lambda d: d.cycle >= 1, "the standby to take over")
    assert standby.stop() == 0
    state = standby_project.status().daemon
    assert state["state"] == "stopped" and state["holder"]["pid"] == os.getpid()


@SQLITE_ONLY
def test_a_trigger_runs_a_cycle_now_and_the_metrics_show_the_drift_healed(make_project, corpus: Path) -> None:
    project = make_project(models=HASH_MODELS, daemon={"interval_s": 3600, "metrics_port": 0})
    running = Running(Daemon(project))
    running.until(lambda d: d.state == "idle", "the first cycle")
    url = running.daemon.metrics_url
    assert url is not None and url.startswith("http://127.0.0.1:")
    before = metrics_of(url)
    assert all(name.startswith("ragstate_") for name, _ in before)
    assert before[("ragstate_runs_total", (("outcome", "converged"),))] == 1
    assert before[("ragstate_items_built_total", (("kind", "doc_embeddings"),))] == 18
    assert before[("ragstate_embedding_tokens_total", (("kind", "doc_embeddings"), ("model", "default")))] > 0
    assert before[("ragstate_pipeline_ready", (("pipeline", "basic"),))] == 1
    assert before[("ragstate_breaker_state", (("state", "closed"), ("target", "database")))] == 1
    assert before[("ragstate_last_success_timestamp_seconds", ())] > 0
    assert http_json(url + "/readyz") == (200, {"ready": True, "pipelines": {"basic": {"ready": True, "reasons": []}}})
    code, health = http_json(url + "/healthz")
    assert code == 200 and health["state"] == "idle" and health["cycle"] == 1

    # an edit of the title, which the document embedding reads (one past its text is no drift)
    edit(corpus / "markdown/PMC12429712.md", old="Influence of Tension", new="Influence of Yarn Tension")
    (corpus / "text/new.txt").write_text("Kiwifruit germination\n\nSeeds sprout faster when warm.\n")
    assert http_json(url + "/reconcile", method="POST") == (202, {"triggered": True})
    running.until(lambda d: d.cycle >= 2 and d.state == "idle", "the triggered cycle")
    after = metrics_of(url)
    assert after[("ragstate_runs_total", (("outcome", "converged"),))] == 2
    assert after[("ragstate_items_built_total", (("kind", "doc_embeddings"),))] == 20
    assert after[("ragstate_drift_found_total", (("class", "missing"), ("kind", "doc_embeddings")))] == 19
    assert after[("ragstate_drift_found_total", (("class", "stale"), ("kind", "doc_embeddings")))] == 1
    drift = {k: v for k, v in after.items() if k[0] == "ragstate_drift_documents"}
    assert drift and set(drift.values()) == {0.0}, "healed: no drift left"
    assert after[("ragstate_condition", (("name", "basic"), ("scope", "pipeline"), ("type", "Ready")))] == 1
    assert http_json(url + "/nowhere")[0] == 404
    assert running.stop() == 0
    (triggered,) = [r for r in daemon_runs(project) if r.counts["daemon"]["trigger"] == "http"]
    assert triggered.counts["kinds"]["doc_embeddings"]["built"] == 2


@SQLITE_ONLY
def test_a_backlog_heals_over_budgeted_cycles(make_project, tmp_path: Path) -> None:
    write_tiny_corpus(tmp_path / "docs", 40)
    project = make_project(
        source={"path": str(tmp_path / "docs")},
        models=HASH_MODELS,
        reconcile={"batch_size": 4},
        daemon={**FAST, "interval_s": 0.05, "max_items": 10},
    )
    running = Running(Daemon(project))
    running.until(lambda d: d.last_success_at is not None, "a converged cycle")
    assert running.stop() == 0
    runs = daemon_runs(project)
    assert [r.status for r in runs[:4]] == ["partial", "partial", "partial", "converged"]
    assert [r.counts["kinds"]["doc_embeddings"]["built"] for r in runs[:4]] == [10, 10, 10, 10]
    assert all(r.counts["daemon"]["delay_s"] == 0.05 for r in runs[1:]), "a partial cycle is not a failure"
    check_store(project)


@SQLITE_ONLY
def test_once_runs_one_cycle_with_the_exit_codes_of_apply(make_project, tmp_path: Path) -> None:
    write_tiny_corpus(tmp_path / "docs", 20)
    options = {"source": {"path": str(tmp_path / "docs")}, "models": HASH_MODELS, "reconcile": {"batch_size": 4}}
    assert Daemon(make_project(**options, daemon={"max_items": 8}), once=True).run() == 2, "work left"
    project = make_project(**options)
    assert Daemon(project, once=True).run() == 0
    (last,) = [r for r in daemon_runs(project) if r.status == "converged"]
    assert last.command == "daemon verify" and last.counts["verify"]["in_sync"], "the first cycle verifies"
    narrowed = make_project(**options, scope={"first": 2})
    assert Daemon(narrowed, once=True).run() == 1, "a refused destructive plan"
    assert Daemon(narrowed, once=True, allow_destructive=True).run() == 0


def test_sigterm_while_a_cycle_waits_for_the_writer_lock_stops_the_daemon(make_project) -> None:
    holder = make_project(models=HASH_MODELS)
    project = make_project(models=HASH_MODELS, daemon=FAST, reconcile={"lock": "wait", "lock_timeout_s": 3600})
    with holder.writer_lock(command="apply"):
        running = Running(Daemon(project))
        running.until(lambda d: d.state == "reconciling", "the first cycle to wait for the writer lock")
        assert running.stop() == 0, "stopped without waiting for the apply that holds the lock"
    (run,) = daemon_runs(project)
    assert run.status == "failed" and run.counts["error_type"] == "StoreLocked"
    assert "stopped waiting for" in run.error and "the test is over" in run.error
    assert project.status().daemon["state"] == "stopped"


def _active_generation(project: Any) -> int:
    with project.store.session() as s:
        (g,) = [g.generation for g in ledger.generations(project.store, s, "doc_embeddings") if g.state == "active"]
    return g


def test_a_spec_change_reaches_the_daemon_and_it_never_undoes_a_newer_specs_run(
    make_spec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15 item 2: a daemon and an ``apply`` from different specs must not fight."""
    path, other = tmp_path / "ragstate.yaml", tmp_path / "other.yaml"

    def write(where: Path, text: str) -> None:
        spec = make_spec(
            models=HASH_MODELS,
            daemon=FAST,
            artifacts={"doc_embeddings": {"text": text}},
            generations={"golden": {"queries": 0}},  # the hash embedder's recall says nothing here
        )
        where.write_text(yaml.safe_dump(spec), encoding="utf-8")

    write(path, "{title}\n\n{summary}")
    project = Project.from_file(path)
    running = Running(Daemon(project))
    running.until(lambda d: d.last_success_at is not None, "a first converged cycle")
    assert _active_generation(project) == 1

    # The daemon's spec file is edited and applied by hand: the daemon reads it on its next
    # cycle and keeps generation 2 (it used to switch back to generation 1, its old spec).
    write(path, "{title}")
    with Project.from_file(path) as by_hand:
        assert by_hand.apply().converged and _active_generation(by_hand) == 2
        wanted = by_hand.spec_hash
    seen = running.daemon.cycle
    running.until(lambda d: d.cycle >= seen + 3 and d.state == "idle", "three more cycles")
    assert running.daemon.project.spec_hash == wanted and _active_generation(project) == 2
    assert running.daemon.last_error is None

    # An apply from another spec file: the daemon's spec is older than that run's, so it
    # refuses to act (and says so) rather than switch generation 3 back.
    write(other, "{abstract}")
    with Project.from_file(other) as elsewhere:
        assert elsewhere.apply().converged and _active_generation(elsewhere) == 3
        newer = elsewhere.spec_hash
    seen = running.daemon.cycle
    running.until(lambda d: d.cycle >= seen + 3, "three more cycles")
    assert _active_generation(project) == 3
    error = running.daemon.last_error or ""
    assert "newer spec" in error and newer in error and wanted in error and str(path) in error
    assert project.status().daemon["last_error"] == running.daemon.last_error
    assert any("newer spec" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")

    # The daemon's own file catches up (here: the same spec): it acts again, nothing to undo.
    other_text = other.read_text(encoding="utf-8")
    path.write_text(other_text, encoding="utf-8")
    seen = running.daemon.cycle
    running.until(lambda d: d.cycle >= seen + 2 and d.last_error is None, "the daemon to act again")
    assert running.daemon.project.spec_hash == newer and _active_generation(project) == 3
    assert running.stop() == 0
