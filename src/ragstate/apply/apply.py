"""Apply a plan: record the source, then per kind delete and build in batches; then
verify and switch new generations, and collect garbage (``apply.generations``).

Apply consumes the plan alone (with the ``ApplyContext`` it writes with): it acts on the
plan's action kinds (``plan.model.ACTIONS``: repair, purge, delete, build, rebuild,
switch, drop), never on the drift reasons, and takes what it needs of the observation
from ``Plan.inputs``.

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

Kinds are prepared in build order (upstream first: a new generation created, tables
repaired, orphaned rows deleted), then built; then new generations are verified and
switched in by switch group (``generations.settle``). With
``reconcile.concurrent_kinds`` 1 each kind is built to completion before the next;
above, kinds are built concurrently and a dependent kind builds each document once its
upstream kinds have committed it (``schedule.py``), so it always reads complete
upstream rows. Either way one writer thread commits the batches.

Apply is idempotent: a batch re-run after a crash rewrites the same rows. Builds are
computed by the executor while the writer thread commits earlier batches: on the kinds'
threads, or on the actors of a Ray cluster (``apply.executors``; kinds then go one at
a time, the actors being the parallelism); results come back in batch order, so the
write order is the same whatever computes them. A batch that fails on an actor is built
again here, with the retries and isolation below.

Faults (``docs/failures.md``): every write goes through ``Safety.commit`` (fenced by the
writer lock, retried when transient); batches are sized to the memory budget
(``batching``; concurrent kinds share it); a document that fails is found and set aside
(``isolate``) and written to quarantine in its batch's transaction, together with the
rows of the others. Quarantined documents are not built and their old rows are not
deleted; nor are the documents an upstream kind set aside in this run.

A ``Budget`` (``budget``) may stop the work early, always at a batch boundary: before a
kind is prepared, before a deletion batch or a build batch starts (never inside one);
concurrent kinds share it (each batch takes its documents from the item cap before it is
computed). Batches committed stay; a stopped run verifies and switches nothing (the run
that completes the build does).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragstate.apply.batching import BatchSizer
from ragstate.apply.budget import ITEMS, Budget
from ragstate.apply.executors import Executor, LocalExecutor, open_executor
from ragstate.apply.generations import settle
from ragstate.apply.isolate import BatchResult, Isolator
from ragstate.apply.progress import NullProgress, Progress
from ragstate.apply.record import KindCounts, RunRecord
from ragstate.apply.safety import Safety
from ragstate.apply.schedule import Gate, Overlap, Stopped
from ragstate.apply.writer import BatchWriter
from ragstate.artifacts.base import BuildContext
from ragstate.artifacts.cache import EmbeddingCache, evict
from ragstate.artifacts.desired import Desired, DesiredKind
from ragstate.compute.embedders import make_embedder
from ragstate.errors import PlanError
from ragstate.observe.golden import load_queries
from ragstate.observe.observe import observe
from ragstate.plan.model import (
    BUILD,
    DELETE,
    PAST_WINDOW,
    PURGE,
    REBUILD,
    REPAIR,
    SWITCH,
    ApplyInputs,
    KindPlan,
    Plan,
)
from ragstate.sources.base import Source
from ragstate.spec.model import Spec
from ragstate.stores import embedding_cache, ledger, quarantine, records, registry
from ragstate.stores.base import Session, Store, VectorSearch, now
from ragstate.stores.documents import DocRef
from ragstate.stores.migrations import add_missing_columns
from ragstate.stores.schema import TableDef

log = logging.getLogger(__name__)


#: a run estimated longer than this on the CPU is announced before it starts
LONG_RUN_S = 600.0


def _warn_if_long(plan: Plan, spec: Spec) -> None:
    """Say before the work starts that it will take long when a model runs on the CPU."""
    seconds = plan.estimate.seconds
    on_cpu = sorted(name for name, m in spec.models.items() if getattr(m, "device", "cpu") == "cpu")
    if seconds < LONG_RUN_S or not on_cpu:
        return
    log.warning(
        "this run is estimated at ~%.0f min (%d documents to build) with models on the CPU (%s); a GPU "
        "(models.<name>.device: cuda), fewer pipelines or scope: {first: N} make it shorter; committed "
        "batches stay if it is stopped",
        seconds / 60,
        plan.estimate.items,
        ", ".join(on_cpu),
    )


@dataclass(frozen=True)
class ApplyContext:
    """What apply writes with: the spec it runs under, the store and source, ``safety``
    (fences writes by the writer lock, retries transient failures), ``progress``, and a
    ``budget`` that may stop the work at a batch boundary (``budget.stopped`` says why)."""

    spec: Spec
    store: Store
    source: Source
    safety: Safety
    progress: Progress = field(default_factory=NullProgress)
    budget: Budget = field(default_factory=Budget)


def apply_plan(plan: Plan, ctx: ApplyContext, record: RunRecord) -> RunRecord:
    """Carry out ``plan``'s actions, filling ``record`` as it goes.

    Args:
        plan: a plan computed by ``diff`` in this process (it holds what apply needs of
            the observation, ``Plan.inputs``); a saved plan is applied by computing it
            again and comparing fingerprints.
        ctx: the spec, store, source, safety, progress and budget it runs with.
        record: the run's record; its run row must already exist (``records.start``).

    Returns:
        ``record``, filled.

    Raises:
        PlanError: ``plan`` holds no inputs (it was read back from JSON).
        Whatever stops the work; everything committed before that stays committed.
    """
    if plan.inputs is None:
        raise PlanError("a plan read back from JSON is applied by computing it again (its fingerprint is compared)")
    spec = ctx.spec
    _warn_if_long(plan, spec)
    planned = getattr(ctx.progress, "planned", None)  # optional: an overall bar with the plan's ETA
    if planned is not None:
        planned(plan.estimate)
    t0 = time.perf_counter()
    _record_source(plan.inputs, ctx, record)
    _release_holds(plan.inputs, ctx)
    if plan.switch_groups and spec.generations.golden.file is not None:
        load_queries(spec.generations.golden.file)  # a bad file stops the run before the build, not after
    if plan.cache_purge:

        def purge(s: Session) -> None:
            record.cache["purged"] = embedding_cache.delete(s, plan.cache_purge)

        ctx.safety.commit(ctx.store, purge)
    run = _Run(
        plan,
        ctx,
        record,
        # The generation each kind's work went into, for the dependent kinds that read it.
        targets={k.kind: k.target_generation for k in plan.kinds if k.target_generation is not None},
        tracker=_Tracker(total=sum(len(k.documents(BUILD, REBUILD)) for k in plan.kinds)),
        cache=EmbeddingCache(ctx.store, enabled=spec.cache.enabled, run_id=record.run_id),
        executor=open_executor(spec),
    )
    _build_kinds(run)
    # Stopped early by the budget, the new generations are not complete: the run that
    # finishes their build verifies and switches them (and collects garbage).
    if not ctx.budget.stopped:
        _verify_and_switch(run)
    _count_cache(record, ctx)
    record.timings["apply_s"] = round(time.perf_counter() - t0, 4)
    return record


def _record_source(inputs: ApplyInputs, ctx: ApplyContext, record: RunRecord) -> None:
    """Record the source as read in the document registry, and the quarantine's writes."""
    view = inputs.quarantine
    if inputs.snapshot is None and not view.writes:
        return

    def record_source(s: Session) -> None:
        # The registry and the quarantine of unreadable documents change together: a
        # file recorded as seen is never re-read, so its problem must be kept now.
        if inputs.snapshot is not None:
            record.documents_recorded = registry.sync(s, inputs.snapshot, inputs.known)
        quarantine.remove(s, view.stale)
        quarantine.record(s, view.new, record.run_id)

    ctx.safety.commit(ctx.store, record_source)


