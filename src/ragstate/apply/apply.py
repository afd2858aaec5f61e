"""Apply a plan: record the source, then per kind delete and build in batches; then
verify and switch new generations, and collect garbage (``apply.generations``).

Write order, the invariant everything else relies on:

1. The document registry (what the source holds) is recorded first. A crash after it
   leaves artifacts that look stale, which the next run rebuilds; never the reverse.
2. Each batch of builds commits, in one transaction: the deletion of the documents' old
   rows, their new rows, their ledger rows, and the run's progress. Nothing is ever
   marked done before its rows are committed, and no row exists without its ledger row
   once the transaction ends.
3. A new generation becomes active only when every document in scope (but the
   quarantined ones) is built into it and it passed verification, in one transaction
   with every kind of its switch group, which retires the previous ones. A crash before
   that transaction leaves the active generations as they were; the next run resumes the
   build, or verifies again.

Kinds are applied in build order (upstream first), each to completion before the next,
so a dependent kind reads its upstream kinds' complete target generation.

Apply is idempotent: a batch re-run after a crash rewrites the same rows. Builds are
computed by the executor while the writer thread commits the previous batch: in this
thread, or on the actors of a Ray cluster (``compute.executors``); results come back in
batch order, so the write order is the same whatever computes them. A batch that fails
on an actor is built again here, with the retries and isolation below.

Faults (``docs/failures.md``): every write goes through ``Safety.commit`` (fenced by the
writer lock, retried when transient); batches are sized to the memory budget
(``batching``); a document that fails is found and set aside (``isolate``) and written
to quarantine in its batch's transaction, together with the rows of the others.
Quarantined documents are not built and their old rows are not deleted.

A ``Budget`` (``budget``) may stop the work early, always at a batch boundary: before a
kind, a deletion batch or a build batch starts (never inside one). Batches committed
stay; a generation is switched in only when complete, so a partial run never switches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ragstate.apply.batching import BatchSizer
from ragstate.apply.budget import ITEMS, Budget
from ragstate.apply.generations import settle
from ragstate.apply.isolate import BatchResult, Isolator
from ragstate.apply.progress import NullProgress, Progress
from ragstate.apply.record import KindCounts, RunRecord
from ragstate.apply.safety import Safety
from ragstate.apply.writer import BatchWriter
from ragstate.artifacts.base import BuildContext, Recipe
from ragstate.artifacts.cache import EmbeddingCache, evict
from ragstate.compute.embedders import make_embedder
from ragstate.compute.executors import Executor, LocalExecutor, open_executor
from ragstate.observe.golden import load_queries
from ragstate.observe.observe import Observed, observe
from ragstate.plan.desired import Desired, DesiredKind
from ragstate.plan.model import KindPlan, Plan
from ragstate.sources.base import DocRef, Source
from ragstate.spec.model import Spec
from ragstate.stores import embedding_cache, ledger, quarantine, records, registry
from ragstate.stores.base import Session, Store, now
from ragstate.stores.migrations import add_missing_columns
from ragstate.stores.schema import TableDef

log = logging.getLogger(__name__)


def apply_plan(
    plan: Plan,
    observed: Observed,
    *,
    spec: Spec,
    desired: Desired,
    store: Store,
    source: Source,
    record: RunRecord,
    progress: Progress | None = None,
    safety: Safety | None = None,
    budget: Budget | None = None,
) -> RunRecord:
    """Carry out ``plan`` (computed from ``observed``), filling ``record`` as it goes.

    The run row must already exist (``records.start``). ``safety`` fences and retries
    writes (default: retries only, no writer lock). ``budget`` may stop the work at a
    batch boundary (then ``budget.stopped`` says why). Raises whatever stops the work;
    everything committed before that stays committed.
    """
    progress = progress or NullProgress()
    safety = safety or Safety.unlocked(spec)
    budget = budget or Budget()
    tracker = _Tracker(total=sum(len(k.build_ids) for k in plan.kinds))
    t0 = time.perf_counter()
    registry_changed = observed.snapshot is not None and observed.registry_changed
    view = observed.quarantine
    if registry_changed or view.writes:

        def record_source(s: Session) -> None:
            # The registry and the quarantine of unreadable documents change together: a
            # file recorded as seen is never re-read, so its problem must be kept now.
            if registry_changed and observed.snapshot is not None:
                record.documents_recorded = registry.sync(s, observed.snapshot, observed.known)
            quarantine.remove(s, view.stale)
            quarantine.record(s, view.new, record.run_id)

        safety.commit(store, record_source)
    _forget_holds(observed, store, safety)
    if plan.switch_groups and spec.generations.golden.file is not None:
        load_queries(spec.generations.golden.file)  # a bad file stops the run before the build, not after
    if plan.cache_purge:

        def purge(s: Session) -> None:
            record.cache["purged"] = embedding_cache.delete(s, plan.cache_purge)

        safety.commit(store, purge)
    cache = EmbeddingCache(store, enabled=spec.cache.enabled, run_id=record.run_id)
    # The generation each kind's work went into, for the dependent kinds that read it.
    targets: dict[str, int] = {k.kind: k.target_generation for k in plan.kinds if k.target_generation is not None}
    # Documents set aside during this run, per kind: kinds built from them skip them too.
    set_aside: dict[str, set[str]] = {}
    executor = open_executor(spec)
    record.executor = executor.description
    try:
        for kind_plan in plan.kinds:
            blocked = {d for u in desired.kind(kind_plan.kind).kind.depends_on for d in set_aside.get(u, ())}
            if kind_plan.has_work:
                if budget.exhausted():
                    break
                targets[kind_plan.kind], failed = _apply_kind(
                    kind_plan,
                    observed,
                    spec,
                    desired,
                    targets,
                    store,
                    source,
                    record,
                    progress,
                    _Run(safety, budget, tracker),
                    blocked,
                    executor,
                    cache,
                )
                blocked |= failed
            set_aside[kind_plan.kind] = blocked
    finally:
        executor.close()
        if executor.startup_seconds:
            record.timings["executor_start_s"] = round(executor.startup_seconds, 4)
    # Stopped early by the budget, the new generations are not complete: the run that
    # finishes their build verifies and switches them (and collects garbage).
    if not budget.stopped:
        settle(
            plan,
            targets,
            spec=spec,
            desired=desired,
            store=store,
            record=record,
            progress=progress,
            safety=safety,
            observe_now=lambda titles: safety.read(
                lambda: observe(spec, _switching(plan, desired), store, source, depth="audit", titles=titles)
            ),
        )
    record.cache["hits"] = sum(k.cache_hits for k in record.kinds.values())
    record.cache["misses"] = sum(k.cache_misses for k in record.kinds.values())
    if spec.cache.enabled:
        evicted, freed = safety.read(lambda: evict(store, spec.cache.max_mb))
        record.cache["evicted"], record.cache["evicted_bytes"] = evicted, freed
    record.timings["apply_s"] = round(time.perf_counter() - t0, 4)
    return record


def _switching(plan: Plan, desired: Desired) -> Desired:
    """The kinds of ``plan``'s switch groups and the kinds they are built from: what the
    verification before a switch observes again."""
    wanted = {k for group in plan.switch_groups for k in group}
    for d in reversed(desired.kinds):  # downstream first, so upstream kinds are added in turn
        if d.name in wanted:
            wanted.update(d.kind.depends_on)
    return Desired(kinds=tuple(d for d in desired.kinds if d.name in wanted), pipelines={})


def _forget_holds(observed: Observed, store: Store, safety: Safety) -> None:
    """Clear the rollback hold of each kind whose spec changed since the rollback: the
    hold only stops apply from switching back to the recipe rolled back from."""
    for k in observed.kinds.values():
        if k.active is not None and k.active.hold and not k.held and k.active.hold.get("recipe_fp") != k.recipe_fp:
            safety.commit(store, lambda s, kind=k.kind: ledger.clear_hold(s, kind))


def _apply_kind(
    kp: KindPlan,
    observed: Observed,
    spec: Spec,
    desired: Desired,
    targets: dict[str, int],
    store: Store,
    source: Source,
    record: RunRecord,
    progress: Progress,
    run: _Run,
    blocked: set[str],
    executor: Executor,
    cache: EmbeddingCache,
) -> tuple[int, set[str]]:
    """Apply ``kp``; return the generation its work went into and the documents set aside.

    ``blocked`` documents were set aside by an upstream kind in this run: they are not
    built (their upstream rows are missing or stale), as if quarantined.
    """
    safety, budget = run.safety, run.budget
    this = desired.kind(kp.kind)
    kind, recipe = this.kind, this.recipe
    counts = record.kinds.setdefault(kp.kind, KindCounts(recipe_fp=recipe.fingerprint))
    generation = kp.target_generation
    if generation is None:
        created: list[int] = []

        def create(s: Session) -> None:
            gen = ledger.create_generation(
                store,
                s,
                kind.name,
                recipe.fingerprint,
                recipe.params,
                record.run_id,
                upstream={u: targets[u] for u in kind.depends_on if u in targets},
                models={recipe.model: spec.models[recipe.model].model_dump(mode="json")} if recipe.model else {},
            )
            for t in kind.tables(recipe, gen.generation):
                store.ensure_table(s, t)
            created[:] = [gen.generation]

        safety.commit(store, create)
        generation = created[0]
        counts.created_generation = True
        progress.note(f"{kind.name}: building generation {generation} (recipe {recipe.fingerprint})")
    tables = kind.tables(recipe, generation)
    names = [t.name for t in tables]
    counts.generation = generation
    if kp.repair:

        def repair(s: Session) -> None:
            for t in tables:
                store.ensure_table(s, t)
                add_missing_columns(store, s, t)

        safety.commit(store, repair)
        counts.repaired.extend(kp.repair)
    for ids, what in ((kp.purge, "purged"), (kp.delete, "deleted")):
        for chunk in _chunks(ids, spec.reconcile.batch_size):
            if budget.exhausted():
                return generation, set()

            def delete(s: Session, chunk: Sequence[str] = chunk, what: str = what) -> None:
                ledger.delete_rows(s, names, chunk)
                if what == "deleted":
                    ledger.delete(s, kind.name, generation, chunk)

            safety.commit(store, delete)
            setattr(counts, what, getattr(counts, what) + len(chunk))

    refs = sorted((observed.refs[d] for d in kp.build_ids if d not in blocked), key=lambda r: (r.path, r.pos))
    allowed = budget.remaining_items()
    if allowed is not None and len(refs) > allowed:
        refs = refs[:allowed]
        budget.stopped = budget.stopped or ITEMS
    failed: set[str] = set()
    if refs:
        upstream = {u: desired.kind(u) for u in kind.depends_on}
        ctx = BuildContext(
            spec=spec,
            embedder=lambda name: make_embedder(name, spec.models[name]),
            encode_vector=store.encode_vector,
            run_id=record.run_id,
            now=now(),
            store=store,
            tables={kind.name: tables}
            | {u: d.kind.tables(d.recipe, targets[u]) for u, d in upstream.items() if u in targets},
            kinds={kind.name: kind} | {u: d.kind for u, d in upstream.items()},
            fresh=frozenset(kp.build.get("corrupt", ()) + kp.build.get("mock", ())),
            cache=cache,
        )
        failed = _build(
            refs,
            kind_name=kind.name,
            desired=this,
            generation=generation,
            tables=tables,
            ctx=ctx,
            spec=spec,
            store=store,
            source=source,
            record=record,
            counts=counts,
            progress=progress,
            run=run,
            clear_quarantine=kind.name in observed.quarantine.recorded_kinds,
            executor=executor,
        )

    # A switch waits for the whole group to be built and verified (settle).
    if kp.repair and not kp.switch:

        def index() -> None:
            with store.session() as s:
                for t in tables:
                    store.vector_index(s, t)

        safety.read(index)
    return generation, failed


def _build(
    refs: Sequence[DocRef],
    *,
    kind_name: str,
    desired: DesiredKind,
    generation: int,
    tables: tuple[TableDef, ...],
    ctx: BuildContext,
    spec: Spec,
    store: Store,
    source: Source,
    record: RunRecord,
    counts: KindCounts,
    progress: Progress,
    run: _Run,
    clear_quarantine: bool,
    executor: Executor,
) -> set[str]:
    """Build ``refs`` in batches; return the documents set aside (quarantined).

    Stops before a batch when the budget is spent; the batches handed to the writer
    are committed before this returns.
    """
    safety, budget, tracker = run.safety, run.budget, run.tracker
    kind, recipe = desired.kind, desired.recipe
    if recipe.model is not None and isinstance(executor, LocalExecutor):
        # before the clock starts: rates measure work, not start-up
        safety.guard.call("embedder", lambda: ctx.embedder(recipe.model).load())
    total = len(refs)
    progress.start(kind_name, total)
    sizer = BatchSizer.from_spec(spec.reconcile.batch_size, spec.reconcile.memory_budget_mb)
    isolator = Isolator(
        kind=kind,
        recipe=recipe,
        ctx=ctx,
        tables=tables,
        store=store,
        guard=safety.guard,
        sizer=sizer,
        max_streak=spec.reconcile.max_failure_streak,
    )
    writer = BatchWriter(store, commit=safety.commit)
    started = time.perf_counter()
    kind_started = now()
    tracker.begin()
    failed: set[str] = set()
    if isinstance(executor, LocalExecutor):
        outcomes: Iterator[tuple[Sequence[DocRef], Any, Any]] = ((b, None, None) for b in sizer.batches(refs))
    else:
        # Documents are read as the executor asks for batches (a bounded number ahead of
        # the writer); each comes back with its Built, or the error it raised remotely.
        outcomes = (
            (b, got, out) for (b, got), out in executor.map(kind, recipe, ctx, _loaded(isolator, source, sizer, refs))
        )
    try:
        for batch, got, outcome in outcomes:
            if budget.exhausted():
                break  # a batch computed ahead (Ray) is dropped: nothing of it was written
            result = isolator.run(source, batch, loaded=got, prebuilt=outcome)
            writer.submit(
                _batch_job(
                    store,
                    kind_name,
                    generation,
                    tables,
                    result,
                    recipe,
                    record,
                    counts,
                    total,
                    clear_quarantine=clear_quarantine,
                    live=tracker.snapshot(len(batch), kind_started),
                )
            )
            built = result.built
            failed.update(f.ref.doc_id for f in result.failures)
            counts.built += len(result.doc_ids)
            counts.quarantined += len(result.failures)
            counts.rows += sum(len(r) for r in built.table_rows(len(tables)))
            counts.embedded += built.embedded
            counts.cache_hits += built.cache_hits
            counts.cache_misses += built.embedded
            counts.reused += built.reused
            counts.tokens += built.tokens
            counts.truncated += built.truncated
            counts.batches += 1
            budget.spend(len(batch))
            tracker.done += len(batch)
            progress.advance(kind_name, len(batch))
        writer.close()
    except BaseException:
        writer.abandon()
        raise
    finally:
        counts.build_seconds += time.perf_counter() - started
        safety.guard.log.memory[kind_name] = sizer.summary()
        progress.finish(kind_name)
    return failed


def _loaded(isolator: Isolator, source: Source, sizer: BatchSizer, refs: Sequence[DocRef]):
    """``((refs, (docs, failures)), docs)`` of each batch, read as the executor asks for it."""
    for batch in sizer.batches(refs):
        got = isolator.load(source, batch)
        yield (batch, got), got[0]


def _batch_job(
    store: Store,
    kind: str,
    generation: int,
    tables: tuple[TableDef, ...],
    result: BatchResult,
    recipe: Recipe,
    record: RunRecord,
    counts: KindCounts,
    total: int,
    *,
    clear_quarantine: bool,
    live: dict[str, float | int],
):
    doc_ids = result.doc_ids
    built = result.built
    failed = [f.entry(kind, recipe.fingerprint) for f in result.failures]
    # What ``status`` in any process shows of a running apply: done, rate and ETA are
    # computed from these (``reconcile.reports.live_progress``).
    progress_doc = {
        "kind": kind,
        "generation": generation,
        "done": counts.built + counts.quarantined + len(doc_ids) + len(failed),
        "total": total,
        "quarantined": counts.quarantined + len(failed),
        "at": now(),
        **live,
    }

    def job(s: Session) -> None:
        # One transaction: old rows out, new rows in, ledger rows, quarantine, the
        # embedding-cache entries the batch paid for, progress.
        ledger.delete_rows(s, [t.name for t in tables], doc_ids)
        for table, rows in zip(tables, built.table_rows(len(tables)), strict=True):
            s.copy_rows(table, rows)
        ledger.write(
            s,
            kind,
            generation,
            [(d, built.source_hashes[d], recipe.fingerprint, built.items.get(d, 0)) for d in doc_ids],
            record.run_id,
        )
        if clear_quarantine and doc_ids:
            quarantine.remove(s, [(kind, d) for d in doc_ids])
        quarantine.record(s, failed, record.run_id)
        embedding_cache.put(store, s, built.cache_entries)
        embedding_cache.touch(s, built.cache_touched, now())
        records.progress(store, s, record.run_id, progress_doc)

    return job


@dataclass
class _Tracker:
    """Documents of the whole run: how many the plan builds, how many are done."""

    total: int
    done: int = 0
    #: when the first build batch started (seconds since the epoch)
    started_at: float | None = None

    def begin(self) -> None:
        if self.started_at is None:
            self.started_at = now()

    def snapshot(self, batch: int, kind_started: float) -> dict[str, float | int]:
        """The run-wide part of the progress written with the next batch of ``batch`` documents."""
        return {
            "kind_started_at": kind_started,
            "run_done": self.done + batch,
            "run_total": self.total,
            "run_started_at": self.started_at or kind_started,
        }


@dataclass
class _Run:
    """What every kind of one apply shares: safety, budget, run-wide progress."""

    safety: Safety
    budget: Budget
    tracker: _Tracker


def _chunks(items: Sequence, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]
