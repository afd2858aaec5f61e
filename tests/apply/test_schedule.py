"""Concurrent artifact kinds: per-document readiness, equivalence with one kind at a time, failure."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from conftest import ALL_PIPELINES, SAMPLE
from helpers import kind_tables
from ragstate import Project, spec_from_dict
from ragstate.apply.budget import Budget
from ragstate.apply.schedule import Gate, Stopped
from ragstate.artifacts.entities import Entities
from ragstate.errors import PluginError
from ragstate.stores import ledger
from ragstate.stores.documents import DocRef

HASH = {"default": {"provider": "hash", "dimension": 64, "max_tokens": 128}}


def refs(*ids: str) -> list[DocRef]:
    return [DocRef(d, "", "", d, 0, 0, 0, 0, 0) for d in ids]


def ids(batch: list[DocRef]) -> list[str]:
    return [r.doc_id for r in batch]


# --- the gate ----------------------------------------------------------------------------


def test_a_dependent_kind_takes_documents_as_their_upstream_rows_commit() -> None:
    gate = Gate({"chunks": ["a", "b", "c", "d"], "chunk_embeddings": ["a", "b", "c", "d", "e"], "fulltext": ["a"]})
    gate.register("chunks", refs("a", "b", "c", "d"), ())
    gate.register("chunk_embeddings", refs("a", "b", "c", "d", "e"), ("chunks",))
    gate.register("fulltext", refs("a"), ())
    # A kind with no upstream, and a document its upstream does not rebuild, are ready now.
    assert [ids(b) for b in gate.batches("fulltext", lambda: 2)] == [["a"]]
    dependent = gate.batches("chunk_embeddings", lambda: 2)
    gate.settle("chunks", ["a"])  # committed: 'e' (not rebuilt upstream) and 'a' make a batch
    assert ids(next(dependent)) == ["e", "a"]
    gate.settle("chunks", ["c", "b"])
    assert ids(next(dependent)) == ["c", "b"]
    gate.finish("chunks")  # nothing more: 'd' (built or set aside) is released, a short batch
    assert ids(next(dependent)) == ["d"]
    assert next(dependent, None) is None


def test_documents_set_aside_upstream_are_skipped_downstream_and_further_down() -> None:
    gate = Gate({"chunks": ["a", "b"], "chunk_embeddings": ["a", "b"], "colbert": ["a", "b"]})
    gate.register("chunks", refs("a", "b"), ())
    gate.register("chunk_embeddings", refs("a", "b"), ("chunks",))
    gate.register("colbert", refs("a", "b"), ("chunk_embeddings",))
    gate.settle("chunks", ["a", "b"], lost={"b"})  # 'b' was quarantined by chunks
    assert [ids(b) for b in gate.batches("chunk_embeddings", lambda: 2)] == [["a"]]
    assert gate.skipped("chunk_embeddings") == {"b"}
    gate.settle("chunk_embeddings", ["a"])
    assert [ids(b) for b in gate.batches("colbert", lambda: 2)] == [["a"]]
    assert gate.skipped("colbert") == {"b"} and gate.skipped("chunks") == set()


def test_a_dependent_waits_for_a_full_batch_while_its_upstream_runs() -> None:
    gate = Gate({"chunks": ["a", "b"]})
    gate.register("entities", refs("a", "b"), ("chunks",))
    taken: list[list[str]] = []
    waiter = threading.Thread(target=lambda: taken.extend(ids(b) for b in gate.batches("entities", lambda: 2)))
    waiter.start()
    gate.settle("chunks", ["a"])
    waiter.join(0.2)
    assert waiter.is_alive() and taken == []  # one of two is not a batch yet
    gate.settle("chunks", ["b"])
    waiter.join(5)
    assert taken == [["a", "b"]]


def test_stop_wakes_every_waiting_kind() -> None:
    gate = Gate({"chunks": ["a"]})
    gate.register("entities", refs("a"), ("chunks",))
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            list(gate.batches("entities", lambda: 1))
        except Stopped as exc:
            raised.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    gate.stop()
    waiter.join(5)
    assert len(raised) == 1


# --- end to end ------------------------------------------------------------------------------


def hash_project(store_spec: dict, tmp_path: Path, name: str, corpus: Path, **reconcile) -> Project:
    store = dict(store_spec)
    if "schema" in store:
        store["schema"] = f"{store['schema']}_{name}"
    else:
        store["url"] = store["url"].replace("store.db", f"{name}.db")
    spec = {
        "store": store,
        "source": str(corpus),
        "pipelines": ALL_PIPELINES,
        "models": HASH,
        "reconcile": {"batch_size": 3, **reconcile},
    }
    return Project(spec_from_dict(spec, base_dir=tmp_path))


def contents(project: Project) -> dict[str, list[tuple]]:
    """Every active table's rows, less the run stamps, in a stable order."""
    out = {}
    for kind in project.desired().kinds:
        for i, table in enumerate(kind_tables(project, kind.name)):
            with project.store.session() as s:
                rows = s.query("SELECT * FROM {t}", t=table)
            out[f"{kind.name}/{i}"] = sorted(
                tuple(bytes(v) if isinstance(v, memoryview) else str(v) for v in r[:3] + r[5:]) for r in rows
            )
    return out


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "sample"
    shutil.copytree(SAMPLE, root)
    return root


