"""``diff``: desired state + observed state → ``Plan``. Pure: no I/O, no clock but ``now``.

How observations become drift classes and actions, per kind:

=================================  ==============  ======================================
observation                        drift class     action
=================================  ==============  ======================================
in scope, no ledger row            missing         build
ledger row, rows gone              missing         build (``incomplete`` for multi-row)
source hash differs                stale           build
ledger/rows of another recipe      recipe          build
active generation's recipe differs recipe (all)    build a new generation, then switch
vector fails quality checks, or    corrupt         build
offsets/lengths outside the doc
identical vectors, or re-embedding mock            build
disagrees with the stored vector
items missing, hierarchy broken,   incomplete      build (reusing unchanged items)
or rows that reference upstream
rows that are gone (a chunk
without its embedding, an entity
citing a chunk that is gone)
an upstream kind rebuilds the      stale           build (reusing unchanged items)
document
ledger row out of scope            orphaned        delete rows and ledger row
rows without ledger, out of scope  orphaned        delete rows
table/column/index missing         schema          repair (create what is missing)
column of another type/dimension   schema          build a new generation, then switch
=================================  ==============  ======================================

A document is counted once, under the first class that applies, in the order above.

Kinds are planned in build order. A document that an upstream kind rebuilds is rebuilt
downstream too (``chunks`` → ``chunk_embeddings``), so one apply converges whatever
the upstream rows turn out to be; the dependent kinds reuse the stored vectors of items
whose text did not change, so this costs no model time for unchanged items.
Documents held back by quarantine (``observe.quarantine``) are in no class: they are
listed in ``KindPlan.quarantined`` and ``Plan.quarantine``.
"""

from __future__ import annotations

import time
from dataclasses import replace

from ragstate.observe.observe import KindObservation, Observed
from ragstate.plan.desired import Desired, DesiredKind
from ragstate.plan.model import BUILD_CLASSES, DRIFT_CLASSES, Estimate, KindPlan, Plan, action_fingerprint
from ragstate.spec.model import Spec


def diff(spec: Spec, spec_hash: str, desired: Desired, observed: Observed, *, now: float | None = None) -> Plan:
    """The plan that takes the store from ``observed`` to ``desired``."""
    blocked = observed.schema or observed.source_schema
    planned: dict[str, KindPlan] = {}
    for d in desired.kinds if not blocked else ():  # build order: upstream first
        upstream = {doc for u in d.kind.depends_on if u in planned for doc in planned[u].build_ids}
        planned[d.name] = _kind_plan(d, observed.kinds[d.name], observed, upstream)
    kinds = tuple(planned.values())
    destructive_reasons = []
    for k in kinds:
        built = observed.kinds[k.kind].rows.built
        removed = len(k.delete)
        if removed and built and removed / built > spec.reconcile.max_delete_share:
            destructive_reasons.append(
                f"{k.kind}: deletes {removed} of {built} documents ({removed / built:.0%}), more than "
                f"reconcile.max_delete_share ({spec.reconcile.max_delete_share:.0%})"
            )
    notes = []
    if observed.schema:
        notes.append("ragstate's own tables need repair first; artifact drift is observed after the repair")
    if any(not p.repairable for p in observed.source_schema):
        notes.append(
            "the source table no longer fits its mapping: change the mapping (source in the spec); "
            "`ragstate source check` shows the table's columns"
        )
    elif observed.source_schema:
        notes.append("apply checks the source table and creates its view first; artifact drift is observed after")
    estimate = sum((k.estimate for k in kinds), Estimate())
    plan = Plan(
        spec_hash=spec_hash,
        created_at=time.time() if now is None else now,
        depth=observed.depth,
        scope_size=observed.scope_size,
        kinds=kinds,
        schema=tuple(str(p) for p in observed.schema),
        source_schema=tuple(str(p) for p in observed.source_schema),
        estimate=estimate,
        destructive=bool(destructive_reasons),
        destructive_reasons=tuple(destructive_reasons),
        notes=tuple(notes),
        quarantine=observed.quarantine.to_dict(),
    )
    return replace(plan, fingerprint=action_fingerprint(plan))


def _kind_plan(desired: DesiredKind, k: KindObservation, observed: Observed, upstream: set[str]) -> KindPlan:
    kind, recipe = desired.kind, desired.recipe
    rows = k.rows
    target = k.target
    new_generation = target is None or k.table_incompatible
    drift = dict.fromkeys(DRIFT_CLASSES, 0)
    build: dict[str, list[str]] = {c: [] for c in BUILD_CLASSES}
    seen: set[str] = set(k.quarantined)  # held back: not even when upstream rebuilds them

    def add(cls: str, ids: tuple[str, ...] | list[str]) -> None:
        for d in ids:
            if d not in seen:
                seen.add(d)
                build[cls].append(d)

    if new_generation:
        # Nothing usable holds the desired recipe: every document in scope is built
        # into a fresh generation. Observation against "generation 0" listed them all.
        add("recipe" if k.active is not None else "missing", rows.unbuilt + rows.rows_absent + rows.changed)
    else:
        add("missing", rows.unbuilt)
        add("incomplete" if kind.multi_row else "missing", rows.rows_absent)
        add("stale", rows.changed)
        add("recipe", rows.foreign_recipe)
        add("corrupt", tuple(d for d, _ in k.corrupt))
        add("mock", k.mock)
        add("incomplete", k.incomplete)
        add("stale", sorted(upstream))
    recipe_change = k.active is not None and k.active.recipe_fp != k.recipe_fp
    if recipe_change:
        # The work goes into another generation than the one queries use, so every
        # reason is the recipe change; drift is measured against what queries use now:
        # every document in scope.
        build = {"recipe": [d for cls in BUILD_CLASSES for d in build[cls]]}
    for cls in BUILD_CLASSES:
        drift[cls] = len(build.get(cls, ()))
    if recipe_change:
        drift["recipe"] = observed.scope_size
    delete = () if new_generation else rows.out_of_scope
    purge = () if new_generation else rows.strays
    drift["orphaned"] = len(delete) + len(purge)
    repair = () if new_generation else tuple(str(p) for p in k.table_problems)
    drift["schema"] = len(k.table_problems)
    switch = new_generation or (target is not None and target.state != "active")

    ids = [d for cls in BUILD_CLASSES for d in build.get(cls, ())]
    tokens = sum(kind.estimate_tokens(observed.refs[d], recipe, recipe.max_tokens) for d in ids if d in observed.refs)
    rate = k.rate or recipe.default_rate
    estimate = Estimate(items=len(ids), tokens=tokens, seconds=round(len(ids) / rate, 2) if rate else 0.0)
    return KindPlan(
        kind=kind.name,
        recipe_fp=recipe.fingerprint,
        active_generation=k.active.generation if k.active else None,
        target_generation=None if new_generation else target.generation if target else None,
        switch=switch,
        drift=drift,
        build={c: tuple(v) for c, v in build.items() if v},
        delete=delete,
        purge=purge,
        repair=repair,
        estimate=estimate,
        quarantined=k.quarantined,
    )
