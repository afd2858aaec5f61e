"""ragstate.stores.registry on both backends: the recorded source, and the scope a plan stages."""

from __future__ import annotations

import pytest

from ragstate.errors import DuplicateDocumentId
from ragstate.stores.documents import DocRef, FileStat, Snapshot
from ragstate.stores import registry
from ragstate.stores.base import Store


def stat(path: str, size: int = 10) -> FileStat:
    return FileStat(path, size, 1, 1, 1)


def ref(doc_id: str, path: str, content_hash: str = "h", pos: int = 0, title: str = "") -> DocRef:
    return DocRef(doc_id, content_hash, title, path, pos, pos * 100, len(title), 0, 50)


def record(store: Store, snapshot: Snapshot) -> int:
    with store.transaction() as s:
        return registry.sync(s, snapshot, registry.known_files(s))


def staged(store: Store, snapshot: Snapshot, limit: int | None = None) -> tuple[int, list[tuple[str, str]]]:
    """(count, [(doc_id, content_hash)]) of the scope ``stage_scope`` stages for ``snapshot``."""
    with store.session() as s, s.read_transaction():
        n = registry.stage_scope(store, s, snapshot, registry.known_files(s), limit)
        rows = s.query("SELECT doc_id, content_hash FROM {tmp_scope} ORDER BY doc_id")
        registry.drop_scope(s)
    return n, [tuple(r) for r in rows]


FIRST = Snapshot(
    files=(stat("a.txt"), stat("b.jsonl")),
    unchanged=frozenset(),
    fresh=(ref("a", "a.txt", title="Seeds"), ref("b1", "b.jsonl", pos=0), ref("b2", "b.jsonl", pos=1, title="Soil")),
)


def test_sync_records_documents_and_file_stats(store: Store) -> None:
    assert record(store, FIRST) == 3
    with store.session() as s:
        assert registry.known_files(s) == {"a.txt": stat("a.txt"), "b.jsonl": stat("b.jsonl")}
        refs = registry.document_refs(s, ["a", "b2", "zzz"])
        assert refs == {"a": ref("a", "a.txt", title="Seeds"), "b2": ref("b2", "b.jsonl", pos=1, title="Soil")}
        assert registry.document_titles(s, ["a", "b1"]) == {"a": "Seeds", "b1": ""}


def test_a_changed_file_replaces_its_documents_and_a_vanished_one_is_forgotten(store: Store) -> None:
    record(store, FIRST)
    # b.jsonl changed: b1 edited, b2 gone, b3 new; a.txt vanished
    changed = Snapshot(
        files=(stat("b.jsonl", size=20),),
        unchanged=frozenset(),
        fresh=(ref("b1", "b.jsonl", content_hash="h2"), ref("b3", "b.jsonl", pos=1)),
    )
    assert staged(store, changed) == (2, [("b1", "h2"), ("b3", "h")])
    assert record(store, changed) == 2
    with store.session() as s:
        assert registry.known_files(s) == {"b.jsonl": stat("b.jsonl", size=20)}
        assert sorted(registry.document_refs(s, ["a", "b1", "b2", "b3"])) == ["b1", "b3"]


def test_a_no_op_stages_every_recorded_document_and_a_partial_change_keeps_the_unchanged(store: Store) -> None:
    record(store, FIRST)
    nothing = Snapshot(files=FIRST.files, unchanged=frozenset({"a.txt", "b.jsonl"}), fresh=())
    assert staged(store, nothing) == (3, [("a", "h"), ("b1", "h"), ("b2", "h")])
    only_a = Snapshot(files=FIRST.files, unchanged=frozenset({"b.jsonl"}), fresh=(ref("a", "a.txt", "h9"),))
    assert staged(store, only_a) == (3, [("a", "h9"), ("b1", "h"), ("b2", "h")])
    assert staged(store, nothing, limit=2) == (2, [("a", "h"), ("b1", "h")]), "the first N by path and position"


def test_a_new_file_declaring_a_recorded_id_is_named(store: Store) -> None:
    record(store, FIRST)
    clash = Snapshot(
        files=(*FIRST.files, stat("c.txt")), unchanged=frozenset({"a.txt", "b.jsonl"}), fresh=(ref("b2", "c.txt"),)
    )
    with pytest.raises(DuplicateDocumentId, match="document id 'b2' appears twice: in b.jsonl and in c.txt") as e:
        staged(store, clash)
    assert (e.value.path, e.value.doc_id) == ("c.txt", "b2")
    # the same id moving from a changed file to a new one is no clash
    moved = Snapshot(files=(stat("a.txt"), stat("c.txt")), unchanged=frozenset({"a.txt"}), fresh=(ref("b2", "c.txt"),))
    assert staged(store, moved) == (2, [("a", "h"), ("b2", "h")])


def test_staged_refs_and_titles(store: Store) -> None:
    with store.session() as s, s.read_transaction():
        registry.stage_scope(store, s, FIRST, {}, None)
        assert registry.scope_refs(s, ["b2", "zzz"]) == {"b2": ref("b2", "b.jsonl", pos=1, title="Soil")}
        assert registry.scope_titles(s) == (("a", "Seeds"), ("b2", "Soil"))
        registry.drop_scope(s)
