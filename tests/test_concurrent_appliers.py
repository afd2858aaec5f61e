"""Two apply processes on one store: no corruption, no item built twice.

The second one waits for the first (``reconcile.lock: wait``) or fails at once with a
message naming it (``fail``). Engine mechanics, so the hash embedder; both backends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import HASH_MODELS, check_store, run_rows, write_tiny_corpus
from ragstate import Project, spec_from_dict

N = 300


@pytest.fixture
def setup(make_spec, tmp_path: Path):
    write_tiny_corpus(tmp_path / "docs", N)

    def spec_file(name: str, **reconcile: Any) -> Path:
        spec = make_spec(
            source={"path": str(tmp_path / "docs")},
            models=HASH_MODELS,
            reconcile={"batch_size": 4, **reconcile},
        )
        path = tmp_path / name
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        return path

    return spec_file


def spawn(spec: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ragstate.cli", "--log-level", "info", "apply", "-c", str(spec), "--json", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        text=True,
    )


def project_for(spec: Path) -> Project:
    return Project(spec_from_dict(yaml.safe_load(spec.read_text()), base_dir=spec.parent))


@pytest.mark.slow
def test_two_appliers_at_once_build_every_item_exactly_once(setup) -> None:
    spec = setup("wait.yaml", lock="wait", lock_timeout_s=120)
    first, second = spawn(spec), spawn(spec)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    records = [json.loads(out) for out, _ in outs]
    assert sum(r["built"] for r in records) == N, "no item built twice, none left out"
    assert all(r["status"] == "converged" for r in records)

    project = project_for(spec)
    try:
        check_store(project)
        with project.store.session() as s:
            stamps = {r[0] for r in s.query("SELECT DISTINCT run_id FROM {ledger}")}
        assert stamps <= {r["run_id"] for r in records}
        assert [status for _, status, _ in run_rows(project)] == ["converged", "converged"]
        assert project.verify().in_sync
    finally:
        project.close()


@pytest.mark.slow
def test_the_second_applier_waits_or_fails_by_the_spec(setup) -> None:
    holder = project_for(setup("holder.yaml"))
    try:
        with holder.writer_lock(command="reconcile"):
            # fail: at once, naming the holder
            failing = spawn(setup("fail.yaml", lock="fail"))
            out, _ = failing.communicate(timeout=120)
            assert failing.returncode == 1
            error = json.loads(out)
            assert error["error_type"] == "StoreLocked"
            assert f"pid {os.getpid()}" in error["error"] and "`reconcile`" in error["error"]

            # wait: it says so, and waits while the lock is held
            waiting = spawn(setup("wait.yaml", lock="wait", lock_timeout_s=120))
            deadline = time.monotonic() + 120
            said = ""
            while "waiting for the writer lock" not in said and time.monotonic() < deadline:
                line = waiting.stderr.readline()
                if not line:
                    break
                said += line
            assert "waiting for the writer lock" in said and f"pid {os.getpid()}" in said
            assert waiting.poll() is None, "still waiting while the lock is held"
            assert run_rows(holder) == [], "the waiting applier wrote nothing"
        out, _ = waiting.communicate(timeout=120)
        assert waiting.returncode == 0
        assert json.loads(out)["built"] == N
        check_store(holder)
    finally:
        holder.close()
