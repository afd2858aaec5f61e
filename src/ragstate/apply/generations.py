"""Generations after the builds: verify, switch groups atomically, collect garbage; roll back.

A recipe change builds new generations beside the active ones (``apply.apply``). Before
queries see them, each group of kinds that switch together (``Plan.switch_groups``: a
kind and the kinds built from it) is verified, then switched in one transaction:

=====================  ===============================================================
check                  passes when
=====================  ===============================================================
complete               every document in scope is built into the new generation, from
                       its current content, and no row is left over; documents in
                       quarantine are left out, unless the active generation holds
                       more of them than ``generations.max_lost_share`` allows (``lost``)
quality                the vector audit and the kind's consistency checks find nothing
                       (no corrupt vector, no placeholders, nothing incomplete)
golden                 recall@k of the known-item queries (``generations.golden``) on
                       the new generation is at least ``min_share`` of the active one's
                       (kinds with a vector per document or chunk; a first
                       generation is measured alone, as the next one's baseline)
=====================  ===============================================================

A first generation (nothing active to protect) is not rejected whole for a few bad
documents (corrupt, placeholders, incomplete): they are quarantined with the reason and
their rows taken out, in the switch's transaction, and the rest is switched in (apply
exits 4). Only when they are half the documents in scope or more is it rejected.

A group that fails is not switched: the active generations stay as they are, the new
ones are marked ``rejected`` with the reasons, and the run says why. ``rollback`` puts
an earlier generation back with the kinds built from it, in one transaction, without
recomputing anything. ``collect_garbage`` drops inactive generations beyond
``generations.keep``, never the active one, the one before it, or the one being built.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from ragstate.apply.progress import Progress
from ragstate.apply.record import KindCounts, RunRecord
from ragstate.apply.safety import Safety
from ragstate.artifacts.base import Recipe
from ragstate.artifacts.desired import Desired, DesiredKind
from ragstate.compute.embedders import Embedder, make_embedder
from ragstate.errors import RagstateError, RollbackError
from ragstate.faults.retry import Guard
from ragstate.hashing import quarantine_fingerprint
from ragstate.observe.golden import (
    GoldenQuery,
    embed_queries,
    load_queries,
    measure,
    title_queries,
    without_documents,
)
from ragstate.observe.observe import KindObservation, Observed
from ragstate.plan.diff import last_recall
from ragstate.plan.model import GcDrop, Plan
from ragstate.spec.model import ModelSpec, Spec
from ragstate.stores import embedding_cache, ledger, quarantine
from ragstate.stores.base import Session, Store, VectorSearch, now
from ragstate.stores.ledger import ACTIVE, DROPPED, RETIRED, Generation, collectable, holding
from ragstate.stores.schema import TableDef

#: how a problem class reads in a reason, where its name alone would not say it
_LABELS = {"lost": "lost to quarantine (built in the active generation; generations.max_lost_share)"}

#: recall comparisons allow this much rounding
_EPSILON = 1e-9


@dataclass
class KindCheck:
    """What verification found for one kind's new generation."""

    kind: str
    generation: int
    #: documents built into it, of ``in_scope``
    documents: int
    in_scope: int
    #: documents in scope left out because they are in quarantine (not a problem)
    quarantined: int = 0
    #: what stops the switch, by drift class (empty: complete and clean)
    problems: dict[str, int] = field(default_factory=dict)
    #: the golden comparison (None: the kind has no such check, or nothing to compare with)
    golden: dict[str, Any] | None = None
    #: a first generation's bad documents, set aside (quarantined) so that the rest is
    #: switched in: ``{doc_id: reason}``
    set_aside: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems and (self.golden is None or bool(self.golden["passed"]))

    def reasons(self) -> list[str]:
        out = []
        if self.problems:
            found = ", ".join(f"{n} {_LABELS.get(cls, cls)}" for cls, n in self.problems.items())
            out.append(f"{self.kind} generation {self.generation} is not complete and clean: {found}")
        g = self.golden
        if g is not None and not g["passed"]:
            out.append(
                f"{self.kind} generation {self.generation}: golden recall@{g['k']} {g['recall']:.2f} over "
                f"{g['queries']} queries is below {g['min_share']:.0%} of generation {g['active_generation']}'s "
                f"{g['active_recall']:.2f} (needs {g['needed']:.2f})"
            )
        return out


