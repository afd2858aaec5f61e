"""One run of the loop: look (observe, plan, check a saved plan), repair the schema, start
the record, refuse, apply, settle (re-observe: what is left), record.

Every function works over a :class:`RunContext`: the spec, its store, its source and
the retry guard, built once per spec by ``Project.context()`` (the daemon asks for a new
one each cycle, as it reads the spec again). The whole contract of a run is its outcome,
the status of the :class:`RunRecord` it returns or raises with (like controller-runtime's
``Result``); :func:`exit_code` turns it into the exit code of ``ragstate apply``,
``reconcile`` and ``quarantine retry``, and of ``ragstate daemon --once``:

=================  =============================================================  =====  ======
status             meaning                                                        apply  daemon
                                                                                         --once
=================  =============================================================  =====  ======
``converged``      the store matches the spec (observed again after applying)     0      0
                   ... except items left in quarantine                            4      4
``partial``        the budget stopped it at a batch boundary; the next run goes   1      2
                   on from there (not verified)
``not_converged``  drift remains: the source changed while applying               1      1
``rejected``       a new generation failed verification and was not switched in   5      1
                   (the active one is untouched)
``refused``        nothing was done: a destructive plan without                   3      1
                   ``--allow-destructive`` (``DestructiveRefused``, 3), or too
                   many documents or too costly (``RunTooLarge``,
                   ``CostLimitExceeded``: 1); raised
``failed``         an error stopped it; committed batches stay; raised            1      1
``interrupted``    a second signal (Ctrl-C) during a batch; raised                130    130
=================  =============================================================  =====  ======
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ragstate import exits
from ragstate.apply.apply import ApplyContext, apply_plan
from ragstate.apply.budget import Budget
from ragstate.apply.progress import NullProgress, Progress
from ragstate.apply.record import (
    CONVERGED,
    FAILED,
    INTERRUPTED,
    NOT_CONVERGED,
    PARTIAL,
    REFUSED,
    REJECTED,
    RunRecord,
    new_run_id,
)
from ragstate.apply.safety import Safety
from ragstate.errors import (
    CostLimitExceeded,
    DestructiveRefused,
    PreflightError,
    RagstateError,
    RunTooLarge,
    StalePlanError,
)
from ragstate.faults import FaultLog, Guard, classify
from ragstate.observe.narrow import narrowed
from ragstate.observe.observe import Observed, observe, pinned
from ragstate.observe.throughput import with_calibration
from ragstate.artifacts.desired import Desired, desired_state
from ragstate.plan.diff import diff, source_notes
from ragstate.plan.model import Plan
from ragstate.plan.render import format_cost
from ragstate.reconcile import conditions as cond
from ragstate.reconcile.doctor import doctor
from ragstate.reconcile.reports import VerifyReport, pipeline_readiness, verify_report
from ragstate.redact import redact
from ragstate.sources import InPlaceSource, Source, open_source
from ragstate.spec import Spec
from ragstate.stores import Store, locks, open_scratch, records
from ragstate.stores import conditions as conditions_store
from ragstate.stores.migrations import describe_applied, repair

log = logging.getLogger(__name__)

#: status -> (exit code of apply, reconcile and quarantine retry; of ``daemon --once``): the
#: table of this module's docstring (converged with items in quarantine: ``exits.QUARANTINED``)
EXIT_CODES: dict[str, tuple[int, int]] = {
    CONVERGED: (0, 0),
    PARTIAL: (1, 2),
    NOT_CONVERGED: (1, 1),
    REJECTED: (exits.REJECTED, 1),
    REFUSED: (exits.DESTRUCTIVE_REFUSED, 1),
    FAILED: (1, 1),
    INTERRUPTED: (exits.INTERRUPTED, exits.INTERRUPTED),
}


def exit_code(status: str, quarantined: int = 0, *, once: bool = False) -> int:
    """The exit code of a run that ended in ``status`` (see the table above).

    Args:
        status: the run's status (or a daemon cycle's outcome; any other is 1).
        quarantined: items left in quarantine (a converged run then exits 4).
        once: the code of ``ragstate daemon --once`` rather than of ``apply``.
    """
    if status == CONVERGED and quarantined:
        return exits.QUARANTINED
    codes = EXIT_CODES.get(status, (1, 1))
    return codes[1] if once else codes[0]


@dataclass
class Held:
    """What a project's run contexts share across spec reloads: the writer lease while it
    is held (the lock is re-entrant within a project, and a daemon reads its spec again
    while holding it) and whether the start-up checks passed for the current spec."""

    lease: locks.WriterLease | None = None
    preflight_done: bool = False


@dataclass(frozen=True)
class RunContext:
    """What a run works over: one spec, its store and source, the retry guard."""

    spec: Spec
    spec_hash: str
    store: Store
    #: retries and circuit breakers, kept for a project's life (a daemon's cycles share them)
    guard: Guard
    held: Held = field(default_factory=Held, compare=False, repr=False)
    #: live mode: the source paths a change notification named; observations look at them
    #: alone (``observe.narrow``); None: the whole source
    hinted_paths: frozenset[str] | None = None

    def source(self) -> Source:
        return narrowed(open_source(self.spec, self.store), self.hinted_paths)

    def desired(self, pipelines: tuple[str, ...] | None = None) -> Desired:
        """The desired state of every enabled pipeline, or of ``pipelines`` alone."""
        return desired_state(self.spec, pipelines=pipelines)

    def observe(self, *, depth: str = "shallow", desired: Desired | None = None) -> tuple[Desired, Observed]:
        # Kinds a rollback holds are observed (and planned, built, verified) under the recipe held.
        desired = pinned(self.spec, desired or self.desired(), self.store)
        return desired, observe(self.spec, desired, self.store, self.source(), depth=depth)


class Contexts(Protocol):
    """What hands out run contexts for a spec that may change on disk (``Project``): the
    daemon reads the spec again each cycle (``reload``), then asks for a context."""

    #: the current spec and its hash
    spec: Spec
    spec_hash: str
    #: the spec file and profile the spec was loaded from, if any
    origin: tuple[Path, str | None] | None
    #: when the current spec was taken
    spec_since: float
    #: live mode: the paths the next contexts narrow their observations to (the daemon sets
    #: them for one cycle, ``live.narrowing``)
    hinted_paths: frozenset[str] | None

    def context(self) -> RunContext: ...

    def reload(self) -> bool: ...


@dataclass(frozen=True)
class Run:
    """One run's own parts: its record, fault log, fenced store access, budget, progress."""

    record: RunRecord
    log: FaultLog
    safety: Safety
    budget: Budget
    progress: Progress | None


