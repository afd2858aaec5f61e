"""ragstate.stores.quarantine on both backends: entries recorded, counted, retried, dropped, removed."""

from __future__ import annotations

from ragstate.stores import quarantine, registry
from ragstate.stores.base import Store
from ragstate.stores.quarantine import DROPPED, QUARANTINED, RETRY, SOURCE, Entry
from ragstate.stores.schema import SCOPE


def failed(kind: str, item: str, fingerprint: str = "f1", message: str = "the model refused it") -> Entry:
    doc_id = None if kind == SOURCE else item
    return Entry(kind, item, doc_id, "a.txt", "model_error", "ModelError", message, fingerprint)


def test_an_item_that_fails_again_counts_one_more_attempt_and_keeps_its_first_sighting(store: Store) -> None:
    with store.transaction() as s:
        assert quarantine.record(s, [failed("doc_embeddings", "d1"), failed(SOURCE, "a.jsonl:3")], "r1") == 2
        assert quarantine.record(s, [], "r1") == 0
    with store.session() as s:
        first = {e.key: e for e in quarantine.entries(s)}
    with store.transaction() as s:
        quarantine.record(s, [failed("doc_embeddings", "d1", message="refused again")], "r2")
    with store.session() as s:
        again = quarantine.entries(s, kinds=["doc_embeddings"])
    assert [e.key for e in again] == [("doc_embeddings", "d1")]
    e = again[0]
    assert (e.attempts, e.run_id, e.message, e.state) == (2, "r2", "refused again", QUARANTINED)
    assert e.first_seen == first[("doc_embeddings", "d1")].first_seen and e.last_seen >= e.first_seen
    assert sorted(first) == [("doc_embeddings", "d1"), ("source", "a.jsonl:3")]
    assert first[("source", "a.jsonl:3")].doc_id is None


def test_messages_are_masked_and_cut(store: Store) -> None:
    long = "postgresql://app:hunter2@db/x " + "x" * 5000
    with store.transaction() as s:
        quarantine.record(s, [failed("chunks", "d1", message=long)], "r")
    with store.session() as s:
        (e,) = quarantine.entries(s)
    assert "hunter2" not in e.message and len(e.message) == quarantine.MAX_MESSAGE


def test_a_dropped_item_stays_dropped_until_its_content_changes(store: Store) -> None:
    with store.transaction() as s:
        quarantine.record(s, [failed("chunks", "d1"), failed("chunks", "d2")], "r1")
        quarantine.set_state(s, [("chunks", "d1"), ("chunks", "d2")], DROPPED)
        quarantine.record(s, [failed("chunks", "d1"), failed("chunks", "d2", fingerprint="f2")], "r2")
    with store.session() as s:
        states = {e.item: (e.state, e.fingerprint) for e in quarantine.entries(s)}
    assert states == {"d1": (DROPPED, "f1"), "d2": (QUARANTINED, "f2")}


def test_retry_and_removal_by_kind_and_item(store: Store) -> None:
    with store.transaction() as s:
        quarantine.record(s, [failed("chunks", "d1"), failed("chunks", "d2"), failed("entities", "d1")], "r")
        quarantine.set_state(s, [("chunks", "d2"), ("entities", "d1")], RETRY)
    with store.session() as s:
        found = quarantine.entries(s)
    assert quarantine.counts_by_kind(found) == {"chunks": 1}
    assert quarantine.counts_by_kind(found, state=RETRY) == {"chunks": 1, "entities": 1}
    with store.transaction() as s:
        assert quarantine.remove(s, [("chunks", "d1"), ("entities", "d1"), ("entities", "nope")]) == 2
        assert quarantine.remove(s, []) == 0
    with store.session() as s:
        assert [e.key for e in quarantine.entries(s)] == [("chunks", "d2")]
        assert quarantine.entries(s, kinds=["entities"]) == []


def test_scope_hashes_and_forgotten_files(store: Store) -> None:
    with store.session() as s, s.read_transaction():
        registry.create_scope(s)
        s.copy_rows(
            SCOPE, [("d1", "h1", "", "a.txt", 0, 0, 0, 0, 1), ("d2", "h2", "", "b.txt", 0, 0, 0, 0, 1)], temp=True
        )
        assert quarantine.scope_hashes(s, ["d1", "d1", "gone"]) == {"d1": "h1"}
        assert quarantine.scope_hashes(s, []) == {}
        registry.drop_scope(s)
    with store.transaction() as s:
        s.executemany(
            "INSERT INTO {source_files} (path, size, mtime_ns, ctime_ns, inode, observed_at) VALUES (?, 1, 1, 1, 1, 0)",
            [("a.txt",), ("b.txt",)],
        )
        quarantine.forget_files(s, ["a.txt", "a.txt"])
        quarantine.forget_files(s, [])
    with store.session() as s:
        assert list(registry.known_files(s)) == ["b.txt"]