@dataclass
class Verification:
    """The verification of one switch group."""

    run_id: str
    at: float
    group: tuple[str, ...]
    checks: list[KindCheck]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def reasons(self) -> list[str]:
        return [r for c in self.checks for r in c.reasons()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "at": self.at,
            "group": list(self.group),
            "passed": self.passed,
            "reasons": self.reasons(),
            "checks": [asdict(c) | {"passed": c.passed} for c in self.checks],
        }

    def for_kind(self, kind: str) -> dict[str, Any]:
        """What the generations table keeps for one kind of the group."""
        check = next(c for c in self.checks if c.kind == kind)
        data = self.to_dict()
        del data["checks"]
        return data | {"check": asdict(check) | {"passed": check.passed}}


# --- after the builds -------------------------------------------------------------------


def settle(
    plan: Plan,
    targets: Mapping[str, int],
    *,
    spec: Spec,
    desired: Desired,
    store: Store,
    record: RunRecord,
    progress: Progress,
    safety: Safety,
    observe_now: Callable[[bool], Observed],
) -> None:
    """Verify and switch each of ``plan``'s switch groups, then collect garbage.

    ``targets`` holds the generation each kind's work went into; ``observe_now(titles)``
    observes the store again at audit depth (with the titles of the documents in scope
    when golden queries are drawn from them). Every write goes through ``safety``
    (fenced by the writer lock, retried when transient).
    """
    if plan.switch_groups:
        t0 = time.perf_counter()
        golden = spec.generations.golden
        titles = golden.file is None and golden.queries > 0
        after = observe_now(titles)
        queries = _golden_set(spec, after)
        for group in plan.switch_groups:
            generations = {k: targets[k] for k in group}
            t1 = time.perf_counter()
            safety.read(lambda generations=generations: _index(store, desired, generations))
            record.timings["index_s"] = round(record.timings.get("index_s", 0.0) + time.perf_counter() - t1, 4)
            verification = verify_group(
                group, generations, after, spec, desired, store, queries, record.run_id, guard=safety.guard
            )
            record.verification.append(verification.to_dict())

            def keep(s: Session, generations: dict[str, int] = generations, v: Verification = verification) -> None:
                for kind, n in generations.items():
                    ledger.record_verification(store, s, kind, n, v.for_kind(kind))

            safety.commit(store, keep)
            if not verification.passed:
                progress.note("not switched: " + "; ".join(verification.reasons()))
                continue
            upstream = {k: {u: targets[u] for u in desired.kind(k).kind.depends_on if u in targets} for k in group}
            t2 = time.perf_counter()

            def switch(
                s: Session, generations: dict[str, int] = generations, upstream=upstream, v: Verification = verification
            ) -> None:
                # A first generation's bad documents go to quarantine in the switch's transaction.
                _quarantine_set_aside(s, v, desired, after, store)
                ledger.switch(store, s, generations, upstream=upstream)

            safety.commit(store, switch)
            for c in verification.checks:
                if c.set_aside:
                    fp = desired.kind(c.kind).recipe.fingerprint
                    record.kinds.setdefault(c.kind, KindCounts(recipe_fp=fp)).quarantined += len(c.set_aside)
                    progress.note(
                        f"{c.kind} generation {c.generation} (the first): set aside {len(c.set_aside)} documents "
                        "in quarantine, switched in without them: "
                        + "; ".join(f"{d}: {why}" for d, why in list(c.set_aside.items())[:5])
                    )
            record.timings["switch_s"] = round(record.timings.get("switch_s", 0.0) + time.perf_counter() - t2, 4)
            for kind in group:
                counts = record.kinds.setdefault(kind, KindCounts(recipe_fp=desired.kind(kind).recipe.fingerprint))
                counts.switched = True
                counts.generation = generations[kind]
            progress.note(
                "now active: " + ", ".join(f"{k} generation {g}" for k, g in generations.items()) + " (one transaction)"
            )
        # verification: the observation, the checks and their records (not the index, not the switch)
        record.timings["verify_s"] = round(
            time.perf_counter() - t0 - record.timings.get("index_s", 0.0) - record.timings.get("switch_s", 0.0), 4
        )
    if plan.gc:
        t3 = time.perf_counter()
        record.gc = collect_garbage(plan, targets, spec=spec, desired=desired, store=store, safety=safety)
        record.timings["gc_s"] = round(time.perf_counter() - t3, 4)


