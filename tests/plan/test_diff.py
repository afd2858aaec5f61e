"""``diff`` is pure: literal observations in, plans out."""

from __future__ import annotations

from ragstate.artifacts.base import Recipe
from ragstate.artifacts.desired import Desired, DesiredKind
from ragstate.artifacts.doc_embeddings import DocEmbeddings
from ragstate.observe.observe import KindObservation, Observed
from ragstate.plan.diff import diff
from ragstate.plan.model import Plan
from ragstate.spec import spec_from_dict
from ragstate.stores.base import SchemaProblem
from ragstate.stores.documents import DocRef
from ragstate.stores.ledger import DriftRows, Generation

SPEC = spec_from_dict({"store": "sqlite:///x.db", "source": "d"})
RECIPE = Recipe.of(
    "doc_embeddings",
    {"text": "{title}"},
    model="default",
    dimension=4,
    normalized=True,
    max_tokens=256,
    default_rate=10.0,
)
DESIRED = Desired(kinds=(DesiredKind(DocEmbeddings(), RECIPE),), pipelines={"basic": ("doc_embeddings",)})


def gen(n: int, fp: str = RECIPE.fingerprint, state: str = "active") -> Generation:
    return Generation("doc_embeddings", n, fp, {}, f"doc_embeddings_g{n}", state, 0.0, None, None)


def ref(doc_id: str, chars: int = 400) -> DocRef:
    return DocRef(doc_id, "h", "t", doc_id, 0, 0, chars, 0, 0)


def observed(rows: DriftRows, *, active=None, target=None, scope=10, **kind_fields) -> Observed:
    refs = {d: ref(d) for d in rows.unbuilt + rows.rows_absent + rows.changed + rows.foreign_recipe}
    refs.update({d: ref(d) for d, _ in kind_fields.get("corrupt", ())})
    refs.update({d: ref(d) for d in kind_fields.get("mock", ())})
    k = KindObservation("doc_embeddings", RECIPE.fingerprint, active, target, rows, **kind_fields)
    return Observed(scope_size=scope, kinds={"doc_embeddings": k}, refs=refs)


def plan_of(obs: Observed) -> Plan:
    return diff(SPEC, "spec-hash", DESIRED, obs, now=0.0)


def test_in_sync() -> None:
    plan = plan_of(observed(DriftRows(built=10), active=gen(1), target=gen(1)))
    assert plan.in_sync and plan.drift == {} and plan.estimate.items == 0


def test_first_build_is_missing_into_a_new_generation() -> None:
    ids = tuple(f"d{i}" for i in range(10))
    plan = plan_of(observed(DriftRows(unbuilt=ids)))
    k = plan.kind("doc_embeddings")
    assert plan.drift == {"doc_embeddings": {"missing": 10}}
    assert k.target_generation is None and k.switch
    assert plan.estimate.items == 10 and plan.estimate.tokens == 1000 and plan.estimate.seconds == 1.0


def test_each_observation_maps_to_its_class() -> None:
    rows = DriftRows(
        unbuilt=("a",),
        rows_absent=("b",),
        changed=("c",),
        foreign_recipe=("d",),
        out_of_scope=("e",),
        strays=("f",),
        built=9,
    )
    plan = plan_of(observed(rows, active=gen(1), target=gen(1), corrupt=(("g", "zero norm"),), mock=("h",)))
    k = plan.kind("doc_embeddings")
    assert k.build == {"missing": ("a", "b"), "stale": ("c",), "recipe": ("d",), "corrupt": ("g",), "mock": ("h",)}
    assert k.delete == ("e",) and k.purge == ("f",)
    assert plan.drift["doc_embeddings"] == {
        "missing": 2,
        "stale": 1,
        "recipe": 1,
        "corrupt": 1,
        "mock": 1,
        "orphaned": 2,
    }
    assert not k.switch and k.target_generation == 1


def test_a_document_counts_once() -> None:
    plan = plan_of(
        observed(DriftRows(changed=("a",), built=3), active=gen(1), target=gen(1), corrupt=(("a", "non-finite"),))
    )
    assert plan.drift == {"doc_embeddings": {"stale": 1}}


def test_recipe_change_counts_the_whole_scope_and_switches() -> None:
    old = gen(1, fp="old")
    plan = plan_of(observed(DriftRows(unbuilt=tuple("abc")), active=old, target=None, scope=3))
    k = plan.kind("doc_embeddings")
    assert plan.drift == {"doc_embeddings": {"recipe": 3}} and k.build == {"recipe": ("a", "b", "c")}
    assert k.active_generation == 1 and k.target_generation is None and k.switch