def _release_holds(inputs: ApplyInputs, ctx: ApplyContext) -> None:
    """Clear the rollback hold of each kind whose spec changed since the rollback: the
    hold only stops apply from switching back to the recipe rolled back from."""
    for kind in inputs.release_holds:
        ctx.safety.commit(ctx.store, lambda s, kind=kind: ledger.clear_hold(s, kind))


def _build_kinds(run: _Run) -> None:
    """Prepare and build every kind with work, one at a time or concurrently, on the
    run's executor (closed here)."""
    plan, store, safety, budget, executor = run.plan, run.store, run.safety, run.budget, run.executor
    run.record.executor = executor.description
    # Kinds at once only with the local executor: on a cluster, the actors are the parallelism.
    n = concurrent_kinds(run.spec, store, plan.kinds) if isinstance(executor, LocalExecutor) else 1
    try:
        if n <= 1:
            for kp in plan.kinds:
                if kp.has_work:
                    if budget.exhausted():
                        break
                    job = run.prepare(kp)
                    if job is not None:
                        writer = BatchWriter(store, commit=safety.commit)
                        try:
                            run.build(job, job.sizer.batches(job.refs), writer)
                            writer.close()
                        except BaseException:
                            writer.abandon()
                            raise
                    run.finish(kp)
                run.set_aside[kp.kind] = run.blocked(kp.kind) | run.failed.get(kp.kind, set())
        else:
            _build_concurrently(run, [k for k in plan.kinds if k.has_work], n)
    finally:
        executor.close()
        if executor.startup_seconds:
            run.record.timings["executor_start_s"] = round(executor.startup_seconds, 4)


