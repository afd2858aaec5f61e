"""Which generations a rollback switches to, and which garbage collection drops: pure rules."""

from __future__ import annotations

import pytest

from ragstate.apply.generations import choose_rollback
from ragstate.errors import RollbackError
from ragstate.stores.ledger import Generation, collectable

DEPENDS = {"chunks": (), "chunk_embeddings": ("chunks",), "token_embeddings": ("chunks",), "doc_embeddings": ()}


def gen(
    kind: str,
    n: int,
    state: str,
    *,
    activated: float | None = None,
    retired: float | None = None,
    upstream: dict[str, int] | None = None,
    created: float = 0.0,
) -> Generation:
    if activated is None and state in ("active", "retired"):
        activated = float(n)
    return Generation(
        kind,
        n,
        f"fp{kind}{n}",
        {},
        f"{kind}_g{n}",
        state,
        created or float(n),
        activated,
        None,
        upstream=upstream or {},
        retired_at=retired,
    )


def chunk_store() -> list[Generation]:
    """chunks g1 → g2 (a chunking change), chunk and token embeddings switched with them;
    chunk_embeddings then changed model on top of chunks g2 (g3)."""
    return [
        gen("chunks", 1, "retired", retired=10.0),
        gen("chunks", 2, "active", activated=10.0),
        gen("chunk_embeddings", 1, "retired", upstream={"chunks": 1}, retired=10.0),
        gen("chunk_embeddings", 2, "retired", upstream={"chunks": 2}, activated=10.0, retired=20.0),
        gen("chunk_embeddings", 3, "active", upstream={"chunks": 2}, activated=20.0),
        gen("token_embeddings", 1, "retired", upstream={"chunks": 1}, retired=10.0),
        gen("token_embeddings", 2, "active", upstream={"chunks": 2}, activated=10.0),
    ]


def test_rollback_takes_the_kinds_built_from_it_along() -> None:
    chosen = choose_rollback(chunk_store(), DEPENDS, "chunks")
    assert chosen == {"chunks": 1, "chunk_embeddings": 1, "token_embeddings": 1}


def test_rollback_of_a_dependent_kind_alone() -> None:
    assert choose_rollback(chunk_store(), DEPENDS, "chunk_embeddings") == {"chunk_embeddings": 2}


def test_rollback_refuses_a_generation_built_from_another_upstream() -> None:
    with pytest.raises(RollbackError, match="built from chunks generation 1, but chunks generation 2 is active"):
        choose_rollback(chunk_store(), DEPENDS, "chunk_embeddings", to=1)


def test_rollback_forward_and_to_the_active_one() -> None:
    gens = chunk_store()
    assert choose_rollback(gens, DEPENDS, "chunks", to=2) == {}
    back = [
        gen("chunks", 1, "active", activated=30.0),
        gen("chunks", 2, "retired", activated=10.0, retired=30.0),
        gen("chunk_embeddings", 1, "active", upstream={"chunks": 1}, activated=30.0),
        gen("chunk_embeddings", 2, "retired", upstream={"chunks": 2}, activated=10.0, retired=20.0),
        gen("chunk_embeddings", 3, "retired", upstream={"chunks": 2}, activated=20.0, retired=30.0),
    ]
    # forward again: the most recently active chunk embeddings of chunks g2
    assert choose_rollback(back, DEPENDS, "chunks", to=2) == {"chunks": 2, "chunk_embeddings": 3}


@pytest.mark.parametrize(
    ("gens", "kind", "to", "message"),
    [
        ([gen("doc_embeddings", 1, "active")], "doc_embeddings", None, "no earlier generation"),
        ([gen("doc_embeddings", 1, "active")], "chunks", None, "no generation has been built"),
        ([gen("doc_embeddings", 1, "building")], "doc_embeddings", None, "no generation is active"),
        ([gen("doc_embeddings", 2, "active"), gen("doc_embeddings", 1, "dropped")], "doc_embeddings", 1, "garbage"),
        ([gen("doc_embeddings", 1, "active"), gen("doc_embeddings", 2, "rejected")], "doc_embeddings", 2, "never"),
        ([gen("doc_embeddings", 1, "active")], "doc_embeddings", 7, "no generation 7"),
    ],
)
def test_rollback_refusals(gens, kind, to, message) -> None:
    with pytest.raises(RollbackError, match=message):
        choose_rollback(gens, DEPENDS, kind, to)


def test_rollback_refuses_when_a_dependent_kept_nothing() -> None:
    gens = [g for g in chunk_store() if not (g.kind == "token_embeddings" and g.generation == 1)]
    with pytest.raises(RollbackError, match="no kept generation of token_embeddings"):
        choose_rollback(gens, DEPENDS, "chunks")


def test_lineage_of_old_generations_is_matched_by_recipe() -> None:
    # Generations recorded before lineage was kept: the dependent's recipe names its upstream's fingerprint.
    gens = [
        gen("chunks", 1, "retired", retired=10.0),
        gen("chunks", 2, "active"),
        Generation(
            "chunk_embeddings", 1, "x", {"upstream": "fpchunks1"}, "t", "retired", 1.0, 1.0, None, retired_at=10.0
        ),
        Generation("chunk_embeddings", 2, "y", {"upstream": "fpchunks2"}, "t", "active", 2.0, 10.0, None),
    ]
    assert choose_rollback(gens, DEPENDS, "chunks") == {"chunks": 1, "chunk_embeddings": 1}


def test_gc_keeps_the_active_the_previous_and_the_target() -> None:
    gens = [
        gen("doc_embeddings", 1, "retired", retired=10.0),
        gen("doc_embeddings", 2, "retired", retired=20.0),
        gen("doc_embeddings", 3, "retired", retired=30.0),
        gen("doc_embeddings", 4, "active"),
        gen("doc_embeddings", 5, "building", created=40.0),
    ]
    assert [g.generation for g in collectable(gens, keep=1, protect=(5,))] == [2, 1]
    assert [g.generation for g in collectable(gens, keep=2, protect=(5,))] == [1]
    assert collectable(gens, keep=3, protect=(5,)) == []
    # an abandoned build counts like any inactive generation; the previous one always stays
    assert [g.generation for g in collectable(gens, keep=1)] == [5, 2, 1]
    assert [g.generation for g in collectable(gens, keep=2)] == [2, 1]


def test_gc_after_a_rollback_keeps_the_generation_rolled_back_from() -> None:
    gens = [
        gen("doc_embeddings", 1, "active", activated=30.0),
        gen("doc_embeddings", 2, "retired", retired=30.0),
        gen("doc_embeddings", 3, "dropped"),
    ]
    assert collectable(gens, keep=1, protect=(2,)) == []
    assert collectable(gens, keep=1, protect=(1,)) == []


def test_gc_of_a_held_kind_keeps_the_generation_of_the_specs_recipe() -> None:
    # rolled back from 3 to 2 while 4 (the spec's recipe) was rejected: 2 active, 3 previous
    gens = [
        gen("doc_embeddings", 1, "retired", retired=10.0),
        gen("doc_embeddings", 2, "active", activated=40.0),
        gen("doc_embeddings", 3, "retired", retired=40.0),
        gen("doc_embeddings", 4, "rejected", created=35.0),
    ]
    assert collectable(gens, keep=2, protect=(2, 4)) == []
    assert [g.generation for g in collectable(gens, keep=1, protect=(2, 4))] == [1]