# --- taking the store ---------------------------------------------------------------------


@contextmanager
def writer_lock(
    ctx: RunContext, *, progress: Progress | None = None, command: str = "apply", budget: Budget | None = None
) -> Iterator[locks.WriterLease]:
    """Hold the store's single-writer lock for the block (re-entrant within a project).

    Waits for another holder or fails at once, as ``reconcile.lock`` says; a stop
    requested on ``budget`` (the daemon's SIGTERM) ends the wait.

    Raises:
        StoreLocked: another process holds it (``fail``), or the wait timed out.
    """
    held = ctx.held
    if held.lease is not None:
        yield held.lease
        return

    def waiting(holder: dict[str, Any]) -> None:
        if progress is not None:
            progress.note(f"waiting for {locks.describe(holder)} to finish writing the store")

    lease = locks.acquire(
        ctx.store,
        mode=ctx.spec.reconcile.lock,
        timeout_s=ctx.spec.reconcile.lock_timeout_s,
        command=command,
        on_wait=waiting,
        retry=lambda fn: ctx.guard.call("database", fn),
        cancel=(lambda: budget.stop_reason) if budget is not None else None,
    )
    held.lease = lease
    try:
        yield lease
    finally:
        held.lease = None
        lease.release()


def preflight(ctx: RunContext) -> None:
    """The cheap checks of ``doctor``, once per spec (apply and the daemon start with them).

    Raises:
        PreflightError: a check failed; the message names each one and its fix.
    """
    if ctx.held.preflight_done:
        return
    report = doctor(ctx.spec, store=ctx.store, cheap=True)
    if not report.ok:
        lines = [f"{c.name}: {c.detail}; fix: {c.fix}" for c in report.failures]
        raise PreflightError(
            "ragstate cannot work here yet (`ragstate doctor` shows every check):\n  - " + "\n  - ".join(lines),
            checks=[c.name for c in report.failures],
        )
    ctx.held.preflight_done = True


