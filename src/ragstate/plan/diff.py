"""``diff``: desired state + observed state → ``Plan``. Pure: no I/O, no clock but ``now``.

How observations become drift classes and actions, per kind:

=================================  ==============  ======================================
observation                        drift class     action
=================================  ==============  ======================================
in scope, no ledger row            missing         build
ledger row, rows gone              missing         build (``incomplete`` for multi-row)
source hash differs                stale           build
source hash differs, what the      (none)          build ``past_window``: restamped,
model reads of the text does not                   served from the embedding cache
(an edit past the model's window)
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
column of another type/dimension   schema          build a new generation, then switch (the
                                                   active one's: of the same recipe, verified
                                                   on its own table)
=================================  ==============  ======================================

A document is counted once, under the first class that applies, in the order above.

Generations. Every kind that switches to another generation is verified and switched
in one group with the kinds built from it that switch too (``switch_groups``: a
chunking change switches ``chunks``, ``chunk_embeddings`` and ``token_embeddings``
together). A kind held by a rollback (the spec still asks for the recipe rolled back
from) is planned under the recipe it is held at, into its active generation
(``artifacts.desired.pin_holds``); one whose recipe cannot be built again is left alone, and
so are the kinds built from it. Inactive generations beyond
``generations.keep`` are dropped (``gc``), never the active one, the one active before
it, or the one being built.

Kinds are planned in build order. A document that an upstream kind rebuilds is rebuilt
downstream too (``chunks`` → ``chunk_embeddings``), so one apply converges whatever
the upstream rows turn out to be; the dependent kinds reuse the stored vectors of items
whose text did not change, so this costs no model time for unchanged items.
Documents held back by quarantine (``observe.quarantine``) are in no class: they are
listed in ``KindPlan.quarantined`` and ``Plan.quarantine``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ragstate.artifacts.desired import Desired, DesiredKind
from ragstate.observe.observe import KindObservation, Observed
from ragstate.plan.model import (
    BUILD_CLASSES,
    DRIFT_CLASSES,
    PAST_WINDOW,
    ApplyInputs,
    Estimate,
    GcDrop,
    KindPlan,
    Plan,
    action_fingerprint,
)
from ragstate.sources.base import skipped_note
from ragstate.sources.loaders import FORMAT_OF_SUFFIX
from ragstate.spec.model import Spec
from ragstate.stores.ledger import ACTIVE, RETIRED, Generation, collectable, holding


def source_notes(spec: Spec, observed: Observed, *, blocked: bool = False) -> list[str]:
    """Nothing is left out silently: files no loader reads (or ``source.formats`` leaves
    out), by extension with counts, and a source with no document at all."""
    notes = []
    if observed.snapshot is not None and observed.snapshot.skipped:
        notes.append(skipped_note(observed.snapshot.skipped, FORMAT_OF_SUFFIX))
    if not blocked and observed.scope_size == 0:
        where = getattr(spec.source, "path", None)
        notes.append(
            f"the source{f' {where}' if where is not None else ''} holds no document in scope: "
            "nothing to build (check source.path, source.formats and scope)"
        )
    return notes


def diff(spec: Spec, spec_hash: str, desired: Desired, observed: Observed, *, now: float | None = None) -> Plan:
    """The plan that takes the store from ``observed`` to ``desired``."""
    blocked = observed.schema or observed.source_schema
    planned: dict[str, KindPlan] = {}
    for d in desired.kinds if not blocked else ():  # build order: upstream first
        upstream = {doc for u in d.kind.depends_on if u in planned for doc in planned[u].build_ids}
        planned[d.name] = _kind_plan(spec, d, observed.kinds[d.name], observed, upstream)
    kinds = tuple(planned.values())
    groups = switch_groups(desired, {k.kind for k in kinds if k.switch})
    gc = tuple(drop for k in kinds for drop in _collect(spec, observed.kinds[k.kind], k, desired.kind(k.kind)))
    destructive_reasons = []
    for k in kinds:
        built = observed.kinds[k.kind].rows.built
        removed = len(k.delete)
        if removed and built and removed / built > spec.reconcile.max_delete_share:
            destructive_reasons.append(
                f"{k.kind}: deletes {removed} of {built} documents ({removed / built:.0%}), more than "
                f"reconcile.max_delete_share ({spec.reconcile.max_delete_share:.0%})"
            )
    notes = [
        f"{k.kind} is held at generation {k.active_generation}: {k.held}" + _hold_advice(k, desired.kind(k.kind))
        for k in kinds
        if k.held
    ]
    if observed.schema:
        notes.append("ragstate's own tables need repair first; artifact drift is observed after the repair")
    if any(not p.repairable for p in observed.source_schema):
        notes.append(
            "the source table no longer fits its mapping: change the mapping (source in the spec); "
            "`ragstate source check` shows the table's columns"
        )
    elif observed.source_schema:
        notes.append("apply checks the source table and creates its view first; artifact drift is observed after")
    notes += source_notes(spec, observed, blocked=bool(blocked))
    estimate = sum((k.estimate for k in kinds), Estimate())
    cache = observed.cache
    cache_drift = {}
    if cache is not None:
        cache_drift = {c: n for c, n in (("corrupt", len(cache.corrupt)), ("mock", len(cache.mock))) if n}
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
        switch_groups=groups,
        gc=gc,
        cache_purge=tuple(sorted({k for k, _ in cache.corrupt} | set(cache.mock))) if cache is not None else (),
        cache_drift=cache_drift,
        inputs=_apply_inputs(desired, observed),
    )
    return replace(plan, fingerprint=action_fingerprint(plan))


def _apply_inputs(desired: Desired, observed: Observed) -> ApplyInputs:
    """What apply needs of ``observed`` besides the actions, handed over with the plan."""
    return ApplyInputs(
        desired=desired,
        refs=observed.refs,
        snapshot=observed.snapshot if observed.registry_changed else None,
        known=observed.known,
        quarantine=observed.quarantine,
        # the hold only stops apply from switching back to the recipe rolled back from:
        # once the spec asks for another recipe, it is cleared
        release_holds=tuple(
            k.kind
            for k in observed.kinds.values()
            if k.active is not None and k.active.hold and not k.held and k.active.hold.get("recipe_fp") != k.recipe_fp
        ),
    )


def switch_groups(desired: Desired, switching: set[str]) -> tuple[tuple[str, ...], ...]:
    """The kinds in ``switching`` grouped with those they are built from or feed, in
    build order: each group is verified and switched in one transaction."""
    group_of: dict[str, int] = {}
    groups: list[list[str]] = []
    for d in desired.kinds:  # upstream first, so a kind's upstream kinds are placed
        if d.name not in switching:
            continue
        joined = sorted({group_of[u] for u in d.kind.depends_on if u in group_of})
        if not joined:
            group_of[d.name] = len(groups)
            groups.append([d.name])
            continue
        into = joined[0]
        for other in joined[1:]:  # a kind built from two groups merges them
            for name in groups[other]:
                group_of[name] = into
            groups[into] += groups[other]
            groups[other] = []
        group_of[d.name] = into
        groups[into].append(d.name)
    order = [d.name for d in desired.kinds]
    return tuple(tuple(sorted(g, key=order.index)) for g in groups if g)


def _kind_plan(
    spec: Spec, desired: DesiredKind, k: KindObservation, observed: Observed, upstream: set[str]
) -> KindPlan:
    kind, recipe = desired.kind, desired.recipe
    if k.frozen:
        return _frozen_plan(desired, k)
    rows = k.rows
    target = k.target
    new_generation = target is None or k.table_incompatible
    drift = dict.fromkeys(DRIFT_CLASSES, 0)
    build = _to_build(k, kind.multi_row, new_generation, upstream)
    recipe_change = k.active is not None and k.active.recipe_fp != k.recipe_fp
    if recipe_change or k.replaced:
        # The work goes into another generation than the one queries use, so every
        # reason is the recipe change (or the active table that cannot be repaired in
        # place); drift is measured against what queries use now: every document in scope.
        reason = "recipe" if recipe_change else "schema"
        build = {reason: [d for cls in BUILD_CLASSES for d in build[cls]]}
    for cls in BUILD_CLASSES:
        if cls in drift:  # past_window is work, not drift
            drift[cls] = len(build.get(cls, ()))
    if recipe_change:
        drift["recipe"] = observed.scope_size
    delete = () if new_generation else rows.out_of_scope
    purge = () if new_generation else rows.strays
    drift["orphaned"] = len(delete) + len(purge)
    repair = () if new_generation else tuple(str(p) for p in k.table_problems)
    schema = tuple(str(p) for p in k.replaced + k.table_problems)
    drift["schema"] = len(schema)
    switch = new_generation or (target is not None and target.state != "active")
    # Documents changed past the model's window cost no model time: not in the estimate.
    ids = [d for cls in BUILD_CLASSES if cls != PAST_WINDOW for d in build.get(cls, ())]
    estimate, basis = _estimate(spec, desired, k, observed, ids)
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
        schema=schema,
        estimate=estimate,
        basis=basis,
        quarantined=k.quarantined,
        changes=_changes(desired, k, recipe_change),
        verification=_verification(spec, desired, k, None if new_generation else target) if switch else {},
        held=k.held,
    )


def _frozen_plan(desired: DesiredKind, k: KindObservation) -> KindPlan:
    """The plan of a kind a rollback holds and leaves alone: no actions."""
    assert k.active is not None
    return KindPlan(
        kind=desired.kind.name,
        recipe_fp=desired.recipe.fingerprint,
        active_generation=k.active.generation,
        target_generation=k.active.generation,
        switch=False,
        drift=dict.fromkeys(DRIFT_CLASSES, 0),
        build={},
        changes=recipe_changes(k.active.recipe, desired.recipe.params),
        held=k.held,
        frozen=True,
    )


def _to_build(k: KindObservation, multi_row: bool, new_generation: bool, upstream: set[str]) -> dict[str, list[str]]:
    """The documents of ``k`` to build, each under the first reason that applies (in the
    order of the module's table); documents held back by quarantine under none."""
    rows = k.rows
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
        cls = "missing" if k.active is None else "schema" if k.replaced else "recipe"
        add(cls, rows.unbuilt + rows.rows_absent + rows.changed)
    else:
        add("missing", rows.unbuilt)
        add("incomplete" if multi_row else "missing", rows.rows_absent)
        add("stale", rows.changed)
        add("recipe", rows.foreign_recipe)
        add("corrupt", tuple(d for d, _ in k.corrupt))
        add("mock", k.mock)
        add("incomplete", k.incomplete)
        add("stale", sorted(upstream))
        add(PAST_WINDOW, k.past_window)
    return build


def _estimate(
    spec: Spec, desired: DesiredKind, k: KindObservation, observed: Observed, ids: list[str]
) -> tuple[Estimate, str]:
    """What building ``ids`` costs (tokens, seconds, money), and where its rate comes from
    ("" when there is nothing to build)."""
    kind, recipe = desired.kind, desired.recipe
    tokens = sum(kind.estimate_tokens(observed.refs[d], recipe, recipe.max_tokens) for d in ids if d in observed.refs)
    rate = k.rate
    if rate is not None and rate.unit == "tokens" and rate.value > 0:
        seconds, basis = tokens / rate.value, f"~{rate.value:,.0f} tokens/s, {rate.basis}"
    elif rate is not None and rate.value > 0:
        seconds, basis = len(ids) / rate.value, f"~{rate.value:,.1f} documents/s, {rate.basis}"
    else:
        default = recipe.default_rate
        seconds = len(ids) / default if default else 0.0
        basis = f"~{default:,.0f} documents/s, a default (nothing measured yet)"
    price = spec.models[recipe.model].price_per_million_tokens if recipe.model in spec.models else None
    # at least 0.01 s for work to do: a fast measured rate must not round a real build to nothing
    seconds = max(round(seconds, 2), 0.01) if ids and seconds > 0 else round(seconds, 2)
    return Estimate(items=len(ids), tokens=tokens, seconds=seconds, cost=cost_of(tokens, price)), basis if ids else ""


def _changes(desired: DesiredKind, k: KindObservation, recipe_change: bool) -> tuple[str, ...]:
    """What the spec's recipe changes against the active generation's (while a rollback
    holds the kind: what it would change, were the hold released)."""
    if k.active is None:
        return ()
    if desired.asked is not None:
        return recipe_changes(k.active.recipe, desired.asked.params)
    return recipe_changes(k.active.recipe, desired.recipe.params) if recipe_change else ()


def _verification(spec: Spec, desired: DesiredKind, k: KindObservation, target: Generation | None) -> dict[str, Any]:
    """What the switch of ``k`` will be verified with, and what earlier checks found."""
    out: dict[str, Any] = {"checks": ["complete", "quality"]}
    golden = spec.generations.golden
    if desired.kind.golden_fetch and k.active is not None and (golden.queries or golden.file):
        out["checks"].append("golden")
        out["golden"] = {
            "k": golden.k,
            "queries": str(golden.file) if golden.file else f"up to {golden.queries} titles",
            "min_share": golden.min_share,
            "active_generation": k.active.generation,
            "active_recall": last_recall(k.active),
        }
    if target is not None and target.verification:
        out["last"] = target.verification
    return out


def last_recall(generation: Generation) -> float | None:
    """The golden recall measured for ``generation`` when it was last verified, if any."""
    check = (generation.verification or {}).get("check") or {}
    golden = check.get("golden") or {}
    return golden.get("recall")


def recipe_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> tuple[str, ...]:
    """``path: old → new`` for every value that differs between two recipes (nested keys joined by dots)."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = prefix + str(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += recipe_changes(a, b, path + ".")
        elif a != b:
            out.append(f"{path}: {_short(a)} → {_short(b)}")
    return tuple(out)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if value is not None else "(none)"
    return text if len(text) <= 60 else text[:57] + "…"


def _collect(spec: Spec, k: KindObservation, kp: KindPlan, desired: DesiredKind) -> list[GcDrop]:
    """The generations of ``k`` that garbage collection drops once ``kp`` is applied
    (assuming its switch, if any, succeeds: apply drops no more than this)."""
    gens = list(k.generations)
    if kp.switch:
        gens = [
            replace(g, state=RETIRED, retired_at=math.inf)
            if g.state == ACTIVE
            else replace(g, state=ACTIVE)
            if g.generation == kp.target_generation
            else g
            for g in gens
        ]
    keep = spec.generations.keep
    return [
        GcDrop(
            k.kind,
            g.generation,
            g.state,
            *k.sizes.get(g.generation, (0, 0)),
            reason=f"beyond generations.keep ({keep})",
        )
        for g in collectable(gens, keep=keep, protect=(kp.target_generation, holding(k.generations, desired.asked_fp)))
    ]


def _hold_advice(k: KindPlan, desired: DesiredKind) -> str:
    asked = desired.asked.fingerprint if desired.asked is not None else k.recipe_fp
    return (
        f"; the spec asks for recipe {asked}: edit the spec back to the held recipe, or switch forward "
        f"with `ragstate rollback {k.kind} --to GENERATION`"
    )


def cost_of(tokens: int, price_per_million: float | None) -> float | None:
    """What ``tokens`` input tokens cost at ``price_per_million`` (None: no price)."""
    return None if price_per_million is None else tokens * price_per_million / 1_000_000
