"""kill -9 during a generation's build and during its switch, on both backends.

* Killed while a new generation is being built: the active generation is untouched and
  still the only active one; the next run resumes the build where it stopped (only the
  documents not yet committed are built) and switches.
* Killed inside the switch transaction of a group (``chunks`` with ``chunk_embeddings``):
  the store shows exactly one active generation per kind, the old ones (the transaction
  is rolled back as a whole); the next run verifies again and switches, building nothing.

The switch is caught in the act by a trigger the test puts on the generations table: it
stalls the update that activates ``chunk_embeddings``, after ``chunks`` was already
switched inside the same transaction. Engine mechanics, so the embedder is the ``hash``
one (slowed down, as an installed plugin, to aim the first kill).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragstate import Project, plugins, spec_from_dict
from ragstate.compute import embedders
from ragstate.stores import ledger

N = 160

SLOW_PLUGIN = """
import time
from ragstate.compute.embedders import HashEmbedder

class SlowHash(HashEmbedder):
    def identity(self):
        return {**super().identity(), "provider": "slow-hash"}

    def embed(self, texts):
        time.sleep(0.05)
        return super().embed(texts)
"""


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder holding an installed ``slow-hash`` embedder (module and entry point), on
    this process's path and on the subprocesses'."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "slow_embedder.py").write_text(SLOW_PLUGIN)
    dist = folder / "slow_embedder-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-embedder\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ragstate.embedders]\nslow-hash = slow_embedder:SlowHash\n")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(embedders, "_embedders", {})
    plugins._entry_points.cache_clear()
    yield folder
    sys.modules.pop("slow_embedder", None)
    plugins._entry_points.cache_clear()


def write_corpus(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        body = " ".join(f"term{(i * j) % 211}" for j in range(120))
        (root / f"d{i:04d}.txt").write_text(f"Note {i} on subject {i % 17}\n\n{body}\n\n{body[::-1]}\n")
    return root


def start_apply(spec: dict[str, Any], folder: Path, plugin_path: Path) -> subprocess.Popen:
    path = folder / "ragstate.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(plugin_path), *sys.path]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ragstate.cli", "apply", "-c", str(path), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"apply ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def actives(project: Project) -> dict[str, list[int]]:
    with project.store.session() as s:
        gens = ledger.generations(project.store, s)
    out: dict[str, list[int]] = {}
    for g in gens:
        out.setdefault(g.kind, [])
        if g.state == "active":
            out[g.kind].append(g.generation)
    return out


def built_into(project: Project, kind: str, generation: int) -> int:
    with project.store.session() as s:
        return int(s.scalar("SELECT count(*) FROM {ledger} WHERE kind = ? AND generation = ?", (kind, generation)))


@pytest.mark.slow
def test_a_build_killed_midway_resumes(tmp_path: Path, store_spec: dict[str, Any], plugin_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs", N)
    base = {"store": store_spec, "source": {"path": str(docs)}, "reconcile": {"batch_size": 8}}
    with Project(spec_from_dict({**base, "models": {"default": {"provider": "hash", "dimension": 16}}})) as first:
        assert first.apply().converged
    slow = {**base, "models": {"default": {"provider": "slow-hash", "dimension": 16}}}
    with Project(spec_from_dict(slow)) as project:
        proc = start_apply(slow, tmp_path, plugin_path)
        try:
            wait_for(
                lambda: project_has(project, 2) and built_into(project, "doc_embeddings", 2) >= 16, proc, "batches"
            )
        finally:
            kill(proc)
        done = built_into(project, "doc_embeddings", 2)
        assert 16 <= done < N
        assert actives(project) == {"doc_embeddings": [1]}  # queries still read generation 1

        plan = project.plan()
        k = plan.kind("doc_embeddings")
        assert k.target_generation == 2 and len(k.build["recipe"]) == N - done and k.switch
        record = project.apply()
        assert record.converged and record.kinds["doc_embeddings"].built == N - done
        assert record.kinds["doc_embeddings"].switched and actives(project) == {"doc_embeddings": [2]}
        assert record.verification[0]["checks"][0]["documents"] == N


def project_has(project: Project, generation: int) -> bool:
    with project.store.session() as s:
        return any(g.generation == generation for g in ledger.generations(project.store, s, "doc_embeddings"))


def stall_switch(project: Project, backend: str) -> None:
    """Make the update that activates a chunk_embeddings generation hang (a trigger)."""
    with project.store.transaction() as s:
        if backend == "sqlite":
            s.execute("CREATE TABLE {stall} (n INTEGER)")
            s.execute(
                "INSERT INTO {stall} (n) SELECT a.generation FROM {generations} a, {generations} b, {generations} c"
            )
            while s.scalar("SELECT count(*) FROM {stall}") < 3000:
                s.execute("INSERT INTO {stall} (n) SELECT n FROM {stall}")
            # no sleep() in SQLite: counting a three-way cross join of 3000+ rows takes hours
            s.execute(
                "CREATE TRIGGER {stall_switch} BEFORE UPDATE ON {generations} "
                "WHEN NEW.kind = 'chunk_embeddings' AND NEW.state = 'active' "
                "BEGIN SELECT count(*) FROM {stall} a, {stall} b, {stall} c; END"
            )
        else:
            s.execute(
                "CREATE FUNCTION {stall_fn}() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(300); RETURN NEW; END $$"
            )
            s.execute(
                "CREATE TRIGGER stall_switch BEFORE UPDATE ON {generations} FOR EACH ROW "
                "WHEN (NEW.kind = 'chunk_embeddings' AND NEW.state = 'active') EXECUTE FUNCTION {stall_fn}()"
            )


def unstall(project: Project, backend: str) -> None:
    with project.store.transaction() as s:
        if backend == "sqlite":
            s.execute("DROP TRIGGER {stall_switch}")
            s.execute("DROP TABLE {stall}")
        else:
            s.execute("DROP TRIGGER stall_switch ON {generations}")
            s.execute("DROP FUNCTION {stall_fn}()")


def sleeping_backends(project: Project) -> list[int]:
    with project.store.session() as s:
        rows = s.query("SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()")
    return [r[0] for r in rows]


@pytest.mark.slow
def test_a_switch_killed_midway_leaves_one_active_generation_per_kind(
    tmp_path: Path, store_spec: dict[str, Any], backend: str, plugin_path: Path
) -> None:
    docs = write_corpus(tmp_path / "docs", 40)
    spec = {
        "store": store_spec,
        "source": {"path": str(docs)},
        "pipelines": ["noderag"],
        "models": {"default": {"provider": "hash", "dimension": 16}},
    }
    with Project(spec_from_dict(spec)) as first:
        assert first.apply().converged
    change = {**spec, "artifacts": {"chunks": {"min_tokens": 200}}}
    with Project(spec_from_dict(change)) as project:
        assert project.plan().switch_groups == (("chunks", "chunk_embeddings"),)
        stall_switch(project, backend)
        proc = start_apply(change, tmp_path, plugin_path)
        try:
            # Verification is committed just before the switch transaction starts.
            wait_for(lambda: verified(project), proc, "verification")
            if backend == "postgres":
                wait_for(lambda: bool(sleeping_backends(project)), proc, "the stalled switch")
            else:
                # Verification is written; the only write after it is the switch, held by the trigger.
                wait_for(lambda: write_locked(store_spec["url"]), proc, "the stalled switch")
            assert proc.poll() is None
        finally:
            kill(proc)
        if backend == "postgres":
            # What the server does once it notices that its client is gone.
            with project.store.session() as s:
                for pid in sleeping_backends(project):
                    s.query("SELECT pg_terminate_backend(?)", (pid,))
        unstall(project, backend)

        assert actives(project) == {"chunks": [1], "chunk_embeddings": [1]}
        with project.store.session() as s:
            gens = {(g.kind, g.generation): g for g in ledger.generations(project.store, s)}
        assert gens[("chunks", 2)].state == gens[("chunk_embeddings", 2)].state == "building"

        record = project.apply()
        assert record.converged and record.built == 0
        assert actives(project) == {"chunks": [2], "chunk_embeddings": [2]}
        with project.store.session() as s:
            stamps = {g.activated_at for g in ledger.generations(project.store, s) if g.state == "active"}
        assert len(stamps) == 1


def write_locked(url: str) -> bool:
    """True while another connection holds the SQLite file's write lock."""
    import apsw

    conn = apsw.Connection(url.removeprefix("sqlite:///"))
    conn.set_busy_timeout(50)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except apsw.BusyError:
        return True
    finally:
        conn.close()


def verified(project: Project) -> bool:
    with project.store.session() as s:
        gens = ledger.generations(project.store, s, "chunk_embeddings")
    return any(g.generation == 2 and g.verification for g in gens)