@contextmanager
def reading(ctx: RunContext) -> Iterator[tuple[RunContext, str]]:
    """For ``plan`` and ``status``: yields ``ctx`` and "" when the store exists; otherwise
    a context over a scratch copy of the empty store apply would start from, so a mistyped
    path leaves no file (nor lock) behind, and a note saying so."""
    real = ctx.store
    if real.exists():
        yield ctx, ""
        return
    with tempfile.TemporaryDirectory(prefix="ragstate-scratch-") as folder:
        scratch = open_scratch(ctx.spec.store, Path(folder))
        scratch.description = real.description  # messages keep naming the store of the spec
        try:
            yield (
                replace(ctx, store=scratch),
                f"the store {real.description} does not exist yet: apply creates it (nothing was created)",
            )
        finally:
            scratch.close()


# --- the read-only stages -----------------------------------------------------------------


def plan(ctx: RunContext, *, depth: str = "shallow") -> Plan:
    """What drifted and what ``apply`` would do; reads only (see ``Project.plan``)."""
    with reading(ctx) as (ctx, note):
        desired, observed = ctx.observe(depth=depth)
        fresh = diff(ctx.spec, ctx.spec_hash, desired, with_calibration(ctx.spec, desired, observed))
    return replace(fresh, notes=(*fresh.notes, note)) if note else fresh


def verify(ctx: RunContext) -> VerifyReport:
    """Deep audit: re-read the source, check every vector, re-embed a sample."""
    t0 = time.perf_counter()
    desired, observed = ctx.observe(depth="deep")
    found = diff(ctx.spec, ctx.spec_hash, desired, observed)
    report = verify_report(found, observed, desired)
    report.checked["seconds"] = round(time.perf_counter() - t0, 3)
    record_state(ctx, found, observed, desired)
    return report


# --- a run ----------------------------------------------------------------------------------


def apply(
    ctx: RunContext,
    saved: Plan | None = None,
    *,
    allow_destructive: bool = False,
    depth: str = "audit",
    progress: Progress | None = None,
    command: str = "apply",
    budget: Budget | None = None,
    run_id: str | None = None,
    daemon: dict[str, Any] | None = None,
    pipelines: tuple[str, ...] | None = None,
) -> RunRecord:
    """Carry out ``plan``, or a plan computed now, and check that the store converged.

    Args:
        saved: a saved plan; refused if a fresh plan would differ from it.
        allow_destructive: carry out deletions beyond ``reconcile.max_delete_share``.
        depth: how closely to observe when computing the plan (``saved.depth`` wins).
        progress: receives progress events.
        budget: stops the work early, at a batch boundary (items, seconds, or a
            stop request); the run is then ``partial``.
        run_id: the id to record the run under (default: a new one).
        daemon: what the daemon says about this run (cycle, trigger, wait), kept
            in the record.
        pipelines: limit the work to the kinds these pipelines read (a query's heal).

    Returns:
        The run record (also stored in ``runs``), status ``converged``,
        ``not_converged`` (the source changed while applying), ``partial`` (the
        budget stopped it) or ``rejected``; ``quarantined`` counts the items left in
        quarantine (``reconcile.run.exit_code``: the CLI exits 4 when there are any).

    Raises:
        PreflightError: a start-up check (``doctor``'s cheap part) failed.
        StoreLocked: another process is writing the store (``reconcile.lock``).
        StalePlanError: the saved plan no longer matches the store and source.
        DestructiveRefused: the plan deletes too much and ``allow_destructive`` is off.
        RunTooLarge, CostLimitExceeded: the plan is bigger or costlier than the spec allows.
        RagstateError: anything else that stopped the run; committed batches stay.
    """
    record = RunRecord(
        run_id=run_id or new_run_id(), command=command, spec_hash=ctx.spec_hash, started_at=time.time(), daemon=daemon
    )
    budget = budget or Budget()
    preflight(ctx)
    with (
        writer_lock(ctx, progress=progress, command=command, budget=budget) as lease,
        ctx.guard.recording(FaultLog()) as fault_log,
    ):
        t0 = time.perf_counter()
        run = Run(record, fault_log, Safety(ctx.guard, fence=lease.fence), budget, progress)
        desired, observed, fresh = _look(ctx, run, saved, depth, pipelines)
        desired, observed, fresh = _repair(ctx, run, lease, desired, observed, fresh)
        _start(ctx, run, desired, observed, fresh, t0)
        _refuse(ctx, run, fresh, allow_destructive)
        after, remaining = _carry_out(ctx, run, desired, observed, fresh)
        finish(ctx, record, fault_log)
        record_state(ctx, remaining, after, desired)
        return record