def _verify_and_switch(run: _Run) -> None:
    """Verify and switch the new generations by switch group, then collect garbage."""
    plan, spec, store, source, safety = run.plan, run.spec, run.store, run.source, run.safety
    settle(
        plan,
        run.targets,
        spec=spec,
        desired=run.desired,
        store=store,
        record=run.record,
        progress=run.progress,
        safety=safety,
        observe_now=lambda titles: safety.read(
            lambda: observe(spec, _switching(plan, run.desired), store, source, depth="audit", titles=titles)
        ),
    )


def _count_cache(record: RunRecord, ctx: ApplyContext) -> None:
    """The embedding cache's hits and misses of the run; evict beyond ``cache.max_mb``."""
    record.cache["hits"] = sum(k.cache_hits for k in record.kinds.values())
    record.cache["misses"] = sum(k.cache_misses for k in record.kinds.values())
    if ctx.spec.cache.enabled and not ctx.budget.stopped:  # a stopped run leaves it to the next
        evicted, freed = ctx.safety.read(lambda: evict(ctx.store, ctx.spec.cache.max_mb))
        record.cache["evicted"], record.cache["evicted_bytes"] = evicted, freed


def _switching(plan: Plan, desired: Desired) -> Desired:
    """The kinds of ``plan``'s switch groups and the kinds they are built from: what the
    verification before a switch observes again."""
    wanted = {k for group in plan.switch_groups for k in group}
    for d in reversed(desired.kinds):  # downstream first, so upstream kinds are added in turn
        if d.name in wanted:
            wanted.update(d.kind.depends_on)
    return Desired(kinds=tuple(d for d in desired.kinds if d.name in wanted), pipelines={})


def concurrent_kinds(spec: Spec, store: Store, kinds: Sequence[KindPlan]) -> int:
    """Batches of different kinds computed at once: ``reconcile.concurrent_kinds``, at most
    one per kind with documents to build, and, on a pooled store, one connection fewer than
    the pool (the writer holds one)."""
    building = sum(1 for k in kinds if k.documents(BUILD, REBUILD))
    n = min(spec.reconcile.concurrent_kinds, building)
    if store.max_sessions is not None:
        n = min(n, max(1, store.max_sessions - 1))
    return max(1, n)


