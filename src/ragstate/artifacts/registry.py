"""Artifact kinds by name, and the order they are built in (a DAG, upstream first)."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from ragstate.artifacts.base import ArtifactKind
from ragstate.artifacts.chunk_embeddings import ChunkEmbeddings
from ragstate.artifacts.chunks import Chunks
from ragstate.artifacts.doc_embeddings import DocEmbeddings
from ragstate.artifacts.entities import Entities
from ragstate.artifacts.entity_embeddings import EntityEmbeddings
from ragstate.artifacts.fulltext import Fulltext
from ragstate.artifacts.token_embeddings import TokenEmbeddings
from ragstate.compute.plugins import load_plugin
from ragstate.errors import PluginError

BUILTIN: dict[str, ArtifactKind] = {
    k.name: k
    for k in (
        DocEmbeddings(),
        Chunks(),
        ChunkEmbeddings(),
        TokenEmbeddings(),
        Entities(),
        EntityEmbeddings(),
        Fulltext(),
    )
}


def get_kind(name: str) -> ArtifactKind:
    """The kind called ``name``: built in, or from the ``ragstate.artifacts`` entry points."""
    kind = load_plugin("ragstate.artifacts", name, BUILTIN, field="artifact kind")
    return kind() if isinstance(kind, type) else kind


def ordered(names: tuple[str, ...]) -> tuple[ArtifactKind, ...]:
    """``names`` and everything they depend on, upstream kinds first.

    Raises:
        PluginError: an unknown kind, or dependencies that form a cycle.
    """
    graph: dict[str, tuple[str, ...]] = {}
    todo = list(names)
    kinds: dict[str, ArtifactKind] = {}
    while todo:
        name = todo.pop()
        if name in kinds:
            continue
        kinds[name] = get_kind(name)
        graph[name] = kinds[name].depends_on
        todo.extend(kinds[name].depends_on)
    try:
        order = tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise PluginError(f"artifact kinds depend on each other in a cycle: {exc.args[1]}") from None
    return tuple(kinds[n] for n in order)