def reconcile(
    ctx: RunContext,
    *,
    allow_destructive: bool = False,
    progress: Progress | None = None,
    budget: Budget | None = None,
    run_id: str | None = None,
    daemon: dict[str, Any] | None = None,
    command: str = "reconcile",
) -> RunRecord:
    """Apply observing deeply, then verify; one more pass if the source moved meanwhile.

    With a ``budget`` that stops the apply early, the run is ``partial`` and not verified.
    """
    budget = budget or Budget()
    with writer_lock(ctx, progress=progress, command=command, budget=budget):
        options: dict[str, Any] = dict(
            allow_destructive=allow_destructive, depth="deep", progress=progress, command=command, budget=budget
        )
        record = apply(ctx, run_id=run_id, daemon=daemon, **options)
        if record.status == PARTIAL:
            return record
        report = verify(ctx)
        if not report.in_sync and record.status != REJECTED:  # a rejected generation would be rejected again
            record = apply(ctx, daemon=daemon, **options)
            if record.status == PARTIAL:
                return record
            report = verify(ctx)
        record.verify = report.to_dict()
        if not report.in_sync and record.status != REJECTED:
            record.status = NOT_CONVERGED
            record.error = "drift remains after reconcile: " + _drift_words(report.drift)
        with ctx.store.session() as s:
            records.finish(ctx.store, s, record.run_id, record.status, record.counts(), record.timings, record.error)
        return record


def _look(
    ctx: RunContext, run: Run, saved: Plan | None, depth: str, pipelines: tuple[str, ...] | None
) -> tuple[Desired, Observed, Plan]:
    """Observe and plan; refuse a saved plan that no longer matches what is observed.

    Raises:
        StalePlanError: the store or source changed since ``saved`` was computed.
    """
    if saved is None and depth != "deep" and run.safety.read(lambda: _audit_pending(ctx)):
        depth = "deep"  # an audit found rows no apply rebuilt yet: observe as closely as it did
    desired, observed = run.safety.read(
        lambda: ctx.observe(depth=saved.depth if saved is not None else depth, desired=ctx.desired(pipelines))
    )
    observed = with_calibration(ctx.spec, desired, observed)
    fresh = diff(ctx.spec, ctx.spec_hash, desired, observed)
    for note in source_notes(ctx.spec, observed, blocked=bool(fresh.schema or fresh.source_schema)):
        log.warning("%s", note)  # files left out, an empty source: never silent
    if saved is not None and saved.fingerprint != fresh.fingerprint:
        raise StalePlanError("the store or source changed since this plan was computed; run `ragstate plan` again")
    return desired, observed, fresh


def _repair(
    ctx: RunContext, run: Run, lease: locks.WriterLease, desired: Desired, observed: Observed, fresh: Plan
) -> tuple[Desired, Observed, Plan]:
    """Migrate the store's tables and recreate an in-place source's view when the plan
    says they drifted, then look again.

    Raises:
        MappingError: the user's table no longer fits the mapping (before any run is recorded).
    """
    record = run.record
    record.schema_repaired = [describe_applied(lease.migrated)] if lease.migrated else []
    lease.migrated = []
    if not (fresh.schema or fresh.source_schema):
        return desired, observed, fresh
    if fresh.schema:
        record.schema_repaired += run.safety.read(lambda: repair(ctx.store))
    source = ctx.source()
    if fresh.source_schema and isinstance(source, InPlaceSource):
        record.schema_repaired += source.repair()
    desired, observed = run.safety.read(lambda: ctx.observe(depth=fresh.depth, desired=desired))
    observed = with_calibration(ctx.spec, desired, observed)
    return desired, observed, diff(ctx.spec, ctx.spec_hash, desired, observed)


