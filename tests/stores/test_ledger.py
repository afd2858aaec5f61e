"""ragstate.stores.ledger on both backends: generations, the switch, garbage collection,
ledger rows, and the drift set operations against a staged scope."""

from __future__ import annotations

from typing import Any

import pytest

from ragstate.errors import StoreError
from ragstate.stores import ledger, registry
from ragstate.stores.base import Session, Store
from ragstate.stores.schema import ARTIFACT_STAMP, SCOPE, ColumnType, TableDef, col

RECIPE = {"model": "m", "template": "{title}"}


def artifact_table(name: str, *, multi_row: bool = False) -> TableDef:
    """An artifact table with the standard stamp (one row a document, or one an item)."""
    columns = ARTIFACT_STAMP + ((col("item", ColumnType.INT, null=False),) if multi_row else ())
    return TableDef(name, columns, primary_key=("doc_id", "item") if multi_row else ("doc_id",))


def stage(s: Session, scope: dict[str, str]) -> None:
    """Stage ``{doc_id: content_hash}`` as the plan's scope."""
    registry.create_scope(s)
    s.copy_rows(SCOPE, [(d, h, "", f"{d}.txt", 0, 0, 0, 0, 1) for d, h in scope.items()], temp=True)


def add_rows(s: Session, table: TableDef, rows: list[tuple[Any, ...]]) -> None:
    """``(doc_id, source_hash, recipe_fp[, item])`` artifact rows."""
    s.copy_rows(table, [(r[0], r[1], r[2], "run", 1.0, *r[3:]) for r in rows])


def test_generations_are_numbered_per_kind_and_read_back_whole(store: Store) -> None:
    with store.transaction() as s:
        first = ledger.create_generation(store, s, "doc_embeddings", "fp1", RECIPE, "r1", models={"default": "m"})
        second = ledger.create_generation(store, s, "doc_embeddings", "fp2", RECIPE, "r2")
        other = ledger.create_generation(store, s, "chunks", "fpc", {"size": 200}, "r2", upstream={"x": 3})
    assert (first.generation, second.generation, other.generation) == (1, 2, 1)
    assert (first.table_name, second.table_name, other.table_name) == (
        "doc_embeddings_g1",
        "doc_embeddings_g2",
        "chunks_g1",
    )
    with store.session() as s:
        read = ledger.generations(store, s)
        assert [(g.kind, g.generation, g.state) for g in read] == [
            ("chunks", 1, "building"),
            ("doc_embeddings", 1, "building"),
            ("doc_embeddings", 2, "building"),
        ]
        assert read[0].recipe == {"size": 200} and read[0].upstream == {"x": 3} and read[0].models == {}
        assert read[1] == first  # every field survives the round trip (JSON, floats, None)
        assert [g.generation for g in ledger.generations(store, s, "doc_embeddings")] == [1, 2]
        assert ledger.generations(store, s, "entities") == []
        assert ledger.active(store, s, "doc_embeddings") is None, "nothing is active before the first switch"


def test_a_switch_keeps_one_active_generation_and_retires_the_previous(store: Store) -> None:
    with store.transaction() as s:
        for fp in ("fp1", "fp2"):
            ledger.create_generation(store, s, "doc_embeddings", fp, RECIPE, "r")
        ledger.create_generation(store, s, "chunks", "fpc", RECIPE, "r")
    with store.session() as s:
        assert ledger.switch(store, s, {"doc_embeddings": 1, "chunks": 1}) == {"doc_embeddings": None, "chunks": None}
        assert ledger.switch(store, s, {"doc_embeddings": 2}, upstream={"doc_embeddings": {"chunks": 1}}) == {
            "doc_embeddings": 1
        }
        gens = {(g.kind, g.generation): g for g in ledger.generations(store, s)}
        assert gens[("doc_embeddings", 1)].state == "retired" and gens[("doc_embeddings", 1)].retired_at is not None
        assert gens[("doc_embeddings", 1)].was_active
        now_active = ledger.active(store, s, "doc_embeddings")
        assert now_active is not None and now_active.generation == 2 and now_active.upstream == {"chunks": 1}
        assert gens[("chunks", 1)].state == "active"
        # a group with one missing target changes nothing at all
        with pytest.raises(StoreError, match="chunks: generation 9 does not exist"):
            ledger.switch(store, s, {"doc_embeddings": 1, "chunks": 9})
        assert ledger.active(store, s, "doc_embeddings").generation == 2  # type: ignore[union-attr]
        assert [g.generation for g in ledger.generations(store, s) if g.state == "active"] == [1, 2]