def verify_group(
    group: Sequence[str],
    generations: Mapping[str, int],
    observed: Observed,
    spec: Spec,
    desired: Desired,
    store: Store,
    queries: Sequence[GoldenQuery],
    run_id: str,
    *,
    guard: Guard | None = None,
) -> Verification:
    """Check the new generations of ``group`` (see the module docstring) against ``observed``,
    an audit-depth observation made after they were built. ``guard`` retries the
    embedding of golden queries when the model fails transiently."""
    checks = []
    for kind in group:
        obs = observed.kinds[kind]
        check = KindCheck(
            kind=kind,
            generation=generations[kind],
            documents=obs.rows.built,
            in_scope=observed.scope_size,
            problems=_problems(obs, generations[kind], observed.scope_size),
            quarantined=len(obs.quarantined),
        )
        lost = _lost(obs, observed.scope_size, spec.generations.max_lost_share, store)
        if lost:
            check.problems["lost"] = lost
        if obs.active is None:
            _set_aside_bad_items(check, obs, observed.scope_size)
        d = desired.kind(kind)
        # A quarantined document is not in the new generation: no query may ask for it.
        asked = without_documents(queries, obs.quarantined)
        if d.kind.golden_fetch and asked and not check.problems:
            check.golden = _golden(d, obs.active, generations[kind], spec, store, asked, guard)
        checks.append(check)
    return Verification(run_id=run_id, at=now(), group=tuple(group), checks=checks)


def _problems(obs: KindObservation, generation: int, scope: int) -> dict[str, int]:
    if obs.target is None or obs.target.generation != generation:
        return {"missing": scope}
    r = obs.rows
    found = {
        "missing": len(r.unbuilt) + len(r.rows_absent),
        "stale": len(r.changed),
        "recipe": len(r.foreign_recipe),
        "orphaned": len(r.out_of_scope) + len(r.strays),
        "corrupt": len(obs.corrupt),
        "mock": len(obs.mock),
        "incomplete": len(obs.incomplete),
        "schema": len(obs.table_problems),
    }
    return {cls: n for cls, n in found.items() if n}


#: the problem classes of single documents that a first generation sets aside
_ITEM_PROBLEMS = ("corrupt", "mock", "incomplete")


def _set_aside_bad_items(check: KindCheck, obs: KindObservation, scope: int) -> None:
    """A first generation protects nothing: its bad documents are set aside with their
    reason and the rest is switched in, unless they are half the documents in scope or
    more (a model failing on most documents is broken, not a few bad documents)."""
    if any(cls not in _ITEM_PROBLEMS for cls in check.problems):
        return
    bad = {d: f"corrupt: {why}" for d, why in obs.corrupt}
    bad |= {d: "mock: identical vectors of texts the model reads differently" for d in obs.mock if d not in bad}
    bad |= {d: "incomplete: items missing or inconsistent with upstream" for d in obs.incomplete if d not in bad}
    if not bad or 2 * len(bad) >= scope:
        return
    for cls in _ITEM_PROBLEMS:
        check.problems.pop(cls, None)
    check.set_aside = dict(sorted(bad.items()))


