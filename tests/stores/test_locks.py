"""The single-writer lock: exclusive, named holder, fenced against a lost lock, never stuck."""

from __future__ import annotations

import logging
import os

import pytest

from helpers import HASH_MODELS
from ragstate.errors import StoreLocked, WriterLockLost
from ragstate.stores import locks, records


def test_a_second_writer_fails_with_a_message_naming_the_holder(make_project) -> None:
    first = make_project(models=HASH_MODELS)
    second = make_project(models=HASH_MODELS, reconcile={"lock": "fail"})
    with first.writer_lock(command="apply"):
        with pytest.raises(StoreLocked) as locked:
            second.apply()
    message = str(locked.value)
    assert f"pid {os.getpid()}" in message and "`apply`" in message and "reconcile.lock: wait" in message
    assert locked.value.holder["pid"] == os.getpid() and locked.value.exit_code == 1
    assert second.apply().converged, "free again once the holder let go"


def test_a_waiting_writer_gives_up_after_its_timeout(make_project) -> None:
    first = make_project(models=HASH_MODELS)
    second = make_project(models=HASH_MODELS, reconcile={"lock": "wait", "lock_timeout_s": 0.3})
    notes: list[str] = []

    class Notes:
        def note(self, message: str) -> None:
            notes.append(message)

        def start(self, *a) -> None: ...
        def advance(self, *a) -> None: ...
        def finish(self, *a) -> None: ...

    with first.writer_lock(command="reconcile"):
        with pytest.raises(StoreLocked, match="gave up after waiting"):
            second.apply(progress=Notes())
    assert len(notes) == 1 and notes[0].startswith("waiting for `reconcile`")


def test_a_waiting_writer_logs_a_warning_naming_the_holder_without_a_terminal(make_project, caplog) -> None:
    first = make_project(models=HASH_MODELS)
    second = make_project(models=HASH_MODELS, reconcile={"lock": "wait", "lock_timeout_s": 0.3})
    with caplog.at_level(logging.WARNING, logger="ragstate"), first.writer_lock(command="reconcile"):
        with pytest.raises(StoreLocked):
            second.apply()  # no progress bar: what a run without a terminal gets
    said = [r for r in caplog.records if "waiting for the writer lock" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert f"pid {os.getpid()}" in said[0].getMessage() and "`reconcile`" in said[0].getMessage()


def test_the_lock_is_reentrant_within_a_project(make_project) -> None:
    project = make_project(models=HASH_MODELS, reconcile={"lock": "fail"})
    with project.writer_lock() as outer:
        record = project.reconcile()  # takes it again: the same lease
        assert record.converged
        assert project._lease is outer
    assert project._lease is None


def test_a_lost_lock_cannot_commit_anything(make_project) -> None:
    first = make_project(models=HASH_MODELS)
    second = make_project(models=HASH_MODELS)
    store = first.store
    lease = locks.acquire(store)
    # Simulate a lost lock: the process lock goes (as when a server connection dies) and
    # another process takes over, bumping the epoch.
    lease.plock.release()
    other = locks.acquire(second.store)
    try:
        assert other.epoch == lease.epoch + 1
        with pytest.raises(WriterLockLost), store.transaction() as s:
            s.execute("DELETE FROM {documents}")
            lease.fence(s)
    finally:
        other.release()


def test_taking_the_lock_marks_runs_of_dead_processes_interrupted(make_project) -> None:
    project = make_project(models=HASH_MODELS)
    project.apply()
    with project.store.session() as s:
        records.start(project.store, s, "dead-run", "apply", "x", {})
    lease = locks.acquire(project.store)
    lease.release()
    assert lease.interrupted_runs == 1
    with project.store.session() as s:
        row = records.get(project.store, s, "dead-run")
    assert row is not None and row.status == "interrupted" and "killed or crashed" in (row.error or "")


@pytest.mark.parametrize("backend", ["postgres"])
def test_postgres_lock_connection_lost_is_taken_again(make_project) -> None:
    project = make_project(models=HASH_MODELS)
    store = project.store
    lease = locks.acquire(store)
    try:
        conn = lease.plock._conn
        with store.session() as s:
            s.execute("SELECT pg_terminate_backend(?)", (conn.info.backend_pid,))
        with store.transaction() as s:
            lease.fence(s)  # reconnects and takes the lock again: nobody else had it
        assert lease.plock._conn is not conn and not lease.plock._conn.closed
    finally:
        lease.release()
