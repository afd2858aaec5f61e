"""A user's table as the source, read in place through a view, on both backends.

The real model embeds the sample's articles; the test plays the user, writing to its
own table, and checks that ragstate only ever reads it.
"""

from __future__ import annotations

import pytest

from helpers import active_table, artifact_ids
from ragstate.errors import DocumentError, MappingError
from ragstate.plan.model import Plan
from ragstate.stores.documents import DocRef
from sources.conftest import ARTICLES, DRAFTS, PUBLISHED

KEPT = {"where": [{"column": "status", "op": "=", "value": "published"}]}


def run_stamps(project) -> dict[str, str]:
    with project.store.session() as s:
        return dict(s.query("SELECT doc_id, run_id FROM {t}", t=active_table(project)))


@pytest.mark.slow
def test_map_reconcile_change_rows_reconcile_again(user_table, table_project) -> None:
    user_table.create()
    user_table.fill()
    project = table_project(KEPT)
    report = project.map_table()
    assert report.compatible and report.created and report.rows == PUBLISHED
    before = user_table.snapshot()

    first = project.reconcile()
    assert first.converged and first.kinds["doc_embeddings"].built == PUBLISHED
    assert artifact_ids(project) == sorted(str(i) for i in range(1, len(ARTICLES) + 1) if i not in DRAFTS)
    assert project.plan().in_sync
    assert user_table.snapshot() == before  # read, never written

    # The user changes rows: an edit, a deletion, an insertion, a draft published, a
    # row filtered out, and a change of trailing whitespace only (not a change).
    user_table.edit_rows()
    user_table.run("UPDATE {t} SET body = body || '   ' WHERE id = 4")

    plan = project.plan()
    assert plan.drift == {"doc_embeddings": {"missing": 2, "stale": 1, "orphaned": 2}}
    k = plan.kind("doc_embeddings")
    assert k.build == {"missing": ("7", "9"), "stale": ("1",)}
    assert k.delete == ("2", "3")
    assert plan.scope_size == PUBLISHED + 2 - 2

    before = user_table.snapshot()
    second = project.reconcile()
    counts = second.kinds["doc_embeddings"]
    assert second.converged and (counts.built, counts.embedded, counts.deleted) == (3, 3, 2)
    assert {d for d, run in run_stamps(project).items() if run == second.run_id} == {"1", "7", "9"}
    assert artifact_ids(project) == ["1", "4", "5", "6", "7", "9"]
    assert project.plan().in_sync and project.verify().in_sync
    assert user_table.snapshot() == before


def test_documents_carry_text_metadata_and_the_database_hash(user_table, table_project) -> None:
    user_table.create()
    user_table.fill()
    project = table_project({"metadata": ["pmcid"]})
    project.apply()
    _, observed = project.observe()
    assert observed.scope_size == len(ARTICLES)
    refs = [DocRef(str(i), "", "", user_table.qualified, 0, 0, 0, 0, 0) for i in (3, 1)]
    docs = list(project.source().load(refs))
    assert [d.doc_id for d in docs] == ["3", "1"]
    assert docs[1].title == ARTICLES[0]["title"] and docs[1].body == ARTICLES[0]["body"]
    assert docs[1].metadata == {"pmcid": ARTICLES[0]["doc_id"]}
    # the hash the database computed is the one every ledger row was stamped with
    with project.store.session() as s:
        stamped = s.scalar("SELECT source_hash FROM {ledger} WHERE doc_id = '1'")
    assert docs[1].content_hash == stamped
    user_table.run("DELETE FROM {t} WHERE id = 3")
    with pytest.raises(DocumentError, match=r"document '3' is no longer in table"):
        list(project.source().load(refs))


def test_scope_first_n_follows_the_id_column_order(user_table, table_project) -> None:
    user_table.create()
    user_table.fill()
    user_table.run("INSERT INTO {t} (id, title, body, status) VALUES (10, 'Ten', 'Ten.', 'published')")
    project = table_project(scope={"first": 3})
    project.apply()
    assert artifact_ids(project) == ["1", "2", "3"]  # by number: 10 does not come before 2


