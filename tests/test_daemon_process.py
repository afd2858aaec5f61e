"""``ragstate daemon`` as an operator runs it: the real CLI in a process of its own.

* A second ``ragstate daemon`` on the same store refuses to start, naming the first (exit 1).
* It heals a corpus changed under it on the next cycle, as its metrics endpoint and
  ``ragstate status`` (another process) show; SIGTERM in the middle of a batch stops it
  after that batch with exit 0, leaving a consistent store the next run completes.
* PostgreSQL stopped under it: the cycles fail, each waiting longer than the one before
  (the run records show the backoff), and once the server is back the interval returns.
  A known password (in the store URL and the environment) and a known token never appear
  in a log line, a run record, a metric, ``status`` or the report page.

The daemon's mechanics (backoff arithmetic, the single-instance lock, triggers, budgets)
are tested in this process in ``tests/reconcile/test_daemon.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import edit
from helpers import HASH_MODELS, check_store, http_json, metrics_of, write_tiny_corpus
from ragstate import Project, spec_from_dict
from ragstate.stores import records

PASSWORD = "pw-7f3a-known-password"
TOKEN = "tok-91be-known-token-value"


class DaemonProcess:
    """``ragstate --log-format json daemon`` in a child process; its log lines, parsed."""

    def __init__(self, spec: Path, env: dict[str, str] | None = None):
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ragstate.cli", "--log-format", "json", "daemon", "-c", str(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                pass

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 240, since: int = 0
    ) -> dict[str, Any]:
        """The first log event from the ``since``-th on matching ``predicate`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            assert self.proc.poll() is None, f"the daemon exited ({self.proc.returncode}) before {what}:\n{self.tail()}"
            assert time.monotonic() < deadline, f"gave up waiting for {what}:\n{self.tail()}"
            time.sleep(0.05)

    def cycles(self, outcome: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == "cycle" and outcome in (None, e["outcome"])]

    def stop(self, timeout: float = 120) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    def tail(self) -> str:
        return "".join(self.lines[-30:])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture
def daemons() -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(spec: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        started.append(DaemonProcess(spec, env))
        return started[-1]

    yield start
    for d in started:
        d.kill()


def cli(spec: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragstate.cli", *args, "-c", str(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def running_progress(project: Project) -> int:
    """Documents done by the run in progress (0 when none is running)."""
    with project.store.session() as s:
        rows = records.recent(project.store, s, limit=5)
    return max([int((r.progress or {}).get("done") or 0) for r in rows if r.status == "running"] or [0])


@pytest.mark.slow
def test_the_daemon_heals_a_changed_corpus_and_sigterm_mid_batch_stops_it_cleanly(
    backend: str, spec_file, corpus: Path, daemons, tmp_path: Path
) -> None:
    daemon_settings = {"interval_s": 1, "jitter": 0, "verify_interval_s": None, "metrics_port": 0}
    spec = spec_file(reconcile={"batch_size": 2}, daemon=daemon_settings)  # the real model
    d = daemons(spec)
    url = d.wait_for(lambda e: e.get("event") == "started", "the daemon to start")["metrics_url"]
    first = d.wait_for(lambda e: e.get("event") == "cycle", "the first cycle")
    assert first["outcome"] == "converged" and first["verify"] is True and first["built"] == {"doc_embeddings": 18}

    second = cli(spec, "daemon", "--once")
    assert second.returncode == 1 and "only one daemon may run per store" in second.stderr, second.stderr
    assert f"pid {d.proc.pid}" in second.stderr

    # Change the corpus under the running daemon: the next cycle heals it.
    mark = len(d.events)
    # an edit of the title, which the document embedding reads (one past its text is no drift)
    edit(corpus / "markdown/PMC12429712.md", old="Influence of Tension", new="Influence of Yarn Tension")
    (corpus / "text/new.txt").write_text("Kiwifruit germination\n\nSeeds sprout faster when warm.\n")
    healed = d.wait_for(lambda e: e.get("event") == "cycle" and e.get("built"), "the change built", since=mark)
    assert healed["outcome"] == "converged" and healed["built"] == {"doc_embeddings": 2}
    assert healed["drift"] == {"doc_embeddings": {"missing": 1, "stale": 1}}
    seen = metrics_of(url)
    assert seen[("ragstate_items_built_total", (("kind", "doc_embeddings"),))] == 20
    assert seen[("ragstate_drift_found_total", (("class", "stale"), ("kind", "doc_embeddings")))] == 1
    drift = {k: v for k, v in seen.items() if k[0] == "ragstate_drift_documents"}
    assert drift and set(drift.values()) == {0.0}, "no drift left"
    assert seen[("ragstate_pipeline_ready", (("pipeline", "basic"),))] == 1
    assert http_json(url + "/readyz")[0] == 200
    status = cli(spec, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    ready = {c["type"]: c for c in report["conditions"]["pipelines"]["basic"]}["Ready"]
    assert ready["status"] == "True" and ready["reason"] == "Converged"
    assert report["daemon"]["holder"]["pid"] == d.proc.pid and report["daemon"]["state"] in ("idle", "reconciling")

    # A backlog of 48 documents in batches of 2; SIGTERM once a batch has committed.
    write_tiny_corpus(corpus / "more", 48, jsonl_share=0)
    with Project.from_file(spec) as project:
        deadline = time.monotonic() + 240
        while running_progress(project) < 2:
            assert d.proc.poll() is None and time.monotonic() < deadline, d.tail()
            time.sleep(0.02)
        assert d.stop() == 0, d.tail()
        stopped = d.cycles()[-1]
        assert stopped["outcome"] == "partial", d.tail()
        assert 2 <= stopped["built"]["doc_embeddings"] < 48
        assert any(e.get("event") == "stopped" and "SIGTERM" in e["message"] for e in d.events)
        check_store(project)
        with project.store.session() as s:
            rows = records.recent(project.store, s, limit=50)
        assert not [r for r in rows if r.status == "running"], "no run is left running"
        last = rows[0]
        assert last.status == "partial" and "SIGTERM" in (last.error or "")
        assert project.status().daemon["state"] == "stopped"
        rest = project.apply()
        assert rest.converged and rest.kinds["doc_embeddings"].built == 48 - stopped["built"]["doc_embeddings"]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_database_down_backs_off_then_the_interval_returns_and_no_secret_leaks(own_pg, daemons, tmp_path: Path) -> None:
    write_tiny_corpus(tmp_path / "docs", 12)
    plain = own_pg.get_uri()
    url = plain.replace("postgres:@", f"postgres:{PASSWORD}@", 1)  # the server trusts local sockets
    assert PASSWORD in url
    settings = {
        "store": {"url": url, "schema": "daemon", "connect_timeout_s": 1},
        "source": {"path": str(tmp_path / "docs")},
        "models": HASH_MODELS,
        "reconcile": {
            "batch_size": 4,
            "retry": {"attempts": 2, "initial_delay_s": 0.1, "max_delay_s": 0.2, "jitter_s": 0},
            "breaker": {"threshold": 2, "cooldown_s": 0.5},
        },
        "daemon": {
            "interval_s": 0.5,
            "jitter": 0,
            "backoff_multiplier": 2,
            "max_backoff_s": 4,
            "verify_interval_s": None,
            "metrics_port": 0,
        },
    }
    spec = tmp_path / "ragstate.yaml"
    spec.write_text(yaml.safe_dump(settings), encoding="utf-8")
    secrets = {"PGPASSWORD": PASSWORD, "SERVICE_API_TOKEN": TOKEN}
    d = daemons(spec, env=secrets)
    metrics_url = d.wait_for(lambda e: e.get("event") == "started", "the daemon to start")["metrics_url"]
    d.wait_for(lambda e: e.get("event") == "cycle" and e["outcome"] == "converged", "a converged cycle")

    own_pg.stop()
    d.wait_for(lambda e: len(d.cycles("failed")) >= 3, "three failed cycles", timeout=120)
    scraped_down = urlopen_text(metrics_url + "/metrics")
    assert metrics_of(metrics_url)[("ragstate_consecutive_failures", ())] >= 3
    own_pg.ensure_postgres_running()
    assert own_pg.get_uri() == plain
    d.wait_for(lambda e: [c["outcome"] for c in d.cycles()[-2:]] == ["converged"] * 2, "two good cycles again")
    scraped_up = urlopen_text(metrics_url + "/metrics")
    assert d.stop() == 0, d.tail()

    with Project(spec_from_dict(settings, base_dir=tmp_path)) as project:
        with project.store.session() as s:
            rows = records.recent(project.store, s, limit=1000)
            dumped = [str(r) for r in s.query("SELECT * FROM {runs}")]
        runs = sorted((r for r in rows if (r.counts or {}).get("daemon")), key=lambda r: r.started_at)
        steps = [(r.status, r.counts["daemon"]["consecutive_failures"], r.counts["daemon"]["delay_s"]) for r in runs]
        failed = [i for i, step in enumerate(steps) if step[0] == "failed"]
        assert len(failed) >= 3, steps
        assert failed == list(range(failed[0], failed[0] + len(failed))), steps
        # The failed cycles were recorded by the daemon once the server answered again,
        # each waiting twice as long as the one before, up to daemon.max_backoff_s.
        waits = [steps[i][2] for i in failed[1:]]
        assert waits == [min(4.0, 0.5 * 2**k) for k in range(1, len(failed))], steps
        recovered, following = runs[failed[-1] + 1], runs[failed[-1] + 2]
        assert recovered.status == "converged" and recovered.counts["daemon"]["backoff"] is True
        assert recovered.counts["daemon"]["delay_s"] == min(4.0, 0.5 * 2 ** len(failed))
        assert following.counts["daemon"]["backoff"] is False and following.counts["daemon"]["delay_s"] == 0.5
        assert all(r.counts["daemon"]["waited_s"] >= r.counts["daemon"]["delay_s"] * 0.99 for r in runs[1:])
        assert all(runs[i].counts.get("error_class") == "transient" for i in failed), [r.error for r in runs]
        check_store(project)

    status = cli(spec, "status", "--json", env=secrets)
    page = tmp_path / "report.html"
    report = cli(spec, "report", "--html", str(page), env=secrets)
    assert status.returncode == 0 and report.returncode == 0, status.stderr + report.stderr
    outputs = {
        "log lines": "".join(d.lines),
        "run records": "\n".join(dumped),
        "metrics": scraped_down + scraped_up,
        "status": status.stdout + status.stderr,
        "report": report.stdout + report.stderr + page.read_text(encoding="utf-8"),
    }
    for where, text in outputs.items():
        assert PASSWORD not in text and TOKEN not in text, f"a secret in the {where}"
    assert "postgres:***@" in outputs["log lines"], "the URL is shown, its password masked"


def urlopen_text(url: str) -> str:
    import urllib.request

    return urllib.request.urlopen(url, timeout=10).read().decode()