def test_recipe_change_resumes_a_generation_being_built() -> None:
    building = gen(2, state="building")
    plan = plan_of(observed(DriftRows(unbuilt=("c",), built=2), active=gen(1, fp="old"), target=building, scope=3))
    k = plan.kind("doc_embeddings")
    assert plan.drift == {"doc_embeddings": {"recipe": 3}} and k.build == {"recipe": ("c",)}
    assert k.target_generation == 2 and k.switch and plan.estimate.items == 1


def test_incompatible_table_means_a_new_generation() -> None:
    problem = SchemaProblem("doc_embeddings_g1", "wrong_type", "column embedding is vector(3), expected vector(4)")
    plan = plan_of(
        observed(
            DriftRows(rows_absent=("a", "b"), built=2),
            active=gen(1),
            target=gen(1),
            scope=2,
            table_problems=(problem,),
            table_incompatible=True,
        )
    )
    k = plan.kind("doc_embeddings")
    assert k.target_generation is None and k.switch and k.repair == ()
    assert k.drift["schema"] == 1


def test_repairable_table_problem_is_repaired_in_place() -> None:
    problem = SchemaProblem("doc_embeddings_g1", "missing_index", "index x is missing")
    plan = plan_of(observed(DriftRows(built=5), active=gen(1), target=gen(1), table_problems=(problem,)))
    k = plan.kind("doc_embeddings")
    assert k.repair == ("index x is missing",) and not plan.in_sync and plan.drift == {"doc_embeddings": {"schema": 1}}


def test_deleting_most_documents_is_destructive() -> None:
    rows = DriftRows(out_of_scope=tuple("abcdef"), built=10)
    plan = plan_of(observed(rows, active=gen(1), target=gen(1), scope=4))
    assert plan.destructive and "deletes 6 of 10" in plan.destructive_reasons[0]
    small = plan_of(observed(DriftRows(out_of_scope=("a",), built=10), active=gen(1), target=gen(1)))
    assert not small.destructive


def test_universal_schema_problems_block_artifact_drift() -> None:
    obs = Observed(scope_size=0, kinds={}, schema=(SchemaProblem("runs", "missing_table", "table runs is missing"),))
    plan = plan_of(obs)
    assert plan.kinds == () and plan.schema == ("table runs is missing",) and not plan.in_sync
    assert plan.drift == {"store": {"schema": 1}} and plan.notes


def test_json_round_trip_and_tamper_check() -> None:
    rows = DriftRows(unbuilt=("a",), changed=("c",), out_of_scope=("e",), built=9)
    plan = plan_of(observed(rows, active=gen(1), target=gen(1)))
    again = Plan.from_json(plan.to_json())
    assert again == plan
    import json

    data = json.loads(plan.to_json())
    data["kinds"][0]["delete"] = ["everything"]
    import pytest

    from ragstate.errors import PlanError

    with pytest.raises(PlanError, match="edited"):
        Plan.from_dict(data)
    with pytest.raises(PlanError, match="not a ragstate plan"):
        Plan.from_dict({"format": 99})


# --- generations: switch groups, verification, holds, garbage collection ---------------


def test_recipe_change_shows_what_changed_and_how_the_switch_is_verified() -> None:
    old = Generation(
        "doc_embeddings",
        1,
        "old",
        {"text": "{title}\n\n{summary}"},
        "doc_embeddings_g1",
        "active",
        0.0,
        1.0,
        None,
        verification={"check": {"golden": {"recall": 0.9}}},
    )
    plan = plan_of(observed(DriftRows(unbuilt=tuple("abc")), active=old, target=None, scope=3))
    k = plan.kind("doc_embeddings")
    assert k.changes == ('text: "{title}\\n\\n{summary}" → "{title}"',)
    assert k.verification["checks"] == ["complete", "quality", "golden"]
    assert k.verification["golden"] == {
        "k": 10,
        "queries": "up to 50 titles",
        "min_share": 0.95,
        "active_generation": 1,
        "active_recall": 0.9,
    }
    assert plan.switch_groups == (("doc_embeddings",),)
    assert Plan.from_json(plan.to_json()) == plan


def test_a_rejected_generation_is_verified_again_and_the_plan_says_why() -> None:
    last = {"run_id": "r1", "passed": False, "reasons": ["golden recall too low"]}
    rejected = Generation(
        "doc_embeddings", 2, RECIPE.fingerprint, {}, "t", "rejected", 0.0, None, None, verification=last
    )
    plan = plan_of(observed(DriftRows(built=3), active=gen(1, fp="old"), target=rejected, scope=3))
    k = plan.kind("doc_embeddings")
    assert k.build == {} and k.switch and k.target_generation == 2
    assert k.verification["last"] == last


