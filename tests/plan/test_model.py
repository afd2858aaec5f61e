"""The ``Plan`` value: actions derived from the reasons, what apply needs kept out of JSON."""

from __future__ import annotations

import pytest

from ragstate.apply.apply import ApplyContext, apply_plan
from ragstate.apply.record import RunRecord
from ragstate.apply.safety import Safety
from ragstate.artifacts.base import Recipe
from ragstate.artifacts.doc_embeddings import DocEmbeddings
from ragstate.errors import PlanError
from ragstate.observe.observe import KindObservation, Observed
from ragstate.artifacts.desired import Desired, DesiredKind
from ragstate.plan.diff import diff
from ragstate.plan.model import (
    ACTIONS,
    BUILD,
    DELETE,
    PAST_WINDOW,
    PURGE,
    REBUILD,
    REPAIR,
    SWITCH,
    Action,
    Estimate,
    KindPlan,
    Plan,
)
from ragstate.spec import spec_from_dict
from ragstate.stores.documents import DocRef
from ragstate.stores.ledger import DriftRows


def kind_plan(**fields) -> KindPlan:
    base = dict(
        kind="doc_embeddings",
        recipe_fp="r",
        active_generation=1,
        target_generation=1,
        switch=False,
        drift={},
        build={},
        estimate=Estimate(),
    )
    return KindPlan(**(base | fields))


def test_each_reason_leads_to_one_action_in_apply_order() -> None:
    k = kind_plan(
        target_generation=2,
        switch=True,
        build={"missing": ("a",), "corrupt": ("b",), "stale": ("c",), "mock": ("d",), PAST_WINDOW: ("e",)},
        delete=("x",),
        purge=("y",),
        repair=("missing index on doc_embeddings_g2",),
    )
    assert k.actions == (
        Action(REPAIR, "doc_embeddings", 2, problems=("missing index on doc_embeddings_g2",)),
        Action(PURGE, "doc_embeddings", 2, ("y",)),
        Action(DELETE, "doc_embeddings", 2, ("x",)),
        Action(BUILD, "doc_embeddings", 2, ("a", "c", "e")),
        Action(REBUILD, "doc_embeddings", 2, ("b", "d")),
        Action(SWITCH, "doc_embeddings", 2),
    )
    assert k.documents(BUILD, REBUILD) == ("a", "c", "e", "b", "d")
    assert set(k.documents(BUILD, REBUILD)) == set(k.build_ids)
    assert k.action(REPAIR) is not None and k.action(SWITCH) is not None and k.has_work
    assert {a.what for a in k.actions} <= set(ACTIONS)


def test_a_kind_in_sync_or_left_alone_has_no_action() -> None:
    assert kind_plan().actions == () and not kind_plan().has_work
    frozen = kind_plan(frozen=True, held="rolled back to generation 1 by run r1", changes=("model: a → b",))
    assert frozen.actions == () and not frozen.has_work and frozen.action(SWITCH) is None


SPEC = spec_from_dict({"store": "sqlite:///x.db", "source": "d"})
RECIPE = Recipe.of("doc_embeddings", {"text": "{title}"}, model="default", dimension=4, normalized=True)
DESIRED = Desired(kinds=(DesiredKind(DocEmbeddings(), RECIPE),), pipelines={"basic": ("doc_embeddings",)})


def test_apply_inputs_stay_in_memory_and_a_plan_from_json_is_not_applied(tmp_path) -> None:
    """``diff`` hands apply what it needs of the observation; the JSON round trip (and the
    fingerprint) leave it out, so a saved plan can only be applied by computing it again."""
    refs = {"a": DocRef("a", "h", "t", "a", 0, 0, 40, 0, 0)}
    k = KindObservation("doc_embeddings", RECIPE.fingerprint, None, None, DriftRows(unbuilt=("a",)))
    plan = diff(SPEC, "spec-hash", DESIRED, Observed(scope_size=1, kinds={"doc_embeddings": k}, refs=refs), now=0.0)
    assert plan.inputs is not None and plan.inputs.desired is DESIRED and plan.inputs.refs == refs
    assert "inputs" not in plan.to_dict()
    saved = Plan.from_json(plan.to_json())
    assert saved == plan and saved.fingerprint == plan.fingerprint and saved.inputs is None
    spec = spec_from_dict({"store": f"sqlite:///{tmp_path / 'x.db'}", "source": str(tmp_path)}, base_dir=tmp_path)
    from ragstate.project import Project

    project = Project(spec)
    ctx = ApplyContext(spec, project.store, project.source(), Safety.unlocked(spec))
    record = RunRecord(run_id="r1", command="apply", spec_hash="spec-hash", started_at=0.0)
    with pytest.raises(PlanError, match="computing it again"):
        apply_plan(saved, ctx, record)