def _quarantine_set_aside(
    s: Session, verification: Verification, desired: Desired, observed: Observed, store: Store
) -> int:
    """Quarantine the documents a first generation set aside, and take their rows (and
    those of the kinds of the group built from them) out of the new generations."""
    entries = []
    group = set(verification.group)
    for check in verification.checks:
        if not check.set_aside:
            continue
        d = desired.kind(check.kind)
        for doc_id, reason in check.set_aside.items():
            ref = observed.refs.get(doc_id)
            entries.append(
                quarantine.Entry(
                    kind=check.kind,
                    item=doc_id,
                    doc_id=doc_id,
                    path=ref.path if ref is not None else None,
                    reason=reason.split(":", 1)[0],
                    error_type="VerificationFailed",
                    message=f"{check.kind} generation {check.generation} (the first): {reason}",
                    fingerprint=quarantine_fingerprint(ref.content_hash if ref else "", d.recipe.fingerprint),
                )
            )
        docs = sorted(check.set_aside)
        for kind in [check.kind, *(k for k in verification.group if _builds_from(desired, k, check.kind))]:
            n = next(c.generation for c in verification.checks if c.kind == kind) if kind in group else None
            if n is None:
                continue
            this = desired.kind(kind)
            tables = this.kind.tables(this.recipe, n)
            fp = this.kind.embedding_fp(this.recipe.params)
            mock = [doc for doc in docs if kind == check.kind and check.set_aside[doc].startswith("mock")]
            if fp is not None and mock:  # placeholder values are not served from the cache again
                hashes = ledger.texts_of(s, tables[0].name, mock)
                embedding_cache.delete(s, [embedding_cache.key(fp, h) for h in sorted(hashes)])
            ledger.delete_rows(s, [t.name for t in tables], docs)
            ledger.delete(s, kind, n, docs)
    quarantine.record(s, entries, verification.run_id)
    return len(entries)


def _builds_from(desired: Desired, kind: str, upstream: str) -> bool:
    """True when ``kind`` is built, directly or not, from ``upstream``."""
    todo = list(desired.kind(kind).kind.depends_on)
    while todo:
        u = todo.pop()
        if u == upstream:
            return True
        todo += desired.kind(u).kind.depends_on
    return False


def _lost(obs: KindObservation, scope: int, max_share: float, store: Store) -> int:
    """Documents the switch would take away from queries (in quarantine for the new
    generation, built in the active one) when they are too many to let it through, or 0."""
    if obs.active is None or not obs.quarantined:
        return 0
    active = obs.active

    def count() -> int:
        with store.session() as s:
            return ledger.built_among(s, obs.kind, active.generation, obs.quarantined)

    lost = count()
    return lost if lost > max(1.0, max_share * scope) else 0


def _golden_set(spec: Spec, observed: Observed) -> tuple[GoldenQuery, ...]:
    golden = spec.generations.golden
    if golden.file is not None:
        return load_queries(golden.file)
    return title_queries(observed.titles, golden.queries)


