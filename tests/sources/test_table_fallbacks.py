"""Slow views: a mapped table read from a copy ragstate keeps in step, or (PostgreSQL) from a
materialised view refreshed before each observation; status reports the observe time."""

from __future__ import annotations

import pytest

from helpers import artifact_ids
from ragstate.errors import SpecError
from ragstate.stores import views
from ragstate.stores.dialect import Col, ViewLayout
from ragstate.stores.sqlite.dialect import SQLiteDialect
from sources.conftest import ARTICLES, DRAFTS, PUBLISHED

KEPT = {"where": [{"column": "status", "op": "=", "value": "published"}]}


def modes(backend: str) -> list[str]:
    return ["copy"] if backend == "sqlite" else ["materialized", "copy"]


def stored_rows(project, mode: str) -> dict[str, str]:
    """``{doc_id: content_hash}`` of the copy or materialised view."""
    relation = views.relation_name(project.spec.source.mapping_name, mode)
    with project.store.session() as s:
        return dict(s.query("SELECT doc_id, content_hash FROM {r}", r=relation))


def row_place(project, user_table, doc_id: str) -> object:
    """Where a copied row lives (rowid, ctid): unchanged when the row is not rewritten."""
    relation = views.relation_name(project.spec.source.mapping_name, "copy")
    column = "rowid" if user_table.backend == "sqlite" else "ctid"
    with project.store.session() as s:
        return s.scalar("SELECT {c} FROM {r} WHERE doc_id = ?", (doc_id,), c=Col(column), r=relation)


@pytest.mark.slow
def test_stored_modes_follow_every_change_of_the_table(user_table, table_project, backend: str) -> None:
    user_table.create()
    user_table.fill()
    for mode in modes(backend):
        project = table_project({**KEPT, "mode": mode})
        first = project.reconcile()
        assert first.converged, first.error
        assert artifact_ids(project) == sorted(str(i) for i in range(1, len(ARTICLES) + 1) if i not in DRAFTS)
        stored = stored_rows(project, mode)
        # A copy holds the view's rows (filters apply when reading it, as for the view).
        assert len(stored) == len(ARTICLES)
        status = project.status()
        timing = status.source_observe
        assert timing["mode"] == mode and timing["documents"] == PUBLISHED
        assert timing["seconds"] >= timing["stage_s"] >= 0 and timing["sync_s"] >= 0
        project.close()
    # One project per mode shares the store: the last mapping (and its relation) wins.
    project = table_project({**KEPT, "mode": modes(backend)[-1]})
    mode = modes(backend)[-1]
    untouched = row_place(project, user_table, "5") if mode == "copy" else None

    user_table.edit_rows()
    plan = project.plan()
    assert plan.drift == {"doc_embeddings": {"missing": 2, "stale": 1, "orphaned": 2}}
    second = project.reconcile()
    assert second.converged and second.kinds["doc_embeddings"].built == 3
    assert artifact_ids(project) == ["1", "4", "5", "6", "7", "9"]
    assert len(stored_rows(project, mode)) == len(ARTICLES)  # one deleted, one inserted
    if untouched is not None:
        assert row_place(project, user_table, "5") == untouched  # unchanged rows are not rewritten
    assert project.verify().in_sync


@pytest.mark.slow
def test_switching_modes_rebuilds_nothing(user_table, table_project, backend: str) -> None:
    user_table.create()
    user_table.fill()
    assert table_project().apply().converged
    for mode in [*modes(backend), "view"]:
        project = table_project({"mode": mode})
        plan = project.plan()
        assert plan.drift == {"source": {"schema": 1}}  # the view and its copy are recreated
        record = project.apply()
        assert record.converged and record.built == 0, record.to_dict()
        assert project.plan().in_sync
        with project.store.session() as s:
            copy = project.store.columns(s, views.relation_name(project.spec.source.mapping_name, "copy"))
        assert (copy is not None) == (mode == "copy")


def test_a_dropped_copy_is_recreated(user_table, table_project) -> None:
    user_table.create()
    user_table.fill()
    project = table_project({"mode": "copy"})
    project.apply()
    with project.store.transaction() as s:
        s.execute("DROP TABLE {r}", r=views.relation_name(project.spec.source.mapping_name, "copy"))
    plan = project.plan()
    assert plan.source_schema and "copy" in plan.source_schema[0]
    assert project.apply().converged and project.plan().in_sync


def test_materialized_needs_postgresql(user_table, table_project, backend: str) -> None:
    if backend == "postgres":
        return
    user_table.create()
    with pytest.raises(SpecError, match="source.mode: materialized is not available on sqlite"):
        table_project({"mode": "materialized"}).plan()


def test_status_reports_the_observe_time_of_a_folder_too(make_project) -> None:
    project = make_project()
    project.apply()
    timing = project.status().source_observe
    assert timing["documents"] == 18 and timing["seconds"] > 0 and "mode" not in timing


def test_copies_of_two_prefixed_stores_in_one_sqlite_file_have_their_own_indexes() -> None:
    layout = ViewLayout(source="t", id="id", text="body")
    a, b = (SQLiteDialect(p).create_stored("copy", "src_a_copy", "src_a", layout) for p in ("one_", "two_"))
    indexes = [s.split()[2] for s in a + b if s.startswith("CREATE INDEX")]
    assert len(indexes) == len(set(indexes)) == 4 and all(i.strip('"').startswith(("one_", "two_")) for i in indexes)