def test_a_switch_back_sets_and_a_later_switch_clears_the_hold(store: Store) -> None:
    with store.transaction() as s:
        for fp in ("fp1", "fp2"):
            ledger.create_generation(store, s, "doc_embeddings", fp, RECIPE, "r")
    with store.session() as s:
        ledger.switch(store, s, {"doc_embeddings": 2})
        ledger.switch(store, s, {"doc_embeddings": 1}, holds={"doc_embeddings": {"from": 2}})
        assert ledger.active(store, s, "doc_embeddings").hold == {"from": 2}  # type: ignore[union-attr]
        ledger.clear_hold(s, "doc_embeddings")
        assert ledger.active(store, s, "doc_embeddings").hold is None  # type: ignore[union-attr]


def test_verification_rejects_a_building_generation_never_an_active_one(store: Store) -> None:
    with store.transaction() as s:
        ledger.create_generation(store, s, "doc_embeddings", "fp1", RECIPE, "r")
        ledger.create_generation(store, s, "doc_embeddings", "fp2", RECIPE, "r")
    with store.session() as s:
        ledger.switch(store, s, {"doc_embeddings": 1})
        ledger.record_verification(store, s, "doc_embeddings", 2, {"passed": False, "why": "golden"})
        ledger.record_verification(store, s, "doc_embeddings", 1, {"passed": False})
        states = {g.generation: (g.state, g.verification) for g in ledger.generations(store, s)}
        assert states[2] == ("rejected", {"passed": False, "why": "golden"})
        assert states[1] == ("active", {"passed": False})
        ledger.record_verification(store, s, "doc_embeddings", 2, {"passed": True})
        assert ledger.generations(store, s)[1].state == "building", "a rejected generation that passes is built again"


def test_dropping_a_generation_removes_its_tables_and_ledger_rows_and_keeps_its_history(store: Store) -> None:
    table = artifact_table("doc_embeddings_g1")
    with store.transaction() as s:
        ledger.create_generation(store, s, "doc_embeddings", "fp1", RECIPE, "r")
        ledger.create_generation(store, s, "doc_embeddings", "fp2", RECIPE, "r")
        store.ensure_table(s, table)
        add_rows(s, table, [("a", "h", "fp1"), ("b", "h", "fp1")])
        ledger.write(s, "doc_embeddings", 1, [("a", "h", "fp1", 1), ("b", "h", "fp1", 1)], "r")
        ledger.write(s, "doc_embeddings", 2, [("a", "h", "fp2", 1)], "r")
    with store.session() as s:
        ledger.switch(store, s, {"doc_embeddings": 2})
        with pytest.raises(StoreError, match="generation 2 is active"):
            ledger.drop_generation(store, s, "doc_embeddings", 2, [])
        assert ledger.drop_generation(store, s, "doc_embeddings", 1, [table]) == 2
        assert store.columns(s, table.name) is None
        dropped = ledger.generations(store, s)[0]
        assert dropped.state == "dropped" and dropped.dropped_at is not None
        assert ledger.counts(s) == {("doc_embeddings", 2): 1}
        assert ledger.holding(ledger.generations(store, s), "fp1") is None, "a dropped generation holds nothing"
        assert ledger.holding(ledger.generations(store, s), "fp2") == 2


def test_ledger_rows_are_replaced_per_document_and_counted(store: Store) -> None:
    with store.transaction() as s:
        ledger.write(s, "chunks", 1, [("a", "h1", "fp", 3), ("b", "h1", "fp", 2)], "r1")
        ledger.write(s, "chunks", 1, [("a", "h2", "fp", 5)], "r2")  # a rebuilt document: its row replaced
        ledger.write(s, "chunks", 2, [("a", "h2", "fp", 4)], "r2")
    with store.session() as s:
        rows = s.query("SELECT doc_id, source_hash, items, run_id FROM {ledger} WHERE generation = 1 ORDER BY doc_id")
        assert [tuple(r) for r in rows] == [("a", "h2", 5, "r2"), ("b", "h1", 2, "r1")]
        assert ledger.counts(s) == {("chunks", 1): 2, ("chunks", 2): 1}
        assert ledger.sizes(s) == {("chunks", 1): (2, 7), ("chunks", 2): (1, 4)}
        assert ledger.item_counts(s) == {("chunks", 1): 7, ("chunks", 2): 4}
        assert ledger.built_among(s, "chunks", 1, ["a", "zzz"]) == 1
        assert ledger.built_among(s, "chunks", 1, []) == 0
    with store.transaction() as s:
        assert ledger.delete(s, "chunks", 1, ["a", "zzz"]) == 1
        assert ledger.delete(s, "chunks", 1, []) == 0
    with store.session() as s:
        assert ledger.counts(s) == {("chunks", 1): 1, ("chunks", 2): 1}