def _golden(
    d: DesiredKind,
    active: Generation | None,
    generation: int,
    spec: Spec,
    store: Store,
    queries: Sequence[GoldenQuery],
    guard: Guard | None = None,
) -> dict[str, Any]:
    """Recall@k of ``queries`` on the new generation and on the active one, compared (a
    first generation is measured alone: its recall is the baseline of the next one).
    ``guard`` retries each batch of queries the model fails on transiently."""
    kind, recipe = d.kind, d.recipe
    golden = spec.generations.golden
    assert recipe.model is not None
    embedder = make_embedder(recipe.model, spec.models[recipe.model])
    column = kind.vector_columns(recipe)[0]
    new_table = kind.tables(recipe, generation)[column.table].name

    def embed(model: Embedder) -> np.ndarray:
        def run(call: Callable[[], np.ndarray]) -> np.ndarray:
            return guard.call("embedder", call) if guard is not None else call()

        return embed_queries(model, queries, spec.reconcile.batch_size, run)

    vectors = embed(embedder)
    with store.session() as s:
        new = measure(store, s, new_table, column.column, vectors, queries, golden.k, fetch=kind.golden_fetch)
    result = {
        "k": golden.k,
        "queries": new.queries,
        "recall": new.recall,
        "missed": list(new.missed),
        "active_generation": None,
        "active_recall": None,
        "min_share": golden.min_share,
        "needed": 0.0,
        "passed": True,
        "note": "the first generation: nothing to compare with",
    }
    if active is None:
        return result
    old_recipe = Recipe.stored(kind.name, active.recipe_fp, active.recipe)
    old_table = kind.tables(old_recipe, active.generation)[column.table].name
    with store.session() as s:
        base, note = _query_embedder(active, recipe, embedder, spec)
        if base is not None and store.columns(s, old_table) is not None:
            old_recall: float | None = measure(
                store,
                s,
                old_table,
                column.column,
                vectors if base is embedder else embed(base),  # one model: the queries are embedded once
                queries,
                golden.k,
                fetch=kind.golden_fetch,
            ).recall
        else:
            old_recall = last_recall(active)
            note = note or f"generation {active.generation}'s table is missing"
            note += (
                f"; compared with the recall it had when switched in ({old_recall:.2f})"
                if old_recall is not None
                else "; no recall of it was ever measured, so there is nothing to compare with"
            )
    needed = round(golden.min_share * old_recall, 4) if old_recall is not None else 0.0
    return result | {
        "active_generation": active.generation,
        "active_recall": old_recall,
        "needed": needed,
        "passed": new.recall + _EPSILON >= needed,
        "note": note,
    }


def _query_embedder(active: Generation, recipe: Recipe, embedder: Embedder, spec: Spec) -> tuple[Embedder | None, str]:
    """The embedder of the active generation's model, to embed the queries its way.

    The same model as the new generation's in the common case (a text, normalisation
    or chunking change); otherwise the model spec recorded with the generation, or an
    entry of the spec's ``models`` with the same identity.
    """
    identity = active.recipe.get("model")
    if identity == recipe.params.get("model"):
        return embedder, ""
    candidates: list[tuple[str, Any]] = list(active.models.items()) + list(spec.models.items())
    for name, model in candidates:
        try:
            found = make_embedder(name, model if isinstance(model, ModelSpec) else ModelSpec.model_validate(model))
            if found.identity() == identity:
                return found, ""
        except (RagstateError, ValidationError):
            continue
    return None, f"the model of generation {active.generation} is not available to embed the queries"


def _index(store: Store, desired: Desired, generations: Mapping[str, int]) -> None:
    """Build the vector indexes of new generations (before the golden check, so it
    measures what queries will use)."""
    with store.session() as s:
        for kind, generation in generations.items():
            d = desired.kind(kind)
            for table in d.kind.tables(d.recipe, generation):
                store.capability(VectorSearch).vector_index(s, table)


# --- garbage collection -----------------------------------------------------------------


def collect_garbage(
    plan: Plan, targets: Mapping[str, int], *, spec: Spec, desired: Desired, store: Store, safety: Safety
) -> list[dict[str, Any]]:
    """Drop the generations ``plan.gc`` lists that are still collectable now (a switch
    that failed verification keeps its kind's generations): never more than the plan
    said. Each drop is one transaction. Returns what was dropped."""

    def read() -> list[Generation]:
        with store.session() as s:
            return ledger.generations(store, s)

    gens = safety.read(read)
    dropped = []
    for drop in plan.gc:
        kind_gens = [g for g in gens if g.kind == drop.kind]
        protect = (targets.get(drop.kind), holding(kind_gens, desired.kind(drop.kind).asked_fp))
        allowed = collectable(kind_gens, keep=spec.generations.keep, protect=protect)
        gen = next((g for g in allowed if g.generation == drop.generation), None)
        if gen is None:
            continue
        kind = desired.kind(drop.kind).kind
        tables = kind.tables(Recipe.stored(kind.name, gen.recipe_fp, gen.recipe), gen.generation)
        removed: list[int] = []

        def job(s: Session, drop: GcDrop = drop, tables: Sequence[TableDef] = tables, out: list[int] = removed) -> None:
            out[:] = [ledger.drop_generation(store, s, drop.kind, drop.generation, tables)]

        safety.commit(store, job)
        dropped.append({"kind": drop.kind, "generation": drop.generation, "documents": removed[0]})
    return dropped