def _start(ctx: RunContext, run: Run, desired: Desired, observed: Observed, fresh: Plan, t0: float) -> None:
    """Record the run as started (with its plan's summary) and the conditions it starts from."""
    record = run.record
    record.drift = fresh.drift
    record.timings["plan_s"] = round(time.perf_counter() - t0, 4)
    if "seconds" in observed.source_timing:
        record.timings["source_observe_s"] = observed.source_timing["seconds"]
    summary = _plan_summary(fresh)

    def start() -> None:
        with ctx.store.session() as s:
            records.start(ctx.store, s, record.run_id, record.command, ctx.spec_hash, summary)

    run.safety.read(start)
    record_state(ctx, fresh, observed, desired)


def _refuse(ctx: RunContext, run: Run, fresh: Plan, allow_destructive: bool) -> None:
    """Refuse (record, then raise) a plan the spec does not allow to run.

    Raises:
        DestructiveRefused: it deletes too much and ``allow_destructive`` is off.
        RunTooLarge: it builds more than ``reconcile.max_documents_per_run`` documents.
        CostLimitExceeded: its embedding would cost more than ``reconcile.max_cost``.
    """
    refusal = _refusal(ctx.spec, fresh, allow_destructive)
    if refusal is None:
        return
    run.record.status, (run.record.error, error) = REFUSED, refusal
    finish(ctx, run.record, run.log)
    raise error


def _refusal(spec: Spec, fresh: Plan, allow_destructive: bool) -> tuple[str, RagstateError] | None:
    """Why ``fresh`` may not run (the run's error, the error to raise), or None."""
    if fresh.destructive and not allow_destructive:
        reasons = "; ".join(fresh.destructive_reasons)
        deletions = sum(len(k.delete) for k in fresh.kinds)
        return reasons, DestructiveRefused(
            "refusing destructive plan (use --allow-destructive): " + reasons,
            deletions=deletions,
            share=0.0,
            limit=spec.reconcile.max_delete_share,
        )
    documents = len({doc_id for k in fresh.kinds for doc_id in k.build_ids})
    limit = spec.reconcile.max_documents_per_run
    if limit is not None and documents > limit:
        reason = (
            f"the plan builds {documents} documents; reconcile.max_documents_per_run is {limit} "
            "(raise it, or grow the scope in steps with scope: {first: N})"
        )
        return reason, RunTooLarge("refusing the run: " + reason, documents=documents, limit=limit)
    max_cost, cost = spec.reconcile.max_cost, fresh.estimate.cost
    if max_cost is not None and cost is not None and cost > max_cost:
        reason = (
            f"the plan's embedding would cost ~{format_cost(cost)} ({fresh.estimate.tokens} tokens at the models' "
            f"price_per_million_tokens); reconcile.max_cost is {max_cost:g} (raise it, or grow the scope in steps)"
        )
        return reason, CostLimitExceeded("refusing the run: " + reason, cost=cost, limit=max_cost)
    return None


def _carry_out(ctx: RunContext, run: Run, desired: Desired, observed: Observed, fresh: Plan) -> tuple[Observed, Plan]:
    """Apply ``fresh``, then settle; a run that raises is recorded (failed or interrupted)
    before the error goes on. Returns what was observed after, and the plan left."""
    record, budget = run.record, run.budget
    try:
        progress = run.progress or NullProgress()
        apply_plan(fresh, ApplyContext(ctx.spec, ctx.store, ctx.source(), run.safety, progress, budget), record)
        return _settle(ctx, run, desired, observed, fresh)
    except KeyboardInterrupt:
        record.status, record.error, record.error_type = INTERRUPTED, "interrupted", "KeyboardInterrupt"
        finish(ctx, record, run.log)
        raise
    except BaseException as exc:
        record.status = FAILED
        record.error = redact(str(exc)) or type(exc).__name__
        record.error_type = type(exc).__name__
        record.error_class = run.log.stopped_by = classify(exc).family
        record.budget = budget.to_dict()
        finish(ctx, record, run.log)
        raise


