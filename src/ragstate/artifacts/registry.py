"""Artifact kinds by name, and the order they are built in (a DAG, upstream first)."""

from __future__ import annotations

from ragstate.artifacts.base import ArtifactKind
from ragstate.artifacts.chunk_embeddings import ChunkEmbeddings
from ragstate.artifacts.chunks import Chunks
from ragstate.artifacts.doc_embeddings import DocEmbeddings
from ragstate.artifacts.entities import Entities
from ragstate.artifacts.entity_embeddings import EntityEmbeddings
from ragstate.artifacts.fulltext import Fulltext
from ragstate.artifacts.token_embeddings import TokenEmbeddings
from ragstate.errors import PluginError
from ragstate.plugins import load_plugin

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

    The order is deterministic: each kind comes right after the kinds it depends on,
    otherwise in the order of ``names`` (so plans and status list kinds as the
    pipelines name them).

    Raises:
        PluginError: an unknown kind, or dependencies that form a cycle.
    """
    kinds: dict[str, ArtifactKind] = {}
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            cycle = " -> ".join(path[path.index(name) :] + (name,))
            raise PluginError(f"artifact kinds depend on each other in a cycle: {cycle}")
        if name in order:
            return
        kinds[name] = kinds.get(name) or get_kind(name)
        for upstream in kinds[name].depends_on:
            visit(upstream, path + (name,))
        order.append(name)

    for name in names:
        visit(name, ())
    return tuple(kinds[n] for n in order)