@pytest.mark.parametrize(
    ("where", "rows"),
    [
        ([], 8),
        (["status=published"], 6),
        (["status != published"], 2),
        (["id >= 3", "id < 6"], 3),
        (["status in draft,retracted"], 2),
        ([{"column": "id", "op": "not in", "value": [1, 2, 3]}], 5),
        (["pmcid is null"], 0),
        (["pmcid is not null"], 8),
        ({"status": "draft", "id": 8}, 1),
    ],
)
def test_structured_filters(user_table, table_project, where, rows) -> None:
    user_table.create()
    user_table.fill()
    report = table_project({"where": where}).map_table(dry_run=True)
    assert report.compatible and report.rows == rows and not report.created


def test_incompatible_table_is_reported_and_nothing_is_created(user_table, table_project) -> None:
    user_table.create(f"id INTEGER, body {user_table.blob}, title TEXT")
    user_table.run("INSERT INTO {t} VALUES (1, ?, 'a'), (1, ?, 'b'), (NULL, ?, 'c'), (2, ?, 'd')", (b"\x00\xff",) * 4)
    project = table_project({"title": "headline", "abstract": None})
    report = project.map_table()
    assert not report.compatible and not report.created
    assert [c.column for c in report.missing] == ["headline"]
    assert report.null_ids == 1 and report.duplicate_ids == 1 and report.duplicate_examples == [("1", 2)]
    problems = "\n".join(report.problems)
    t = user_table.qualified
    assert f"column {t}.headline (source.title) does not exist" in problems
    assert f"column {t}.id (source.id) is not unique: 1 rows repeat an id ('1' in 2 rows)" in problems
    assert f"column {t}.id (source.id): 1 of 4 rows have no id (NULL)" in problems
    assert f"column {t}.body (source.text) is {'BLOB' if user_table.backend == 'sqlite' else 'bytea'}" in problems
    assert len(report.problems) == 4
    assert user_table.relations() == []
    # apply says the same and creates nothing either
    with pytest.raises(MappingError, match="does not fit the mapping; nothing was created") as caught:
        project.apply()
    assert caught.value.problems == report.problems
    assert not [r for r in user_table.relations() if "src_" in r]


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL's types keep binary data out of text
def test_binary_values_in_an_untyped_sqlite_column_are_found(user_table, table_project) -> None:
    user_table.create("id INTEGER PRIMARY KEY, body")
    user_table.run("INSERT INTO {t} VALUES (1, 'text'), (2, ?)", (b"\x00\x01",))
    report = table_project({"title": None, "abstract": None}).map_table(dry_run=True)
    assert report.problems == [
        "column articles.body (source.text): 1 rows hold binary data, which cannot be read as text"
    ]


def test_renamed_and_dropped_columns_are_schema_drift(user_table, table_project) -> None:
    user_table.create()
    user_table.fill()
    project = table_project()
    assert project.reconcile().kinds["doc_embeddings"].built == len(ARTICLES)

    user_table.run("ALTER TABLE {t} RENAME COLUMN body TO content")
    plan = project.plan()
    assert plan.drift == {"source": {"schema": 1}} and not plan.kinds
    assert plan.source_schema == (
        f"source table {user_table.qualified}: column body (source.text) is missing (renamed or dropped?); "
        "map another column in the spec",
    )
    assert not project.status().ready
    assert Plan.from_json(plan.to_json()) == plan
    with pytest.raises(MappingError, match=r"body \(source.text\) does not exist"):
        project.apply()
    assert len(artifact_ids(project)) == len(ARTICLES)  # nothing was touched

    # The spec follows the rename: the view is recreated; the text is the same, so no rebuild.
    project = table_project({"text": "content"})
    record = project.apply()
    assert record.converged and record.built == 0
    assert any("created view" in r for r in record.schema_repaired)

    if user_table.backend == "postgres":  # PostgreSQL drops the dependent view with the column
        user_table.run("ALTER TABLE {t} DROP COLUMN abstract CASCADE")
    else:
        user_table.run("ALTER TABLE {t} DROP COLUMN abstract")
    plan = project.plan()
    assert plan.drift == {"source": {"schema": 1}}
    assert "column abstract (source.abstract) is missing" in plan.source_schema[0]
    project = table_project({"text": "content", "abstract": None})
    record = project.apply()
    # Without the abstract every document's content hash changed: all rebuilt.
    assert record.converged and record.kinds["doc_embeddings"].built == len(ARTICLES)
    assert project.plan().in_sync


