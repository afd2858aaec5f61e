"""Artifact kinds: one module per kind (recipe, table, build, checks), and their registry."""

from ragstate.artifacts.base import ArtifactKind, BuildContext, Built, Recipe, VectorColumn
from ragstate.artifacts.registry import get_kind, ordered

__all__ = ["ArtifactKind", "BuildContext", "Built", "Recipe", "VectorColumn", "get_kind", "ordered"]
