"""The desired state: which artifact kinds the enabled pipelines need, under which recipes.

Pure apart from reading model files for their identity (never loading a model): the
same spec gives the same desired state on any machine with the same model files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ragstate.artifacts import ArtifactKind, Recipe, ordered
from ragstate.pipelines.registry import REQUIREMENTS, kinds_for, unusable
from ragstate.spec.model import Spec


@dataclass(frozen=True)
class DesiredKind:
    kind: ArtifactKind
    recipe: Recipe

    @property
    def name(self) -> str:
        return self.kind.name


@dataclass(frozen=True)
class Desired:
    """Kinds in build order (upstream first), and what each pipeline needs: the kinds it
    reads and those they are built from, in build order."""

    kinds: tuple[DesiredKind, ...]
    pipelines: dict[str, tuple[str, ...]]
    #: pipelines that cannot answer as the spec stands, whatever the data: pipeline -> why
    unusable: dict[str, str] = field(default_factory=dict)

    def kind(self, name: str) -> DesiredKind:
        for k in self.kinds:
            if k.name == name:
                return k
        raise KeyError(name)


def desired_state(spec: Spec, *, pipelines: tuple[str, ...] | None = None) -> Desired:
    """What the spec asks for: of every enabled pipeline, or of ``pipelines`` alone (the
    kinds one pipeline reads, for its readiness check and its heal).

    Raises:
        SpecError: a pipeline is not available in this version.
        ModelError, PluginError: a model or plugin named in the spec cannot be found.
    """
    names = spec.pipelines if pipelines is None else pipelines
    kinds = ordered(kinds_for(names))
    return Desired(
        kinds=tuple(DesiredKind(k, k.recipe(spec)) for k in kinds),
        pipelines={p: tuple(k.name for k in ordered(REQUIREMENTS[p])) for p in names},
        unusable=unusable(spec, names),
    )