def _settle(ctx: RunContext, run: Run, desired: Desired, observed: Observed, fresh: Plan) -> tuple[Observed, Plan]:
    """Observe again after applying and set the run's outcome from the drift left."""
    record = run.record
    t1 = time.perf_counter()
    if fresh.in_sync:  # nothing was to be done: the plan is what a new look would see
        after, remaining = observed, fresh
    else:
        _, after = run.safety.read(lambda: ctx.observe(depth="shallow", desired=desired))
        remaining = diff(ctx.spec, ctx.spec_hash, desired, after)
    record.timings["check_s"] = round(time.perf_counter() - t1, 4)
    record.quarantined = dict(remaining.quarantine.get("quarantined", {}))
    record.remaining = remaining.drift
    record.budget = run.budget.to_dict()
    record.status, record.error = _outcome(record, remaining, run.budget)
    return after, remaining


def _outcome(record: RunRecord, remaining: Plan, budget: Budget) -> tuple[str, str | None]:
    """The status and error of a run that applied its plan (the table above)."""
    if record.rejected:
        return REJECTED, (
            "a new generation failed verification and was not switched in (the active one is untouched): "
            + "; ".join(record.rejected)
        )
    if remaining.in_sync:
        return CONVERGED, record.error
    if budget.stopped:
        return PARTIAL, budget.describe() + "; the next run continues (left: " + _drift_words(remaining.drift) + ")"
    return NOT_CONVERGED, "drift remains after apply (the source changed while applying): " + _drift_words(
        remaining.drift
    )


# --- recording ------------------------------------------------------------------------------


def finish(ctx: RunContext, record: RunRecord, fault_log: FaultLog | None = None) -> None:
    """Store the end of a run (its status, counts, timings, error); a store that fails to
    take it is logged, not raised: the run's own error matters more."""
    record.finished_at = time.time()
    record.timings["total_s"] = round(record.finished_at - record.started_at, 4)
    if fault_log is not None:
        record.faults = fault_log.to_dict()

    def write() -> None:
        with ctx.store.session() as s:
            records.finish(ctx.store, s, record.run_id, record.status, record.counts(), record.timings, record.error)

    try:
        ctx.guard.call("database", write)
    except RagstateError as exc:
        log.warning("could not record the end of run %s: %s", record.run_id, exc)


def record_state(ctx: RunContext, plan: Plan, observed: Observed, desired: Desired) -> cond.Conditions:
    """Evaluate the conditions of every pipeline and kind, record them (with the
    pipelines' readiness), and return them. Transition times carry over from the
    recorded ones; a store whose tables need repair records nothing."""
    store = ctx.store
    with store.session() as s:
        runs = records.recent(store, s, limit=20) if not plan.schema else []
        previous = cond.from_rows(conditions_store.read(store, s)) if not plan.schema else {}
    audit = cond.audit_findings(plan, previous, runs)
    current = cond.evaluate(plan, observed, desired, runs, spec_hash=ctx.spec_hash, now=time.time(), audit=audit)
    current = cond.merge(previous, current)
    if plan.schema:
        return current
    readiness = pipeline_readiness(plan, observed, desired, audit)
    states = {name: (p.ready, p.reasons) for name, p in readiness.items()}
    with store.session() as s:
        records.set_pipeline_states(store, s, states, ctx.spec_hash)
        conditions_store.replace_all(store, s, cond.to_rows(current))
    return current


def _audit_pending(ctx: RunContext) -> bool:
    """Whether the recorded conditions hold an audit's finding no run has rebuilt yet."""
    with ctx.store.session() as s:
        return cond.audited(cond.from_rows(conditions_store.read(ctx.store, s)))


def _plan_summary(plan: Plan) -> dict[str, Any]:
    """What a run row keeps of its plan: counts and estimate, not every document id."""
    return {
        "drift": plan.drift,
        "estimate": asdict(plan.estimate),
        "destructive": plan.destructive,
        "fingerprint": plan.fingerprint,
        "depth": plan.depth,
        "scope_size": plan.scope_size,
        "switch_groups": [list(g) for g in plan.switch_groups],
        "changes": {k.kind: list(k.changes) for k in plan.kinds if k.changes},
        "gc": [asdict(g) for g in plan.gc],
    }


def _drift_words(drift: dict[str, dict[str, int]]) -> str:
    return "; ".join(f"{kind}: " + ", ".join(f"{n} {c}" for c, n in classes.items()) for kind, classes in drift.items())
