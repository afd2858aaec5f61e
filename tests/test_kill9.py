"""kill -9 of the apply process at random points, 20+ trials per backend.

Each trial changes the corpus or the spec (fresh store, edits, deletions and additions, a
recipe change that builds a new generation), starts ``ragstate apply`` in a subprocess
and kills it with SIGKILL at a random moment: sometimes while it starts, takes the lock,
observes or records the registry, mostly in the middle of its batches. Then, on the store
exactly as the kill left it:

* no duplicate rows, no artifact row without its ledger row or the reverse, no vector
  failing the quality checks, at most one active generation per kind (``check_store``);
* a restarted apply converges, and the plan is in sync; the killed run is marked
  ``interrupted``, none is left ``running``.

Every pipeline is enabled, so every artifact kind is built (and killed) in each trial.
Engine mechanics at scale, so the embedder is the deterministic ``hash`` one and the
documents are small generated ones.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ALL_PIPELINES
from helpers import HASH_MODELS, check_store, tiny_text, write_tiny_corpus
from ragstate import Project, spec_from_dict

TRIALS = 20
N = 200
TEXTS = ("{title}\n\n{summary}", "{title}\n\n{body}")


class Trials:
    """The corpus, spec and store of one backend's trials."""

    def __init__(self, root: Path, store: dict[str, Any], backend: str):
        self.root = root
        self.backend = backend
        self.base_store = store
        self.docs = root / "docs"
        self.ids = write_tiny_corpus(self.docs, N)
        self.text = TEXTS[0]
        self.next_id = N
        self.fresh_store()

    def fresh_store(self) -> None:
        if self.backend == "sqlite":
            self.store = {"url": f"sqlite:///{self.root / ('store-' + uuid.uuid4().hex[:6] + '.db')}"}
        else:
            self.store = {**self.base_store, "schema": "k_" + uuid.uuid4().hex[:10]}

    def spec(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "source": {"path": str(self.docs)},
            "pipelines": ALL_PIPELINES,
            "models": HASH_MODELS,
            "artifacts": {"doc_embeddings": {"text": self.text}},
            "reconcile": {"batch_size": 8, "lock": "wait", "lock_timeout_s": 120, "max_delete_share": 1.0},
        }

    def write_spec(self) -> Path:
        path = self.root / "ragstate.yaml"
        path.write_text(yaml.safe_dump(self.spec()), encoding="utf-8")
        return path

    def project(self) -> Project:
        return Project(spec_from_dict(self.spec(), base_dir=self.root))

    #: about how much of a full build each change asks for (to aim the kills)
    WORK = {"fresh store": 1.0, "recipe": 1.0, "edit": 0.33, "delete and add": 0.15}

    def mutate(self, trial: int, rng: random.Random) -> str:
        """Change what the next apply has to do; return what was changed."""
        what = ["fresh store", "edit", "recipe", "delete and add", "edit"][trial % 5]
        if what == "fresh store":
            self.fresh_store()
        elif what == "recipe":
            self.text = TEXTS[1] if self.text == TEXTS[0] else TEXTS[0]
        elif what == "edit":
            for doc_id in rng.sample(self.txt_ids(), k=len(self.txt_ids()) // 3):
                title, body = tiny_text(rng.randrange(10**6), salt=str(trial))
                (self.docs / doc_id).write_text(f"{title}\n\n{body}\n", encoding="utf-8")
            self.rewrite_jsonl(rng, trial, share=0.3)
        else:
            for doc_id in rng.sample(self.txt_ids(), k=len(self.txt_ids()) // 5):
                (self.docs / doc_id).unlink()
            for _ in range(N // 10):
                title, body = tiny_text(self.next_id, salt=str(trial))
                (self.docs / "txt" / f"n{self.next_id:05d}.txt").write_text(f"{title}\n\n{body}\n")
                self.next_id += 1
        return what

    def txt_ids(self) -> list[str]:
        return sorted(p.relative_to(self.docs).as_posix() for p in (self.docs / "txt").glob("*.txt"))

    def rewrite_jsonl(self, rng: random.Random, trial: int, share: float) -> None:
        path = self.docs / "records.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        for i in rng.sample(range(len(lines)), k=int(len(lines) * share)):
            record = json.loads(lines[i])
            record["title"], record["body"] = tiny_text(rng.randrange(10**6), salt=str(trial))
            lines[i] = json.dumps(record)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def start_apply(spec: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ragstate.cli", "apply", "-c", str(spec), "--json", "--allow-destructive"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def running_row(project: Project, pid: int) -> dict[str, Any] | None:
    """The run row the child wrote, if any (status, progress)."""
    try:
        with project.store.session() as s:
            if project.store.columns(s, "runs") is None:
                return None
            rows = s.query("SELECT status, progress FROM {runs} WHERE pid = ?", (pid,))
    except Exception:  # the child may be creating the tables right now
        return None
    if not rows:
        return None
    return {"status": rows[-1][0], "progress": project.store.decode_json(rows[-1][1])}


def wait_for_run_row(project: Project, child: subprocess.Popen, spawned: float) -> float:
    """Seconds from spawning ``child`` until its run row appeared (or it ended)."""
    while running_row(project, child.pid) is None and child.poll() is None:
        if time.monotonic() - spawned > 120:
            break
        time.sleep(0.002)
    return time.monotonic() - spawned


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill_9_at_random_points_then_converge(backend, store_spec, tmp_path) -> None:
    rng = random.Random(20240905 + (backend == "postgres"))
    trials = Trials(tmp_path, store_spec, backend)

    # Calibration: one full apply, unkilled, to learn how long start-up and work take here.
    spec = trials.write_spec()
    project = trials.project()
    child = start_apply(spec, tmp_path / "calibration.log")
    spawned = time.monotonic()
    startup = wait_for_run_row(project, child, spawned)
    assert child.wait(300) == 0, (tmp_path / "calibration.log").read_text()
    work = time.monotonic() - spawned - startup
    check_store(project)
    project.close()

    stats = {"mid_run": 0, "before_run": 0, "finished": 0}
    for trial in range(TRIALS):
        what = trials.mutate(trial, rng)
        spec = trials.write_spec()
        project = trials.project()
        log = tmp_path / f"trial-{trial}.log"
        child = start_apply(spec, log)
        spawned = time.monotonic()
        share = work * Trials.WORK[what]
        if trial % 4 == 0:
            # anywhere: start-up, lock, observe, registry, batches, switch
            time.sleep(rng.uniform(0, startup + share))
        else:
            # in the work: wait for the child's run row, then a random part of the work
            wait_for_run_row(project, child, spawned)
            time.sleep(rng.uniform(0, share))
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        code = child.wait(60)
        row = running_row(project, child.pid)
        if code == 0:
            stats["finished"] += 1
        elif row is not None and row["status"] == "running":
            stats["mid_run"] += 1
        else:
            stats["before_run"] += 1
        assert code in (0, -signal.SIGKILL), f"trial {trial} ({what}): exit {code}\n{log.read_text()[-2000:]}"

        # The store exactly as the kill left it.
        check_store(project)

        # A restart converges.
        record = project.apply(allow_destructive=True)
        assert record.converged, f"trial {trial} ({what}): {record.error}"
        assert project.plan(depth="audit").in_sync
        check_store(project)
        with project.store.session() as s:
            statuses = [r[0] for r in s.query("SELECT status FROM {runs} WHERE pid = ?", (child.pid,))]
            assert s.scalar("SELECT count(*) FROM {runs} WHERE status = 'running'") == 0
        if row is not None and row["status"] == "running":
            assert statuses == ["interrupted"], statuses
        project.close()

    print(f"{backend}: {TRIALS} kills (start-up {startup:.2f} s, full work {work:.2f} s): {stats}")
    assert stats["mid_run"] >= 1, stats
    final = trials.project()
    try:
        assert final.verify().in_sync
    finally:
        final.close()