def _build_concurrently(run: _Run, work: Sequence[KindPlan], n: int) -> None:
    """Prepare every kind in build order, build them on threads of their own (at most
    ``n`` batches computed at once; dependents per document, ``schedule.Gate``; the
    memory budget shared), then switch them in build order. A budget spent while preparing
    leaves the kinds after unprepared (and unbuilt)."""
    jobs: dict[str, _KindJob | None] = {}
    for kp in work:
        if run.budget.exhausted():
            break
        jobs[kp.kind] = run.prepare(kp, share=n)
    work = [kp for kp in work if kp.kind in jobs]
    building = {k: j for k, j in jobs.items() if j is not None}
    gate = Gate({k: [r.doc_id for r in j.refs] for k, j in building.items()})
    for k, j in building.items():
        gate.register(k, j.refs, run.desired.kind(k).kind.depends_on)
    slots = threading.Semaphore(n)
    overlap = Overlap(concurrent_kinds=n)
    writer = BatchWriter(run.store, depth=max(2, n), commit=run.safety.commit, on_error=lambda exc: gate.stop())
    errors: list[BaseException] = []

    def worker(kind: str) -> None:
        try:
            overlap.begin(kind)
            job = building[kind]
            run.build(job, gate.batches(kind, job.sizer.next_size), writer, slots=slots, gate=gate)
            writer.submit(None, after=lambda: (gate.finish(kind), overlap.end(kind)))
        except Stopped:
            pass
        except BaseException as exc:  # re-raised on the calling thread
            errors.append(exc)
            gate.stop()

    threads = [threading.Thread(target=worker, args=(k,), name=f"ragstate-{k}", daemon=True) for k in building]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # wakes for KeyboardInterrupt
    except BaseException:
        gate.stop()
        for t in threads:
            t.join()
        writer.abandon()
        raise
    if errors:
        writer.abandon()
        raise errors[0]
    writer.close()
    run.record.schedule = overlap.summary({k: run.record.kinds[k].build_seconds for k in building})
    for kp in work:
        run.set_aside[kp.kind] = gate.skipped(kp.kind) | run.failed.get(kp.kind, set())
        run.finish(kp)


@dataclass
class _KindJob:
    """What building one kind needs, once it is prepared."""

    kp: KindPlan
    desired: DesiredKind
    generation: int
    tables: tuple[TableDef, ...]
    ctx: BuildContext
    counts: KindCounts
    refs: list[DocRef]
    sizer: BatchSizer
    isolator: Isolator
    #: the kind had documents in quarantine when observed: built ones leave it
    clear_quarantine: bool = False
    failed: set[str] = field(default_factory=set)


