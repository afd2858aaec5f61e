"""ragstate.stores.views on both backends: the view over a user's table, its record, its copy,
and the queries that stage and load documents through it (the user's table is only read)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ragstate.errors import IdentifierError
from ragstate.stores import registry, views
from ragstate.stores.base import Store
from ragstate.stores.dialect import ViewLayout
from sources.conftest import ARTICLES, DRAFTS, PUBLISHED, UserTable


@dataclass(frozen=True)
class Where:
    column: str
    op: str
    value: Any


PUBLISHED_ONLY = (Where("status", "=", "published"),)


@pytest.fixture
def table(backend: str, store_spec: dict[str, Any], store: Store, request: pytest.FixtureRequest) -> UserTable:
    """The sample's articles in the user's table (ids 1..N, ``DRAFTS`` not published)."""
    user = UserTable(backend, store_spec, request.getfixturevalue("pg_url") if backend == "postgres" else None)
    user.create()
    user.fill()
    return user


def layout(table: UserTable) -> ViewLayout:
    return ViewLayout(
        source=table.qualified, id="id", text="body", title="title", abstract="abstract", extras=("id", "status")
    )


def make_view(store: Store, table: UserTable, mode: str = "view", name: str = "articles") -> None:
    with store.session() as s:
        views.create(store, s, name, layout(table), {"table": table.qualified, "mode": mode}, "fp1", {"id": "integer"})


def test_names_of_the_view_and_its_stored_forms() -> None:
    assert views.view_name("articles") == "src_articles"
    assert views.relation_name("articles", "view") == "src_articles"
    assert views.relation_name("articles", "copy") == "src_articles_copy"
    assert views.relation_name("articles", "materialized") == "src_articles_mat"


def test_the_users_table_is_checked_before_any_view(store: Store, table: UserTable) -> None:
    table.run("INSERT INTO {t} (id, title, body, status) VALUES (?, 'Twin', 'b', 'published')", (100,))
    table.run("UPDATE {t} SET pmcid = 'dup' WHERE id IN (1, 3, 100)")
    with store.session() as s:
        assert views.id_counts(s, table.qualified, "id", PUBLISHED_ONLY) == (PUBLISHED + 1,) * 3
        assert views.id_counts(s, table.qualified, "pmcid", ()) == (
            len(ARTICLES) + 1,
            len(ARTICLES) + 1,
            len(ARTICLES) - 1,
        )
        assert views.duplicate_ids(s, table.qualified, "pmcid", ()) == [("dup", 3)]
        assert views.duplicate_ids(s, table.qualified, "id", ()) == []
        assert views.binary_values(s, table.qualified, "body", ()) == 0


def test_a_view_is_recorded_and_recreating_it_keeps_its_creation_time(store: Store, table: UserTable) -> None:
    before = table.snapshot()
    with store.session() as s:
        assert views.recorded(store, s, "articles") is None
    make_view(store, table)
    with store.session() as s:
        first = views.recorded(store, s, "articles")
        assert first is not None
        assert (first.view_name, first.source_table, first.fingerprint) == ("src_articles", table.qualified, "fp1")
        assert first.definition == {"table": table.qualified, "mode": "view"} and first.columns == {"id": "integer"}
        views.touch(store, s, "articles")
        touched = views.recorded(store, s, "articles")
        assert touched is not None and touched.checked_at >= first.checked_at
        assert touched.created_at == first.created_at
    make_view(store, table, mode="copy")
    with store.session() as s:
        again = views.recorded(store, s, "articles")
        assert again is not None and again.created_at == first.created_at and again.definition["mode"] == "copy"
        assert store.columns(s, "src_articles_copy") is not None
    assert table.snapshot() == before, "nothing is ever written to the user's table"


def test_documents_are_staged_and_loaded_through_the_view(store: Store, table: UserTable) -> None:
    make_view(store, table)
    with store.session() as s, s.read_transaction():
        registry.create_scope(s)
        assert views.stage_scope(s, "src_articles", layout(table), PUBLISHED_ONLY, None, table.qualified) == (
            PUBLISHED,
            PUBLISHED,
        )
        staged = {r[0]: r[1:] for r in s.query("SELECT doc_id, path, title_chars FROM {tmp_scope}")}
        assert sorted(staged, key=int) == [str(i) for i in range(1, len(ARTICLES) + 1) if i not in DRAFTS]
        assert staged["1"] == (table.qualified, len(ARTICLES[0]["title"]))
        registry.create_scope(s)
        assert views.stage_scope(s, "src_articles", layout(table), (), 2, table.qualified) == (2, len(ARTICLES))
        assert sorted(r[0] for r in s.query("SELECT doc_id FROM {tmp_scope}")) == ["1", "2"]
        registry.drop_scope(s)
        by_doc = views.load_rows(
            s, "src_articles", layout(table), PUBLISHED_ONLY, ["1", str(DRAFTS[0])], by_raw_id=False
        )
        by_raw = views.load_rows(s, "src_articles", layout(table), (), [1, 2], by_raw_id=True)
    # (content_hash, doc_id, title, abstract, body, *extras): the draft is not kept by the filter
    assert [(r[1], r[2], r[4]) for r in by_doc] == [("1", ARTICLES[0]["title"], ARTICLES[0]["body"])]
    assert sorted(r[1] for r in by_raw) == ["1", "2"] and len({r[0] for r in by_raw}) == 2


def test_ids_missing_or_repeated_are_found_through_the_view(store: Store, table: UserTable) -> None:
    table.run("DROP TABLE {t}")  # the same table without its primary key
    table.create("id INTEGER, title TEXT, abstract TEXT, body TEXT, status TEXT, pmcid TEXT")
    table.fill()
    make_view(store, table)
    table.run("INSERT INTO {t} (id, title, body, status) VALUES (NULL, 'No id', 'b', 'published')")
    table.run("INSERT INTO {t} (id, title, body, status) VALUES (1, 'Twin', 'b', 'published')")
    with store.session() as s, s.read_transaction():
        registry.create_scope(s)
        staged, kept = views.stage_scope(s, "src_articles", layout(table), PUBLISHED_ONLY, None, table.qualified)
        assert (staged, kept) == (PUBLISHED, PUBLISHED + 2)
        assert views.view_id_problems(s, "src_articles", layout(table), PUBLISHED_ONLY) == (1, [("1", 2)])
        registry.drop_scope(s)


@pytest.mark.parametrize("mode", ["copy", "materialized"])
def test_a_stored_form_is_filled_by_sync_and_follows_the_table_only_then(
    store: Store, table: UserTable, backend: str, mode: str
) -> None:
    if mode not in store.dialect.stored_modes:
        assert backend == "sqlite"
        with pytest.raises(IdentifierError, match="source.mode 'materialized' is not available on sqlite"):
            make_view(store, table, mode=mode)
        return
    relation = views.relation_name("articles", mode)
    make_view(store, table, mode=mode)

    def rows() -> dict[str, tuple[str, str]]:
        with store.session() as s:
            return {r[0]: (r[1], r[2]) for r in s.query("SELECT doc_id, title, content_hash FROM {r}", r=relation)}

    with store.session() as s:
        views.sync(store, s, "articles", layout(table), mode)
    first = rows()
    assert len(first) == len(ARTICLES) and first["1"][0] == ARTICLES[0]["title"]
    table.run("UPDATE {t} SET title = 'Edited' WHERE id = 1")
    table.run("DELETE FROM {t} WHERE id = 2")
    assert rows() == first, "the stored form changes only when synced"
    with store.session() as s:
        views.sync(store, s, "articles", layout(table), mode)
    fresh = rows()
    assert set(fresh) == set(first) - {"2"}
    assert fresh["1"][0] == "Edited" and fresh["1"][1] != first["1"][1], "the content hash follows the edit"
    assert {d: v for d, v in fresh.items() if d != "1"} == {d: v for d, v in first.items() if d not in ("1", "2")}