@pytest.mark.slow
def test_concurrent_kinds_build_what_one_kind_at_a_time_builds(store_spec, tmp_path: Path, sample: Path) -> None:
    with (
        hash_project(store_spec, tmp_path, "seq", sample, concurrent_kinds=1) as one,
        hash_project(store_spec, tmp_path, "conc", sample, concurrent_kinds=4) as many,
    ):
        first, second = one.apply(), many.apply()
        assert first.converged and second.converged
        assert first.schedule == {}
        schedule = second.schedule
        assert set(schedule["kinds"]) == {k.name for k in many.desired().kinds}
        assert schedule["concurrent_kinds"] == (4 if many.store.max_sessions is None else 3)
        assert schedule["overlap"] >= 1.0 and schedule["work_s"] >= schedule["wall_s"] > 0
        assert contents(one) == contents(many)
        for kind in ("doc_embeddings", "chunks", "chunk_embeddings", "entity_embeddings"):
            assert first.kinds[kind].built == second.kinds[kind].built == 48
        assert many.verify().in_sync


@pytest.mark.slow
def test_a_kind_that_fails_stops_the_others_and_committed_batches_stay(
    store_spec, tmp_path: Path, sample: Path, monkeypatch
) -> None:
    real = Entities.build
    calls = {"n": 0}
    lock = threading.Lock()

    def dies_on_fourth_batch(self, docs, recipe, ctx):
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n == 4:  # fatal (not a document's fault, which would be set aside): the run stops
            raise PluginError("simulated crash inside an entities batch")
        return real(self, docs, recipe, ctx)

    monkeypatch.setattr(Entities, "build", dies_on_fourth_batch)
    with hash_project(store_spec, tmp_path, "fail", sample) as project:
        with pytest.raises(PluginError, match="simulated crash"):
            project.apply()
        monkeypatch.setattr(Entities, "build", real)
        with project.store.session() as s:
            assert s.scalar("SELECT status FROM {runs}") == "failed"
            # Every committed batch is whole: as many ledger rows as documents with rows.
            for gen in ledger.generations(project.store, s):
                documents = s.scalar("SELECT count(DISTINCT doc_id) FROM {t}", t=gen.table_name)
                ledgered = s.scalar(
                    "SELECT count(*) FROM {ledger} WHERE kind = ? AND generation = ?", (gen.kind, gen.generation)
                )
                assert documents == ledgered, gen.kind
            entities = s.scalar("SELECT count(*) FROM {ledger} WHERE kind = 'entities'")
        assert entities == 9  # three batches of three committed before the fourth failed
        record = project.apply()
        assert record.converged and record.kinds["entities"].built == 48 - 9
        assert project.verify().in_sync


@pytest.mark.slow
def test_concurrent_kinds_share_an_item_budget_and_never_switch_half_built(
    store_spec, tmp_path: Path, sample: Path
) -> None:
    with hash_project(store_spec, tmp_path, "budget", sample, concurrent_kinds=4) as project:
        kinds = [k.name for k in project.desired().kinds]
        built = dict.fromkeys(kinds, 0)
        runs = []
        while True:
            record = project.apply(budget=Budget(max_items=40))
            runs.append(record.status)
            for name, counts in record.kinds.items():
                built[name] += counts.built
            if record.status == "converged":
                break
            assert record.status == "partial" and record.budget["stopped"] == "items"
            assert record.budget["items"] == 40, "the kinds together build no more than the cap"
            assert sum(c.built + c.quarantined for c in record.kinds.values()) == 40
            with project.store.session() as s:
                for gen in ledger.generations(project.store, s):
                    done = s.scalar(
                        "SELECT count(*) FROM {ledger} WHERE kind = ? AND generation = ?", (gen.kind, gen.generation)
                    )
                    assert gen.state == "building" or done == 48, f"{gen.kind} switched in half built"
                    documents = s.scalar("SELECT count(DISTINCT doc_id) FROM {t}", t=gen.table_name)
                    assert documents <= done, "every committed batch is whole"
            assert len(runs) < 20
        assert len(runs) > 2 and runs[-1] == "converged"
        assert built == dict.fromkeys(kinds, 48), "each document built once per kind, over the runs"
        assert project.verify().in_sync