@dataclass
class _Run:
    """One apply's kinds: prepare (generation, repair, deletes), build, finish (switch)."""

    plan: Plan
    ctx: ApplyContext
    record: RunRecord
    targets: dict[str, int]
    tracker: _Tracker
    cache: EmbeddingCache
    executor: Executor
    generations: dict[str, int] = field(default_factory=dict)
    #: documents each kind set aside in this run (quarantined)
    failed: dict[str, set[str]] = field(default_factory=dict)
    #: those, and the documents each kind did not build because an upstream kind set
    #: them aside (what the kinds built from it skip)
    set_aside: dict[str, set[str]] = field(default_factory=dict)
    #: kinds the budget stopped before all their work was done: never switched in this run
    partial: set[str] = field(default_factory=set)
    #: guards the budget and the tracker, shared by the kinds' threads
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def inputs(self) -> ApplyInputs:
        assert self.plan.inputs is not None
        return self.plan.inputs

    @property
    def desired(self) -> Desired:
        return self.inputs.desired

    @property
    def spec(self) -> Spec:
        return self.ctx.spec

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def source(self) -> Source:
        return self.ctx.source

    @property
    def progress(self) -> Progress:
        return self.ctx.progress

    @property
    def safety(self) -> Safety:
        return self.ctx.safety

    @property
    def budget(self) -> Budget:
        return self.ctx.budget

    def blocked(self, kind: str) -> set[str]:
        """Documents set aside in this run by the kinds ``kind`` is built from."""
        return {d for u in self.desired.kind(kind).kind.depends_on for d in self.set_aside.get(u, ())}

    def prepare(self, kp: KindPlan, *, share: int = 1) -> _KindJob | None:
        """Create the target generation if needed, repair its tables, delete orphaned rows;
        return what building it needs (None when it has nothing to build). ``share``:
        how many kinds build at once (each gets that share of the memory budget)."""
        this = self.desired.kind(kp.kind)
        kind, recipe = this.kind, this.recipe
        counts = self.record.kinds.setdefault(kp.kind, KindCounts(recipe_fp=recipe.fingerprint))
        counts.past_window = len(kp.build.get(PAST_WINDOW, ()))  # recorded for display, not acted on
        counts.estimate_tokens, counts.estimate_seconds = kp.estimate.tokens, kp.estimate.seconds
        counts.estimate_basis, counts.model_fp = kp.basis, kind.embedding_fp(recipe.params)
        generation = kp.target_generation
        if generation is None:
            generation = self._create_generation(this)
            counts.created_generation = True
            self.progress.note(f"{kind.name}: building generation {generation} (recipe {recipe.fingerprint})")
        tables = kind.tables(recipe, generation)
        counts.generation = generation
        repairs = kp.action(REPAIR)
        if repairs is not None:
            self._repair(tables)
            counts.repaired.extend(repairs.problems)
        if not self._delete(kp, generation, tables, counts):
            self.partial.add(kp.kind)
            return None
        self.generations[kp.kind] = self.targets[kp.kind] = generation
        refs = self._refs(kp, share)
        if not refs:
            return None
        return self._job(kp, this, generation, tables, counts, refs, share)

    def _create_generation(self, this: DesiredKind) -> int:
        """Create a new generation of ``this`` kind and its tables (one transaction)."""
        kind, recipe, store, record = this.kind, this.recipe, self.store, self.record
        created: list[int] = []

        def create(s: Session) -> None:
            gen = ledger.create_generation(
                store,
                s,
                kind.name,
                recipe.fingerprint,
                recipe.params,
                record.run_id,
                upstream={u: self.targets[u] for u in kind.depends_on if u in self.targets},
                models={recipe.model: this.model_spec(self.spec).model_dump(mode="json")} if recipe.model else {},
            )
            for t in kind.tables(recipe, gen.generation):
                store.ensure_table(s, t)
            created[:] = [gen.generation]

        self.safety.commit(store, create)
        return created[0]

    def _repair(self, tables: tuple[TableDef, ...]) -> None:
        """Create what ``tables`` lack (tables, columns; indexes in ``finish``)."""
        store = self.store

        def repair(s: Session) -> None:
            for t in tables:
                store.ensure_table(s, t)
                add_missing_columns(store, s, t)

        self.safety.commit(store, repair)

    def _delete(self, kp: KindPlan, generation: int, tables: tuple[TableDef, ...], counts: KindCounts) -> bool:
        """Carry out the purge and delete actions of ``kp`` in batches; False when the
        budget stopped them."""
        names = [t.name for t in tables]
        for ids, what in ((kp.documents(PURGE), "purged"), (kp.documents(DELETE), "deleted")):
            for chunk in _chunks(ids, self.spec.reconcile.batch_size):
                if self.budget.exhausted():
                    return False

                def delete(s: Session, chunk: Sequence[str] = chunk, what: str = what) -> None:
                    ledger.delete_rows(s, names, chunk)
                    if what == "deleted":
                        ledger.delete(s, kp.kind, generation, chunk)

                self.safety.commit(self.store, delete)
                setattr(counts, what, getattr(counts, what) + len(chunk))
        return True

    def _refs(self, kp: KindPlan, share: int) -> list[DocRef]:
        """The documents ``kp`` builds and rebuilds, in source order, but those an upstream
        kind set aside; cut to the budget's item cap when one kind builds at a time."""
        blocked = self.blocked(kp.kind)
        refs = sorted(
            (self.inputs.refs[d] for d in kp.documents(BUILD, REBUILD) if d not in blocked),
            key=lambda r: (r.path, r.pos),
        )
        if share <= 1:
            # one kind at a time: the item cap cuts its documents now (batches computed
            # ahead on a cluster could not be cut); concurrent kinds cut batches (``build``)
            allowed = self.budget.remaining_items()
            if allowed is not None and len(refs) > allowed:
                refs = refs[:allowed]
                self.budget.stopped = self.budget.stopped or ITEMS
                self.partial.add(kp.kind)
        return refs

    def _job(
        self,
        kp: KindPlan,
        this: DesiredKind,
        generation: int,
        tables: tuple[TableDef, ...],
        counts: KindCounts,
        refs: list[DocRef],
        share: int,
    ) -> _KindJob:
        """What building ``refs`` into ``generation`` needs: the build context, a batch
        sizer with its share of the memory budget, an isolator."""
        spec, store = self.spec, self.store
        kind, recipe = this.kind, this.recipe
        upstream = {u: self.desired.kind(u) for u in kind.depends_on}
        # A kind held by a rollback builds with the models its generation was built with.
        build_spec = this.spec or spec
        ctx = BuildContext(
            spec=build_spec,
            embedder=lambda name: make_embedder(name, build_spec.models[name]),
            encode_vector=store.encode_vector,
            run_id=self.record.run_id,
            now=now(),
            store=store,
            tables={kind.name: tables}
            | {u: d.kind.tables(d.recipe, self.targets[u]) for u, d in upstream.items() if u in self.targets},
            kinds={kind.name: kind} | {u: d.kind for u, d in upstream.items()},
            fresh=frozenset(kp.documents(REBUILD)),
            cache=self.cache,
        )
        sizer = BatchSizer.from_spec(spec.reconcile.batch_size, spec.reconcile.memory_budget_mb)
        sizer.budget = max(1, sizer.budget // max(1, share))
        isolator = Isolator(
            kind=kind,
            recipe=recipe,
            ctx=ctx,
            tables=tables,
            store=store,
            guard=self.safety.guard,
            sizer=sizer,
            max_streak=spec.reconcile.max_failure_streak,
        )
        clear = kind.name in self.inputs.quarantine.recorded_kinds
        return _KindJob(kp, this, generation, tables, ctx, counts, refs, sizer, isolator, clear)

    def build(
        self,
        job: _KindJob,
        batches: Iterable[Sequence[DocRef]],
        writer: BatchWriter,
        *,
        slots: threading.Semaphore | None = None,
        gate: Gate | None = None,
    ) -> None:
        """Build ``batches`` of ``job`` and queue each for ``writer``. With ``slots``, each
        batch is computed holding one; with ``gate``, each commit releases its documents
        (and those set aside) to the kinds built from this one."""
        kind, recipe = job.desired.kind, job.desired.recipe
        counts, record, progress, guard = job.counts, self.record, self.progress, self.safety.guard
        local = isinstance(self.executor, LocalExecutor)
        if recipe.model is not None and local:
            # before the clock starts: rates measure work, not start-up
            guard.call("embedder", lambda: job.ctx.embedder(recipe.model).load())
        price = self.spec.models[recipe.model].price_per_million_tokens if recipe.model is not None else None
        total = len(job.refs)
        progress.start(kind.name, total)
        started = time.perf_counter()
        kind_started = now()
        with self.lock:
            self.tracker.begin()
        failed = self.failed.setdefault(kind.name, set())
        try:
            if local:
                outcomes: Iterator[tuple[Sequence[DocRef], Any, Any]] = ((b, None, None) for b in batches)
            else:
                # Documents are read as the executor asks for batches (a bounded number ahead
                # of the writer); each comes back with its Built, or the error it raised remotely.
                outcomes = (
                    (b, got, out)
                    for (b, got), out in self.executor.map(
                        kind, recipe, job.ctx, _loaded(job.isolator, self.source, batches)
                    )
                )
            for batch, got, outcome in outcomes:
                batch = self._take(kind.name, batch, cut=gate is not None)
                if not batch:
                    break  # a batch computed ahead (Ray) is dropped: nothing of it was written
                with slots if slots is not None else contextlib.nullcontext():
                    result = job.isolator.run(self.source, batch, loaded=got, prebuilt=outcome)
                lost = {f.ref.doc_id for f in result.failures}
                with self.lock:
                    live = self.tracker.snapshot(len(batch), kind_started)
                    self.tracker.done += len(batch)
                writer.submit(
                    _batch_job(self.store, job, result, record, total, live),
                    after=_settle(gate, kind.name, [r.doc_id for r in batch], lost),
                )
                built = result.built
                failed |= lost
                counts.built += len(result.doc_ids)
                counts.quarantined += len(result.failures)
                counts.rows += sum(len(r) for r in built.table_rows(len(job.tables)))
                counts.embedded += built.embedded
                counts.cache_hits += built.cache_hits
                counts.cache_misses += built.embedded
                counts.reused += built.reused
                counts.tokens += built.tokens
                counts.truncated += built.truncated
                if price is not None:
                    counts.cost = (counts.cost or 0.0) + built.tokens * price / 1_000_000
                counts.batches += 1
                progress.advance(kind.name, len(batch))
        finally:
            counts.build_seconds += time.perf_counter() - started
            guard.log.memory[kind.name] = job.sizer.summary()
            progress.finish(kind.name)

    def _take(self, kind: str, batch: Sequence[DocRef], *, cut: bool) -> Sequence[DocRef]:
        """The part of ``batch`` the budget lets ``kind`` build now (spent at once, so kinds
        built concurrently share the item cap; ``cut``: may be shorter than ``batch``);
        empty when the budget is spent (the kind is then partial)."""
        with self.lock:
            if self.budget.exhausted():
                self.partial.add(kind)
                return ()
            allowed = self.budget.remaining_items()
            if cut and allowed is not None and len(batch) > allowed:
                batch = batch[:allowed]
                self.budget.stopped = self.budget.stopped or ITEMS
                self.partial.add(kind)
            self.budget.spend(len(batch))
            return batch

    def finish(self, kp: KindPlan) -> None:
        """Build the vector indexes of repaired tables. A new generation is switched in
        later, with its switch group, once built and verified (``generations.settle``); a
        kind the budget stopped is left as it is (the next run continues it)."""
        if kp.kind in self.partial or kp.action(REPAIR) is None or kp.action(SWITCH) is not None:
            return
        this = self.desired.kind(kp.kind)
        tables = this.kind.tables(this.recipe, self.generations[kp.kind])
        store = self.store

        def index() -> None:
            with store.session() as s:
                for t in tables:
                    store.capability(VectorSearch).vector_index(s, t)

        self.safety.read(index)


def _loaded(isolator: Isolator, source: Source, batches: Iterable[Sequence[DocRef]]):
    """``((refs, (docs, failures)), docs)`` of each batch, read as the executor asks for it."""
    for batch in batches:
        got = isolator.load(source, batch)
        yield (batch, got), got[0]


def _settle(gate: Gate | None, kind: str, doc_ids: list[str], lost: set[str]) -> Callable[[], None] | None:
    """What the writer runs once a batch is committed: its documents are released to the
    kinds built from ``kind`` (those in ``lost`` as set aside)."""
    if gate is None:
        return None
    return lambda: gate.settle(kind, doc_ids, lost=lost)


def _batch_job(
    store: Store, job: _KindJob, result: BatchResult, record: RunRecord, total: int, live: dict[str, float | int]
):
    kind, generation, tables, recipe, counts = (
        job.desired.kind.name,
        job.generation,
        job.tables,
        job.desired.recipe,
        job.counts,
    )
    doc_ids = result.doc_ids
    built = result.built
    failed = [f.entry(kind, recipe.fingerprint) for f in result.failures]
    clear_quarantine = job.clear_quarantine
    # What ``status`` in any process shows of a running apply: done, rate and ETA are
    # computed from these (``reconcile.reports.live_progress``).
    progress_doc = {
        "kind": kind,
        "generation": generation,
        "done": counts.built + counts.quarantined + len(doc_ids) + len(failed),
        "total": total,
        "quarantined": counts.quarantined + len(failed),
        # the plan's estimate for the kind (measured or calibrated throughput): the ETA
        # until the kind's own pace is known
        "estimate_s": counts.estimate_seconds,
        "at": now(),
        **live,
    }

    def commit(s: Session) -> None:
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

    return commit


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


def _chunks(items: Sequence, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]