def test_drift_rows_of_a_one_row_kind_sort_every_document_into_its_class(store: Store) -> None:
    table = artifact_table("doc_embeddings_g1")
    with store.transaction() as s:
        store.ensure_table(s, table)
        add_rows(
            s,
            table,
            [
                ("ok", "h", "fp"),
                ("edited", "old", "fp"),
                ("foreign", "h", "fp0"),
                ("gone", "h", "fp"),
                ("stray", "h", "fp"),
            ],
        )
        entries = [("ok", "h", "fp", 1), ("edited", "old", "fp", 1), ("foreign", "h", "fp0", 1), ("gone", "h", "fp", 1)]
        ledger.write(s, "doc_embeddings", 1, [*entries, ("lost", "h", "fp", 1)], "r")
    with store.session() as s, s.read_transaction():
        stage(s, {"ok": "h", "edited": "new", "foreign": "h", "lost": "h", "new": "h"})
        found = ledger.drift_rows(s, "doc_embeddings", 1, [table.name], "fp", multi_row=False, scope_size=5)
        registry.drop_scope(s)
    assert found == ledger.DriftRows(
        unbuilt=("new",),
        rows_absent=("lost",),
        changed=("edited",),
        foreign_recipe=("foreign",),
        out_of_scope=("gone",),
        strays=("stray",),
        built=5,
    )


def test_drift_rows_in_sync_find_nothing_and_a_missing_table_makes_every_row_absent(store: Store) -> None:
    table = artifact_table("doc_embeddings_g1")
    with store.transaction() as s:
        store.ensure_table(s, table)
        add_rows(s, table, [("a", "h", "fp"), ("b", "h", "fp")])
        ledger.write(s, "doc_embeddings", 1, [("a", "h", "fp", 1), ("b", "h", "fp", 1)], "r")
    with store.session() as s, s.read_transaction():
        stage(s, {"a": "h", "b": "h"})
        in_sync = ledger.drift_rows(s, "doc_embeddings", 1, [table.name], "fp", multi_row=False, scope_size=2)
        no_table = ledger.drift_rows(s, "doc_embeddings", 1, None, "fp", multi_row=False, scope_size=2)
        registry.drop_scope(s)
    assert in_sync == ledger.DriftRows(built=2)
    assert no_table.rows_absent == ("a", "b") and no_table.unbuilt == () and no_table.strays == ()


def test_drift_rows_of_a_multi_row_kind_count_items_over_its_tables(store: Store) -> None:
    chunks, extra = artifact_table("chunks_g1", multi_row=True), artifact_table("chunks_x_g1", multi_row=True)
    with store.transaction() as s:
        store.ensure_table(s, chunks)
        store.ensure_table(s, extra)
        add_rows(s, chunks, [("ok", "h", "fp", 0), ("ok", "h", "fp", 1), ("short", "h", "fp", 0)])
        add_rows(s, extra, [("ok", "h", "fp", 0)])
        add_rows(s, chunks, [("mixed", "h", "fp", 0), ("mixed", "old", "fp", 1), ("stray", "h", "fp", 0)])
        ledger.write(s, "chunks", 1, [("ok", "h", "fp", 3), ("short", "h", "fp", 2), ("mixed", "h", "fp", 2)], "r")
    with store.session() as s, s.read_transaction():
        stage(s, {"ok": "h", "short": "h", "mixed": "h"})
        found = ledger.drift_rows(s, "chunks", 1, [chunks.name, extra.name], "fp", multi_row=True, scope_size=3)
        registry.drop_scope(s)
    # 'ok' has its 3 items over both tables; 'short' lost one; one of 'mixed''s rows has an old hash
    assert (found.rows_absent, found.changed, found.strays, found.unbuilt) == (("short",), ("mixed",), ("stray",), ())


def test_identical_values_and_row_stamps(store: Store) -> None:
    table = TableDef(
        "vecs_g1",
        (*ARTIFACT_STAMP, col("text_hash", ColumnType.TEXT, null=False), col("v", ColumnType.TEXT)),
        ("doc_id",),
    )
    with store.transaction() as s:
        store.ensure_table(s, table)
        s.copy_rows(
            table,
            [
                ("a", "h", "fp", "r", 1.0, "t1", "same"),
                ("b", "h", "fp", "r", 1.0, "t2", "same"),
                ("c", "h", "fp", "r", 1.0, "t3", "own"),
                ("d", "h", "fp", "r", 1.0, "t3", "twin"),  # one text, one value: not a placeholder
                ("e", "h", "fp", "r", 1.0, "t3", "twin"),
            ],
        )
        ledger.write(s, "vecs", 1, [("a", "L", "fp", 1), ("c", "L", "fp", 1)], "r")
    with store.session() as s:
        assert ledger.identical_values(s, table.name, "v") == [("a", "t1", ("t1", "t2")), ("b", "t2", ("t1", "t2"))]
        assert ledger.row_stamps(s, "vecs", 1, table.name, ["a", "b", "c"]) == {
            "a": ("L", "h", "t1"),
            "c": ("L", "h", "t3"),
        }
        assert ledger.row_stamps(s, "vecs", 1, table.name, []) == {}
        assert ledger.texts_of(s, table.name, ["a", "d", "e"]) == {"t1", "t3"}
    with store.transaction() as s:
        assert ledger.delete_rows(s, [table.name], ["a", "b", "nope"]) == 2
        assert ledger.delete_rows(s, table.name, []) == 0