def test_view_dropped_or_changed_behind_ragstates_back_is_recreated(user_table, table_project) -> None:
    user_table.create()
    user_table.fill()
    project = table_project()
    project.apply()
    with project.store.transaction() as s:
        s.execute("DROP VIEW {v}", v="src_articles")
    plan = project.plan()
    assert plan.drift == {"source": {"schema": 1}} and "was dropped" in plan.source_schema[0]
    record = project.apply()
    assert record.converged and record.built == 0 and project.plan().in_sync


def test_mapping_changed_in_the_spec_recreates_the_view_and_rebuilds(user_table, table_project) -> None:
    user_table.create()
    user_table.fill()
    table_project().apply()
    project = table_project({"abstract": None})
    plan = project.plan()
    assert "differs from the spec" in plan.source_schema[0]
    record = project.apply()
    assert record.converged and record.kinds["doc_embeddings"].built == len(ARTICLES)


def test_ids_that_stop_being_unique_stop_the_plan_with_their_names(user_table, table_project) -> None:
    user_table.create("id INTEGER, title TEXT, abstract TEXT, body TEXT, status TEXT, pmcid TEXT")
    user_table.fill()
    project = table_project()
    project.apply()
    user_table.run("INSERT INTO {t} (id, body) VALUES (5, 'again'), (NULL, 'no id')")
    with pytest.raises(DocumentError) as caught:
        project.plan()
    message = str(caught.value)
    assert f"source table {user_table.qualified}: column id (source.id) must hold a unique id" in message
    assert "1 rows have no id (NULL)" in message and "'5' in 2 rows" in message


def test_a_second_mapping_of_the_table_keeps_what_is_built(user_table, table_project) -> None:
    user_table.create()
    user_table.fill()
    table_project().apply()
    project = table_project({"name": "published_only", **KEPT})
    record = project.apply()
    assert record.converged and record.built == 0 and record.kinds["doc_embeddings"].deleted == len(DRAFTS)
    assert project.plan().in_sync


def test_names_keep_their_case(user_table, table_project) -> None:
    user_table.create('"Id" INTEGER PRIMARY KEY, "Body" TEXT')
    user_table.run("INSERT INTO {t} VALUES (1, 'One.'), (2, 'Two.')")
    exact = table_project({"id": "Id", "text": "Body", "title": None, "abstract": None}).map_table()
    assert exact.compatible and exact.created and exact.rows == 2
    other = table_project({"id": "Id", "text": "body", "title": None, "abstract": None, "name": "lower"})
    report = other.map_table(dry_run=True)
    if user_table.backend == "sqlite":  # SQLite matches names case-insensitively
        assert report.compatible
    else:
        assert report.problems == [
            f"column {user_table.qualified}.body (source.text) does not exist (did you mean Body?)"
        ]


def test_text_ids_and_metadata_of_another_case(user_table, table_project) -> None:
    user_table.create()
    user_table.fill()
    project = table_project({"id": "pmcid", "metadata": ["id"]})
    record = project.apply()
    assert record.converged and record.built == len(ARTICLES)
    assert artifact_ids(project) == sorted(a["doc_id"] for a in ARTICLES)
    first = ARTICLES[0]["doc_id"]
    (doc,) = project.source().load([DocRef(first, "", "", user_table.qualified, 0, 0, 0, 0, 0)])
    assert doc.doc_id == first and doc.metadata == {"id": "1"}


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite compares any value with any column
def test_a_filter_value_the_column_refuses_is_reported(user_table, table_project) -> None:
    user_table.create()
    user_table.fill()
    report = table_project({"where": ["id >= three"]}).map_table()
    assert not report.created and len(report.problems) == 1
    assert report.problems[0].startswith(f"cannot read table {user_table.qualified}: ")
    assert "invalid input syntax for type integer" in report.problems[0]


def test_an_over_limit_row_of_a_user_table_is_quarantined_by_its_id(user_table, table_project) -> None:
    user_table.create()
    user_table.fill()
    limit = 30_000
    large = {
        str(i)
        for i, a in enumerate(ARTICLES, start=1)
        if sum(len((a[f] or "").encode()) for f in ("title", "abstract", "body")) > limit
    }
    assert 0 < len(large) < len(ARTICLES)
    project = table_project({"max_document_bytes": limit})
    project.map_table()
    record = project.apply()
    assert record.converged and record.quarantined_total == len(large)
    entries = project.quarantine_list()
    assert {e.doc_id for e in entries} == large and {e.reason for e in entries} == {"too_large"}
    assert all(f"the limit (source.max_document_bytes) is {limit}" in e.message for e in entries)
