"""The desired state: which artifact kinds the enabled pipelines need, under which recipes.

Pure apart from reading model files for their identity (never loading a model): the
same spec gives the same desired state on any machine with the same model files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ragstate.artifacts import ArtifactKind, Recipe, ordered
from ragstate.artifacts.requirements import REQUIREMENTS, kinds_for, unusable
from ragstate.spec.model import ModelSpec, Spec
from ragstate.stores.ledger import ACTIVE, Generation


@dataclass(frozen=True)
class DesiredKind:
    kind: ArtifactKind
    recipe: Recipe
    #: set while a rollback holds the kind (``pin_holds``): why, the recipe the spec asks
    #: for (``recipe`` is then the active generation's), and the spec to build with (the
    #: models that generation was built with)
    held: str = ""
    asked: Recipe | None = None
    spec: Spec | None = None

    @property
    def name(self) -> str:
        return self.kind.name

    @property
    def asked_fp(self) -> str:
        """The fingerprint of the recipe the spec asks for (held or not)."""
        return (self.asked or self.recipe).fingerprint

    def model_spec(self, spec: Spec) -> ModelSpec:
        """The spec of the model this kind's rows are made with (the pinned one while held)."""
        assert self.recipe.model is not None, f"{self.name} embeds nothing"
        return (self.spec or spec).models[self.recipe.model]


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


def pin_holds(spec: Spec, desired: Desired, generations: Sequence[Generation]) -> Desired:
    """``desired`` with each kind that a rollback holds pinned to its active generation's recipe.

    A rollback pins the recipe, not the data: while the spec still asks for the recipe
    rolled back from (``Generation.hold``), the kind is reconciled under the recipe of
    the generation rolled back to, into that generation (source edits, additions and
    deletions are drift as usual, and ``verify`` audits it). A kind whose recipe this
    version cannot build again (``ArtifactKind.pinned``) is left as it is: observe then
    finds it held and left alone. Kinds already pinned stay as they are.
    """
    active = {g.kind: g for g in generations if g.state == ACTIVE}
    out = []
    for d in desired.kinds:
        g = active.get(d.name)
        hold = (g.hold or {}) if g is not None else {}
        if g is None or d.held or g.recipe_fp == d.recipe.fingerprint or hold.get("recipe_fp") != d.recipe.fingerprint:
            out.append(d)
            continue
        found = d.kind.pinned(spec, g.recipe_fp, g.recipe, g.models)
        if found is None:
            out.append(d)
            continue
        reason = f"rolled back to generation {g.generation} by run {hold.get('run_id')}"
        out.append(replace(d, recipe=found.recipe, held=reason, asked=d.recipe, spec=found.spec))
    return replace(desired, kinds=tuple(out))
