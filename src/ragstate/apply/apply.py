"""Apply a plan: record the source, then per kind delete, build in batches, switch.

Write order, the invariant everything else relies on:

1. The document registry (what the source holds) is recorded first. A crash after it
   leaves artifacts that look stale, which the next run rebuilds; never the reverse.
2. Each batch of builds commits, in one transaction: the deletion of the documents' old
   rows, their new rows, their ledger rows, and the run's progress. Nothing is ever
   marked done before its rows are committed, and no row exists without its ledger row
   once the transaction ends.
3. A generation becomes active only when every document in scope is built into it, in
   one transaction that retires the previous one.

Kinds are applied in build order (upstream first), each to completion before the next,
so a dependent kind reads its upstream kinds' complete target generation.

Apply is idempotent: a batch re-run after a crash rewrites the same rows. Builds are
computed on this thread while the writer thread commits the previous batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from ragstate.apply.progress import NullProgress, Progress
from ragstate.apply.record import KindCounts, RunRecord
from ragstate.apply.writer import BatchWriter
from ragstate.artifacts.base import BuildContext, Built, Recipe
from ragstate.compute.embedders import make_embedder
from ragstate.observe.observe import Observed
from ragstate.plan.desired import Desired, DesiredKind
from ragstate.plan.model import KindPlan, Plan
from ragstate.sources.base import DocRef, Source
from ragstate.spec.model import Spec
from ragstate.stores import ledger, records, registry
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
) -> RunRecord:
    """Carry out ``plan`` (computed from ``observed``), filling ``record`` as it goes.

    The run row must already exist (``records.start``). Raises whatever stops the work;
    everything committed before that stays committed.
    """
    progress = progress or NullProgress()
    t0 = time.perf_counter()
    if observed.snapshot is not None and observed.registry_changed:
        with store.transaction() as s:
            record.documents_recorded = registry.sync(s, observed.snapshot, observed.known)
    # The generation each kind's work went into, for the dependent kinds that read it.
    targets: dict[str, int] = {k.kind: k.target_generation for k in plan.kinds if k.target_generation is not None}
    for kind_plan in plan.kinds:
        if kind_plan.has_work:
            targets[kind_plan.kind] = _apply_kind(
                kind_plan, observed, spec, desired, targets, store, source, record, progress
            )
    record.timings["apply_s"] = round(time.perf_counter() - t0, 4)
    return record


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
) -> int:
    """Apply ``kp``; return the generation its work went into."""
    this = desired.kind(kp.kind)
    kind, recipe = this.kind, this.recipe
    counts = record.kinds.setdefault(kp.kind, KindCounts(recipe_fp=recipe.fingerprint))
    with store.session() as s:
        generation = kp.target_generation
        if generation is None:
            with s.transaction():
                gen = ledger.create_generation(store, s, kind.name, recipe.fingerprint, recipe.params, record.run_id)
                for t in kind.tables(recipe, gen.generation):
                    store.ensure_table(s, t)
            generation = gen.generation
            counts.created_generation = True
            progress.note(f"{kind.name}: building generation {generation} (recipe {recipe.fingerprint})")
        tables = kind.tables(recipe, generation)
        names = [t.name for t in tables]
        counts.generation = generation
        if kp.repair:
            with s.transaction():
                for t in tables:
                    store.ensure_table(s, t)
                    add_missing_columns(store, s, t)
            counts.repaired.extend(kp.repair)
        for ids, what in ((kp.purge, "purged"), (kp.delete, "deleted")):
            for chunk in _chunks(ids, spec.reconcile.batch_size):
                with s.transaction():
                    ledger.delete_rows(s, names, chunk)
                    if what == "deleted":
                        ledger.delete(s, kind.name, generation, chunk)
                setattr(counts, what, getattr(counts, what) + len(chunk))

    refs = sorted((observed.refs[d] for d in kp.build_ids), key=lambda r: (r.path, r.pos))
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
        )
        _build(
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
        )

    if kp.switch:
        with store.session() as s:
            done = int(
                s.scalar("SELECT count(*) FROM {ledger} WHERE kind = ? AND generation = ?", (kind.name, generation))
            )
            if done >= observed.scope_size:
                for t in tables:
                    store.vector_index(s, t)
                ledger.activate(s, kind.name, generation)
                counts.switched = True
                progress.note(f"{kind.name}: generation {generation} is now active")
    elif kp.repair:
        with store.session() as s:
            for t in tables:
                store.vector_index(s, t)
    return generation


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
) -> None:
    kind, recipe = desired.kind, desired.recipe
    if recipe.model is not None:
        ctx.embedder(recipe.model).load()  # before the clock starts: rates measure work, not start-up
    total = len(refs)
    progress.start(kind_name, total)
    writer = BatchWriter(store)
    started = time.perf_counter()
    try:
        for batch in _chunks(refs, spec.reconcile.batch_size):
            docs = list(source.load(batch))
            built = kind.build(docs, recipe, ctx)
            doc_ids = [d.doc_id for d in docs]
            writer.submit(
                _batch_job(store, kind_name, generation, tables, doc_ids, built, recipe, record, counts, total)
            )
            counts.built += len(doc_ids)
            counts.rows += sum(len(r) for r in built.table_rows(len(tables)))
            counts.embedded += built.embedded
            counts.reused += built.reused
            counts.tokens += built.tokens
            counts.truncated += built.truncated
            counts.batches += 1
            progress.advance(kind_name, len(doc_ids))
        writer.close()
    except BaseException:
        writer.abandon()
        raise
    finally:
        counts.build_seconds += time.perf_counter() - started
        progress.finish(kind_name)


def _batch_job(
    store: Store,
    kind: str,
    generation: int,
    tables: tuple[TableDef, ...],
    doc_ids: list[str],
    built: Built,
    recipe: Recipe,
    record: RunRecord,
    counts: KindCounts,
    total: int,
):
    done_after = counts.built + len(doc_ids)
    progress_doc = {"kind": kind, "generation": generation, "done": done_after, "total": total, "at": now()}

    def job(s: Session) -> None:
        # One transaction: old rows out, new rows in, ledger rows, progress.
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
        records.progress(store, s, record.run_id, progress_doc)

    return job


def _chunks(items: Sequence, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]