def test_held_kinds_get_no_actions() -> None:
    held = Generation("doc_embeddings", 1, "old", {"text": "{title}\n\n{summary}"}, "t", "active", 0.0, 1.0, None)
    plan = plan_of(observed(DriftRows(built=3), active=held, target=held, scope=3, held="rolled back to generation 1"))
    k = plan.kind("doc_embeddings")
    assert plan.in_sync and k.held and not k.has_work and k.target_generation == 1
    assert "held at generation 1" in plan.notes[0] and "rollback doc_embeddings --to" in plan.notes[0]


def test_generations_beyond_keep_are_collected_after_the_switch() -> None:
    gens = (
        Generation("doc_embeddings", 1, "a", {}, "t1", "retired", 0.0, 1.0, None, retired_at=5.0),
        Generation("doc_embeddings", 2, "b", {}, "t2", "active", 1.0, 5.0, None),
    )
    obs = observed(
        DriftRows(unbuilt=("a",)), active=gens[1], target=None, scope=1, generations=gens, sizes={1: (1, 1), 2: (1, 1)}
    )
    keep1 = diff(
        spec_from_dict({"store": "sqlite:///x.db", "source": "d", "generations": {"keep": 1}}), "h", DESIRED, obs
    )
    # after the switch, g2 is the previous generation (kept) and g1 goes
    assert [(g.kind, g.generation, g.documents) for g in keep1.gc] == [("doc_embeddings", 1, 1)]
    assert "generations.keep (1)" in keep1.gc[0].reason and not keep1.destructive
    assert plan_of(obs).gc == ()  # keep 2 (the default)
    assert Plan.from_json(keep1.to_json()) == keep1


def test_switch_groups_join_a_kind_with_the_kinds_built_from_it() -> None:
    from ragstate.artifacts.chunk_embeddings import ChunkEmbeddings
    from ragstate.artifacts.chunks import Chunks
    from ragstate.artifacts.entities import Entities
    from ragstate.artifacts.entity_embeddings import EntityEmbeddings
    from ragstate.artifacts.token_embeddings import TokenEmbeddings
    from ragstate.plan.diff import switch_groups

    kinds = (DocEmbeddings(), Chunks(), ChunkEmbeddings(), TokenEmbeddings(), Entities(), EntityEmbeddings())
    desired = Desired(kinds=tuple(DesiredKind(k, RECIPE) for k in kinds), pipelines={})
    every = {k.name for k in kinds}
    assert switch_groups(desired, every) == (
        ("doc_embeddings",),
        ("chunks", "chunk_embeddings", "token_embeddings", "entities", "entity_embeddings"),
    )
    assert switch_groups(desired, {"chunk_embeddings", "entity_embeddings"}) == (
        ("chunk_embeddings",),
        ("entity_embeddings",),
    )
    assert switch_groups(desired, set()) == ()


def test_the_estimate_divides_tokens_by_a_measured_rate_and_says_so() -> None:
    from ragstate.stores.records import Rate

    ids = tuple(f"d{i}" for i in range(10))
    rate = Rate(500.0, "tokens", "measured by run r1")
    plan = plan_of(observed(DriftRows(unbuilt=ids), rate=rate))
    k = plan.kind("doc_embeddings")
    assert k.estimate.tokens == 1000 and k.estimate.seconds == 2.0
    assert k.basis == "~500 tokens/s, measured by run r1"
    assert Plan.from_json(plan.to_json()).kind("doc_embeddings").basis == k.basis
    # nothing measured: the recipe's default, said to be one
    assert "a default (nothing measured yet)" in plan_of(observed(DriftRows(unbuilt=ids))).kind("doc_embeddings").basis


def test_a_change_past_the_model_window_is_restamped_not_drift() -> None:
    plan = plan_of(
        observed(DriftRows(built=10, changed=("d1",)), active=gen(1), target=gen(1), past_window=("d2",))
    )
    k = plan.kind("doc_embeddings")
    assert plan.drift == {"doc_embeddings": {"stale": 1}}
    assert k.build == {"stale": ("d1",), "past_window": ("d2",)} and k.build_ids == ("d1", "d2")
    assert k.estimate.items == 1  # the restamp costs no model time
    assert not plan_of(
        observed(DriftRows(built=10), active=gen(1), target=gen(1), past_window=("d2",))
    ).in_sync  # the ledger still has to learn the new content hash