# --- rollback ---------------------------------------------------------------------------


def choose_rollback(
    gens: Sequence[Generation], depends: Mapping[str, tuple[str, ...]], kind: str, to: int | None = None
) -> dict[str, int]:
    """The generations a rollback of ``kind`` switches to: ``kind``'s (``to``, or the one
    active before the current) and those of the kinds built from it (each one built
    from the chosen upstream generations, the most recently active such). Only kinds
    that change are listed; empty when ``to`` is already active. Pure.

    Raises:
        RollbackError: nothing to roll back to, the generation was dropped or never
            switched in, it was built from other upstream generations than the active
            ones, or a dependent kind kept no generation built from it.
    """
    by_kind: dict[str, dict[int, Generation]] = {}
    for g in gens:
        by_kind.setdefault(g.kind, {})[g.generation] = g
    if kind not in by_kind:
        raise RollbackError(f"{kind}: no generation has been built", kind=kind)
    active = {k: next((g for g in v.values() if g.state == ACTIVE), None) for k, v in by_kind.items()}
    current = active[kind]
    if current is None:
        raise RollbackError(f"{kind}: no generation is active", kind=kind)
    target = _rollback_target(by_kind[kind], current, kind, to)
    if target is None:
        return {}
    for u in depends.get(kind, ()):
        up = active.get(u)
        if up is not None and not _built_from(target, {u: up.generation}, by_kind):
            raise RollbackError(
                f"{kind}: generation {target.generation} was built from {u} generation "
                f"{target.upstream.get(u, '(another)')}, but {u} generation {up.generation} is active; "
                f"roll back {u} instead (the kinds built from it follow); nothing was switched",
                kind=kind,
                generation=target.generation,
            )
    chosen = {kind: target.generation}
    for d in _downstream_order(by_kind, depends, kind):
        ups = [u for u in depends.get(d, ()) if u in by_kind]
        needed = {u: chosen[u] if u in chosen else active[u].generation for u in ups if u in chosen or active[u]}
        now_active = active[d]
        if now_active is not None and _built_from(now_active, needed, by_kind):
            continue
        kept = [g for g in by_kind[d].values() if g.state == RETIRED and _built_from(g, needed, by_kind)]
        if not kept:
            wanted = ", ".join(f"{u} generation {n}" for u, n in needed.items())
            raise RollbackError(
                f"{kind}: no kept generation of {d} was built from {wanted} (garbage-collected or never built); "
                "nothing was switched",
                kind=kind,
                generation=target.generation,
            )
        chosen[d] = max(kept, key=lambda g: (g.activated_at or 0.0, g.generation)).generation
    return chosen


def _rollback_target(
    gens: Mapping[int, Generation], current: Generation, kind: str, to: int | None
) -> Generation | None:
    if to is None:
        retired = [g for g in gens.values() if g.state == RETIRED]
        if not retired:
            raise RollbackError(
                f"{kind}: no earlier generation to roll back to (generation {current.generation} is the only one kept)",
                kind=kind,
            )
        return max(retired, key=lambda g: (g.retired_at or 0.0, g.generation))
    target = gens.get(to)
    if target is None:
        known = ", ".join(str(n) for n in sorted(gens))
        raise RollbackError(f"{kind}: there is no generation {to} (generations: {known})", kind=kind, generation=to)
    if target.state == ACTIVE:
        return None
    if target.state == DROPPED:
        raise RollbackError(
            f"{kind}: generation {to} was garbage-collected (generations.keep); its data is gone",
            kind=kind,
            generation=to,
        )
    if not target.was_active:
        raise RollbackError(
            f"{kind}: generation {to} was never switched in (state {target.state}); apply switches to it once it "
            "passes verification",
            kind=kind,
            generation=to,
        )
    return target


