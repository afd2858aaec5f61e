"""Live mode (``reconcile.live``): change notifications as hints on top of the daemon's interval.

The daemon runs in a thread of this process (``Running``), its interval long (an hour) so
that what heals a change within the bounded wait is the live path; the tests that heal a
lost hint set a short interval instead. Every wait polls the store or the daemon with a
generous timeout: nothing here is a timed assertion.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import HASH_MODELS, check_store, http_json, ledger_ids, metrics_of, write_tiny_corpus
from ragstate.reconcile.daemon import Daemon
from ragstate.reconcile.live import ChangeQueue, stamp
from reconcile.test_daemon import Running, daemon_runs
from reconcile.test_daemon import _no_daemon_outlives_its_test  # noqa: F401  (autouse here too)
from sources.conftest import UserTable

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
POSTGRES_ONLY = pytest.mark.parametrize("backend", ["postgres"], indirect=True)
#: an hour between full cycles: within a test, only a live cycle can heal a change
LIVE = {"interval_s": 3600, "jitter": 0, "verify_interval_s": None, "live": True, "live_debounce_s": 0.2}


def live_runs(project: Any) -> list[Any]:
    return [r for r in daemon_runs(project) if r.counts["daemon"]["trigger"] == "live"]


def built(run: Any, kind: str = "doc_embeddings") -> tuple[int, int]:
    """(documents built, documents deleted) by ``run`` for ``kind``."""
    k = run.counts["kinds"].get(kind, {})
    return k.get("built", 0), k.get("deleted", 0) + k.get("purged", 0)


def wait_for(predicate: Any, what: str, running: Running, timeout: float = 120) -> None:
    running.until(lambda _d: predicate(), what, timeout)


# --- the queue --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_queue_coalesces_waits_for_stable_files_and_overflows_into_a_full_observation(tmp_path: Path) -> None:
    clock = Clock()
    queue = ChangeQueue(capacity=3, batch=2, settle_s=1.0, stamp_of=lambda p: stamp(str(tmp_path / p)), clock=clock)
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text("one")
    queue.put(["a.txt", "b.txt"])
    clock.now += 0.5
    queue.put(["a.txt", "c.txt"])  # a.txt again: coalesced into the change waiting
    assert (queue.counts.received, queue.counts.coalesced, queue.counts.dropped) == (4, 1, 0)
    assert queue.take() is None, "no path is quiet for the debounce yet"
    clock.now += 0.6
    hint = queue.take()
    assert hint is not None and hint.paths == frozenset({"b.txt"}), "a.txt had an event 0.6 s ago"
    # c.txt is written to without a new event reaching the queue: its size moved, so it is
    # not stable and waits another debounce; a.txt is
    (tmp_path / "c.txt").write_text("one two three")
    clock.now += 1.0
    hint = queue.take()
    assert hint is not None and hint.paths == frozenset({"a.txt"})
    assert queue.take() is None, "c.txt changed since its event"
    clock.now += 1.0
    hint = queue.take()
    assert hint is not None and hint.paths == frozenset({"c.txt"}) and len(queue) == 0

    # a batch is bounded; a burst over the capacity is dropped for one full observation
    queue.put(["a.txt", "b.txt", "c.txt"])
    clock.now += 1.0
    first = queue.take()
    assert first is not None and first.paths is not None and len(first.paths) == 2, "batch: 2 paths at most"
    queue.put(["d.txt", "e.txt", "f.txt"])
    assert queue.counts.dropped == 4 and len(queue) == 1, "4 paths waited: all dropped"
    full = queue.take()
    assert full is not None and full.paths is None and "daemon.live_queue" in full.reason
    assert len(full.since) == 1 and queue.take() is None


# --- folders ----------------------------------------------------------------------------


def test_edit_add_delete_rename_reach_the_index_while_the_daemon_runs_live(make_project, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_tiny_corpus(docs, 6, jsonl_share=0)
    project = make_project(source={"path": str(docs)}, models=HASH_MODELS, daemon={**LIVE, "metrics_port": 0})
    running = Running(Daemon(project))
    running.until(lambda d: d.state == "idle", "the first cycle")
    assert len(ledger_ids(project)) == 6

    steps = [
        ("edit", lambda: (docs / "txt/d0001.txt").write_text("Kiwifruit germination\n\nWarm seeds sprout.\n")),
        ("add", lambda: (docs / "txt/new.txt").write_text("Cold storage of apples\n\nApples keep in the cold.\n")),
        ("delete", lambda: (docs / "txt/d0002.txt").unlink()),
        ("rename", lambda: (docs / "txt/d0003.txt").rename(docs / "txt/moved.txt")),
    ]
    expected = {"edit": (1, 0), "add": (1, 0), "delete": (0, 1), "rename": (1, 1)}
    for what, change in steps:
        before = len(live_runs(project))
        change()

        def settled(before: int = before) -> bool:
            # a live cycle ran, and nothing waits: the events of one change may come in more
            # than one batch (a create, then a write), so the work is summed over its cycles
            queue = running.daemon.live.queue if running.daemon.live is not None else None
            return len(live_runs(project)) > before and not queue and running.daemon.state == "idle"

        wait_for(settled, what, running)
        runs = live_runs(project)[before:]
        assert {r.status for r in runs} == {"converged"}, what
        done = tuple(map(sum, zip(*(built(r) for r in runs), strict=True)))
        assert done == expected[what], (what, [r.counts["kinds"] for r in runs])
    assert sorted(ledger_ids(project)) == [
        "txt/d0000.txt",
        "txt/d0001.txt",
        "txt/d0004.txt",
        "txt/d0005.txt",
        "txt/moved.txt",
        "txt/new.txt",
    ]
    assert project.plan().in_sync and running.daemon.last_status is not None
    url = running.daemon.metrics_url or ""
    assert http_json(url + "/readyz") == (200, {"ready": True, "pipelines": {"basic": {"ready": True, "reasons": []}}})
    metrics = metrics_of(url)
    assert metrics[("ragstate_live_events_total", ())] >= 5  # the rename is two paths
    assert metrics[("ragstate_live_event_to_ready_seconds_count", ())] >= 5
    assert metrics[("ragstate_live_events_dropped_total", ())] == 0
    assert running.stop() == 0
    assert {r.counts["daemon"]["trigger"] for r in daemon_runs(project)} == {"start", "live"}
    check_store(project)


def test_a_file_still_being_written_is_built_once_it_is_stable(make_project, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_tiny_corpus(docs, 2, jsonl_share=0)
    project = make_project(source={"path": str(docs)}, models=HASH_MODELS, daemon={**LIVE, "live_debounce_s": 1.0})
    running = Running(Daemon(project))
    running.until(lambda d: d.state == "idle", "the first cycle")
    with open(docs / "txt/slow.txt", "w", encoding="utf-8") as f:
        f.write("A slow writer\n\n")
        for i in range(8):  # writes 0.3 s apart, each well inside the debounce
            f.write(f"part {i} of a long body. ")
            f.flush()
            time.sleep(0.3)
    wait_for(lambda: len(live_runs(project)) >= 1 and running.daemon.state == "idle", "the live cycle", running)
    assert running.stop() == 0
    assert sum(built(r)[0] for r in live_runs(project)) == 1, "built once, when complete"
    assert "txt/slow.txt" in ledger_ids(project)
    assert project.plan().in_sync, "what was built is the whole file"


@SQLITE_ONLY
def test_a_burst_over_the_queue_is_one_full_observation(make_project, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_tiny_corpus(docs, 2, jsonl_share=0)
    project = make_project(
        source={"path": str(docs)}, models=HASH_MODELS, daemon={**LIVE, "live_queue": 3, "metrics_port": 0}
    )
    running = Running(Daemon(project))
    running.until(lambda d: d.state == "idle", "the first cycle")
    write_tiny_corpus(docs / "burst", 12, jsonl_share=0)  # a checkout: 12 new files at once
    wait_for(lambda: len(ledger_ids(project)) == 14 and running.daemon.state == "idle", "the burst built", running)
    metrics = metrics_of(running.daemon.metrics_url or "")
    assert running.stop() == 0
    assert metrics[("ragstate_live_events_dropped_total", ())] >= 4
    assert sum(built(r)[0] for r in live_runs(project)) == 12, "every file built once"


def test_lost_events_and_a_restart_are_healed_by_the_full_observation(make_project, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_tiny_corpus(docs, 4, jsonl_share=0)
    settings = {**LIVE, "interval_s": 5.0}
    project = make_project(source={"path": str(docs)}, models=HASH_MODELS, daemon=settings)
    running = Running(Daemon(project))
    running.until(lambda d: d.state == "idle" and d.live is not None, "the first cycle")
    running.daemon.live.stop()  # the watcher's events are lost from now on
    (docs / "txt/d0000.txt").write_text("Lost event\n\nNo one heard this edit.\n")
    (docs / "txt/d0001.txt").write_text("Heard\n\nThis edit's event got through.\n")
    running.daemon.live.queue.put({"txt/d0001.txt"})  # only d0001's event reaches the daemon

    def by_interval() -> list[Any]:
        return [r for r in daemon_runs(project) if r.counts["daemon"]["trigger"] == "interval"]

    wait_for(lambda: by_interval() and running.daemon.state == "idle", "the interval's full cycle", running)
    assert running.stop() == 0
    (live,) = live_runs(project)
    assert built(live) == (1, 0), "the live cycle observed d0001 alone: d0000's edit went unseen"
    assert [built(r) for r in by_interval()][0] == (1, 0), "the full observation healed d0000"
    assert project.plan().in_sync

    # a change while no daemon runs: the next daemon's first cycle observes everything
    (docs / "txt/d0001.txt").write_text("Changed while stopped\n\nThe daemon was down.\n")
    again = Running(Daemon(make_project(source={"path": str(docs)}, models=HASH_MODELS, daemon=LIVE)))
    again.until(lambda d: d.state == "idle", "the restarted daemon's first cycle")
    assert again.stop() == 0
    first = [r for r in daemon_runs(project) if r.counts["daemon"]["trigger"] == "start"][-1]
    assert built(first) == (1, 0) and project.plan().in_sync


# --- tables -----------------------------------------------------------------------------


@pytest.fixture
def user_table(backend: str, store_spec: dict[str, Any], request: pytest.FixtureRequest) -> UserTable:
    """A table of the user's in the store's database (``sources.conftest``)."""
    return UserTable(backend, store_spec, request.getfixturevalue("pg_url") if backend == "postgres" else None)


def table_spec(user_table: Any, **extra: Any) -> dict[str, Any]:
    return {
        "table": user_table.qualified,
        "id": "id",
        "title": "title",
        "abstract": "abstract",
        "text": "body",
        **extra,
    }


@SQLITE_ONLY
def test_a_sqlite_table_is_polled_for_changes(make_project, user_table) -> None:
    user_table.create(
        "id INTEGER PRIMARY KEY, title TEXT, abstract TEXT, body TEXT, status TEXT, pmcid TEXT, "
        "updated INTEGER DEFAULT 0"
    )
    user_table.fill()
    source = table_spec(user_table, change_column="updated")
    project = make_project(source=source, models=HASH_MODELS, daemon={**LIVE, "live_poll_s": 0.2})
    running = Running(Daemon(project))
    running.until(lambda d: d.state == "idle", "the first cycle")
    before = len(ledger_ids(project))
    changes = [
        ("insert", "INSERT INTO {t} (id, title, abstract, body) VALUES (100, 'Kiwifruit', 'Warm seeds.', 'Sprout.')"),
        ("delete", "DELETE FROM {t} WHERE id = 1"),
        ("update", "UPDATE {t} SET title = 'A new title', updated = 1 WHERE id = 2"),  # seen through updated
    ]
    for n, (what, statement) in enumerate(changes, start=1):
        user_table.run(statement)
        wait_for(lambda n=n: len(live_runs(project)) >= n and running.daemon.state == "idle", what, running)
    assert running.stop() == 0
    assert [built(r) for r in live_runs(project)] == [(1, 0), (0, 1), (1, 0)]
    ids = ledger_ids(project)
    assert len(ids) == before and "100" in ids and "1" not in ids and project.plan().in_sync


@POSTGRES_ONLY
def test_a_postgres_table_notifies_through_the_trigger_ragstate_installs(make_project, user_table) -> None:
    user_table.create()
    user_table.fill()
    project = make_project(source=table_spec(user_table, notify=True), models=HASH_MODELS, daemon=LIVE)
    running = Running(Daemon(project))
    running.until(lambda d: d.state == "idle" and d.live is not None, "the first cycle")
    assert running.daemon.live.kind == "notify"
    triggers = user_table.run(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = ?::regclass AND NOT tgisinternal", (user_table.qualified,)
    )
    assert triggers == [("ragstate_notify_" + project.spec.store.schema_name,)]
    user_table.run("UPDATE {t} SET title = 'A new title' WHERE id = 1")
    wait_for(lambda: len(live_runs(project)) >= 1 and running.daemon.state == "idle", "the update", running)
    assert running.stop() == 0
    (run,) = live_runs(project)
    assert run.status == "converged" and built(run) == (1, 0)


@POSTGRES_ONLY
def test_a_refused_trigger_falls_back_to_the_interval_with_a_warning(
    make_project, user_table, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import uuid

    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    user_table.create()
    user_table.fill()
    role = "rs_live_" + uuid.uuid4().hex[:8]
    schema = "rag_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_url, autocommit=True) as admin:  # a role that may read the table, not trigger it
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")
        admin.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION {role}')
        admin.execute(f'GRANT USAGE ON SCHEMA "{user_table.schema}" TO {role}')
        admin.execute(f"GRANT SELECT ON {user_table.qualified} TO {role}")
    info = {**conninfo_to_dict(pg_url), "user": role, "password": "pw"}
    url = "postgresql://?" + "&".join(f"{k}={v}" for k, v in info.items())
    project = make_project(
        store={"url": url, "schema": schema},
        source=table_spec(user_table, notify=True),
        models=HASH_MODELS,
        daemon=LIVE,
    )
    caplog.set_level("WARNING", logger="ragstate.reconcile.live")
    running = Running(Daemon(project))
    running.until(lambda d: d.state == "idle" and d.live is not None, "the first cycle")
    assert running.daemon.live.kind == "interval"
    assert running.stop() == 0
    (warning,) = [r.getMessage() for r in caplog.records if "could not install the change trigger" in r.getMessage()]
    assert user_table.qualified in warning and "owner" in warning and "daemon.interval_s" in warning
    assert "permission denied" in warning or "must be owner" in warning


@SQLITE_ONLY
@pytest.mark.slow
def test_with_the_real_model_a_saved_document_is_answered_by_query(make_project, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.txt").write_text("Green tea catechins\n\nCatechins in green tea act as antioxidants.\n")
    (docs / "bridges.txt").write_text("Suspension bridges\n\nCables carry the deck of a suspension bridge.\n")
    project = make_project(source={"path": str(docs)}, daemon=LIVE, query={"readiness": "warn"})
    running = Running(Daemon(project))
    running.until(lambda d: d.state == "idle", "the first cycle")
    (docs / "kiwi.txt").write_text("Kiwifruit seed germination\n\nWarm kiwifruit seeds germinate within days.\n")
    wait_for(lambda: len(live_runs(project)) >= 1 and running.daemon.state == "idle", "the live cycle", running)
    assert running.stop() == 0
    (run,) = live_runs(project)
    assert run.status == "converged" and built(run) == (1, 0)
    hits = project.query("basic", "how fast do kiwifruit seeds sprout", k=3)
    assert hits[0].doc_id == "kiwi.txt", [h.doc_id for h in hits]


def daemon_state(project: Any) -> dict[str, Any]:
    """What the daemon recorded it is doing (nothing while it has not created the store's tables yet)."""
    from ragstate.errors import StoreError
    from ragstate.stores import records

    try:
        with project.store.session() as s:
            return records.daemon_state(project.store, s) or {}
    except StoreError:
        return {}


@SQLITE_ONLY
def test_ragstate_daemon_live_from_the_command_line(spec_file, make_project, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    docs = tmp_path / "docs"
    write_tiny_corpus(docs, 3, jsonl_share=0)
    daemon = {"interval_s": 3600, "jitter": 0, "verify_interval_s": None, "live_debounce_s": 0.2}
    spec = spec_file(source={"path": str(docs)}, models=HASH_MODELS, daemon=daemon)
    project = make_project(source={"path": str(docs)}, models=HASH_MODELS, daemon=daemon)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragstate.cli", "daemon", "--live", "-c", str(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while daemon_state(project).get("state") != "idle":
            assert proc.poll() is None and time.monotonic() < deadline, "the first cycle"
            time.sleep(0.1)
        (docs / "txt/new.txt").write_text("Cold storage of apples\n\nApples keep in the cold.\n")
        deadline = time.monotonic() + 120
        while not live_runs(project) or live_runs(project)[0].status != "converged":
            assert proc.poll() is None and time.monotonic() < deadline, "the live cycle"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    (run,) = live_runs(project)
    assert built(run) == (1, 0) and "txt/new.txt" in ledger_ids(project)