def _built_from(g: Generation, needed: Mapping[str, int], by_kind: Mapping[str, Mapping[int, Generation]]) -> bool:
    """True when ``g`` was built from exactly the ``needed`` upstream generations (a
    generation recorded before lineage was kept is matched by its upstream recipe)."""
    for u, n in needed.items():
        if u in g.upstream:
            if g.upstream[u] != n:
                return False
        else:
            up = by_kind.get(u, {}).get(n)
            if up is None or g.recipe.get("upstream") != up.recipe_fp:
                return False
    return True


def _downstream_order(
    by_kind: Mapping[str, Mapping[int, Generation]], depends: Mapping[str, tuple[str, ...]], root: str
) -> list[str]:
    """The kinds built (directly or not) from ``root``, each after its upstream kinds."""
    below: set[str] = set()
    changed = True
    while changed:
        changed = False
        for k in by_kind:
            if k not in below and k != root and any(u == root or u in below for u in depends.get(k, ())):
                below.add(k)
                changed = True
    order: list[str] = []
    while len(order) < len(below):
        for k in sorted(below):
            if k not in order and all(u not in below or u in order for u in depends.get(k, ())):
                order.append(k)
    return order


def rollback(
    store: Store,
    depends: Mapping[str, tuple[str, ...]],
    kind: str,
    to: int | None,
    *,
    desired_fps: Mapping[str, str],
    run_id: str,
    safety: Safety,
) -> dict[str, Any]:
    """Switch ``kind`` back (see ``choose_rollback``), in one transaction (fenced and
    retried by ``safety``), recomputing nothing. Each switched kind whose recipe differs
    from the spec's (``desired_fps``) is held there: until the spec changes, apply keeps
    it in sync under that recipe (``artifacts.desired.pin_holds``) and never switches back.

    Returns:
        ``{"kind", "switched": {kind: {"from", "to"}}, "held": [kinds], "recomputed": 0}``.

    Raises:
        RollbackError: see ``choose_rollback``; also when a chosen generation's tables
            are gone. Nothing was switched.
    """
    out: dict[str, Any] = {}

    def job(s: Session) -> None:
        gens = ledger.generations(store, s)
        chosen = choose_rollback(gens, depends, kind, to)
        by_key = {(g.kind, g.generation): g for g in gens}
        active = {g.kind: g.generation for g in gens if g.state == ACTIVE}
        for k, n in chosen.items():
            g = by_key[(k, n)]
            if store.columns(s, g.table_name) is None:
                raise RollbackError(
                    f"{kind}: table {g.table_name} of {k} generation {n} is missing; nothing was switched",
                    kind=kind,
                    generation=n,
                )
        holds = {
            k: {"run_id": run_id, "recipe_fp": desired_fps[k], "at": now()}
            if k in desired_fps and desired_fps[k] != by_key[(k, n)].recipe_fp
            else None
            for k, n in chosen.items()
        }
        upstream = {
            k: {u: chosen.get(u, active[u]) for u in depends.get(k, ()) if u in chosen or u in active} for k in chosen
        }
        if chosen:
            ledger.switch(store, s, chosen, upstream=upstream, holds=holds)
        out.update(
            kind=kind,
            switched={k: {"from": active.get(k), "to": n} for k, n in chosen.items()},
            held=sorted(k for k, h in holds.items() if h),
            recomputed=0,
        )

    safety.commit(store, job)
    return out
