"""The façade: a ``Project`` is a spec bound to its store and source.

Each method composes the stages (observe → diff → apply → verify) and nothing more;
the CLI calls exactly one of them per command.

====================  ===================================================================
``plan()``            what drifted and what applying would do (read-only)
``apply(plan)``       carry out a plan (or a fresh one), then check convergence
``verify()``          deep audit; remaining drift must be zero
``reconcile()``       plan, apply, verify: the main job
``status()``          readiness and conditions of each pipeline and kind, generations, runs
``report()``          conditions and recent runs, for ``ragstate report`` (an HTML page)
``daemon(...)``       reconcile on an interval until stopped (``reconcile.daemon``)
``history()``         generations of each kind and recent runs, with recipes and outcomes
``rollback(kind)``    switch a kind (and the kinds built from it) back to an earlier generation
``map_table(...)``    check a user's table against a mapping; if it fits, create its view
``check_source()``    re-check the spec's (or a recorded) table mapping
``quarantine_*()``    list, retry or drop the items set aside as failing
``writer_lock()``     hold the store's single-writer lock (apply and reconcile take it)
``pipeline(name)``    an enabled pipeline's query side: ``.retrieve(query, k)``, guarded
``query(name, text)``  ``pipeline(name).retrieve(text, k)``: what ``ragstate query`` calls
``cache_status()``    the embedding cache's size, per embedding recipe, recent hits
``evict_cache(mode)`` evict cache entries (to the limit, unreferenced, everything)
``doctor()``          start-up checks: store, extensions, rights, models, memory, disk
====================  ===================================================================

Every method that writes artifacts holds the writer lock for its whole duration, so two
processes never apply to one store at once (``reconcile.lock``: the second waits or
fails), and retries its store work through ``self.guard`` (``faults.retry``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ragstate.apply.apply import ApplyContext, apply_plan
from ragstate.apply.budget import Budget
from ragstate.apply.generations import rollback as rollback_generations
from ragstate.apply.progress import NullProgress, Progress
from ragstate.apply.record import (
    CONVERGED,
    FAILED,
    INTERRUPTED,
    NOT_CONVERGED,
    PARTIAL,
    REFUSED,
    REJECTED,
    KindCounts,
    RunRecord,
    new_run_id,
)
from ragstate.apply.safety import Safety
from ragstate.artifacts import get_kind
from ragstate.artifacts.cache import evict as cache_evict
from ragstate.artifacts.cache import references as cache_references
from ragstate.errors import (
    CostLimitExceeded,
    DestructiveRefused,
    PreflightError,
    QuarantineNotFound,
    RagstateError,
    RunTooLarge,
    SpecError,
    StalePlanError,
)
from ragstate.faults import FaultLog, Guard, classify
from ragstate.observe.duplicates import duplicate_groups
from ragstate.observe.observe import Observed, observe, pinned
from ragstate.observe.throughput import with_calibration
from ragstate.pipelines.base import Retrieval
from ragstate.pipelines.query import Pipeline
from ragstate.plan.desired import Desired, desired_state
from ragstate.plan.diff import diff, source_notes
from ragstate.plan.model import Plan
from ragstate.plan.render import format_cost
from ragstate.reconcile import conditions as cond
from ragstate.reconcile.daemon import Daemon
from ragstate.reconcile.doctor import DoctorReport, doctor
from ragstate.reconcile.history import HistoryReport, history_report
from ragstate.reconcile.reports import (
    CacheReport,
    KindStatus,
    Report,
    RunPoint,
    StatusReport,
    VerifyReport,
    completeness_of,
    live_progress,
    pipeline_readiness,
    verify_report,
)
from ragstate.redact import redact
from ragstate.sources import InPlaceSource, Source, open_source
from ragstate.sources.table import MappingReport, check_recorded, map_table
from ragstate.spec import Spec, TableSourceSpec, load_spec, spec_hash, table_source_from
from ragstate.stores import Store, embedding_cache, ledger, locks, open_scratch, open_store, records
from ragstate.stores import conditions as conditions_store
from ragstate.stores import quarantine as quarantine_store
from ragstate.stores.migrations import describe_applied, repair
from ragstate.stores.quarantine import DROPPED, QUARANTINED, RETRY, SOURCE, Entry
from ragstate.stores.schema import EMBEDDING_CACHE, QUARANTINE

log = logging.getLogger(__name__)


class Project:
    """One spec, its store and its source. Open it, call methods, close it."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.spec_hash = spec_hash(spec)
        self._store: Store | None = None
        #: retries and circuit breakers; kept for the project's life (a daemon's cycles share them)
        self.guard = Guard(spec.reconcile.retry, spec.reconcile.breaker)
        self._lease: locks.WriterLease | None = None
        self._preflight_done = False
        #: the spec file and profile the spec was loaded from (``from_file``), for ``reload``
        self.origin: tuple[Path, str | None] | None = None
        #: when the project took its current spec (``reload`` moves it when the file changed)
        self.spec_since = time.time()

    @classmethod
    def from_file(cls, path: str | Path, *, profile: str | None = None) -> Project:
        """Load the spec at ``path`` (see ``ragstate.spec.load_spec``)."""
        project = cls(load_spec(path, profile=profile))
        project.origin = (Path(path), profile)
        return project

    def reload(self) -> bool:
        """Read the spec file again (a project opened with ``from_file``) and take it if it
        changed; True when it did. A long-lived process (the daemon) calls it before each
        run, so that a spec edited since reaches it without a restart.

        Raises:
            SpecError: the file no longer holds a valid spec, or names another store (a
                process bound to one store does not move to another); the project keeps
                the spec it had.
        """
        if self.origin is None:
            return False
        path, profile = self.origin
        spec = load_spec(path, profile=profile)
        new_hash = spec_hash(spec)
        if new_hash == self.spec_hash:
            return False
        if spec.store != self.spec.store:
            raise SpecError(
                f"{path}: store changed since this process started; restart it to use the new store", path=path
            )
        if (spec.reconcile.retry, spec.reconcile.breaker) != (self.spec.reconcile.retry, self.spec.reconcile.breaker):
            self.guard = Guard(spec.reconcile.retry, spec.reconcile.breaker)
        self.spec, self.spec_hash, self.spec_since = spec, new_hash, time.time()
        self._preflight_done = False
        return True

    # --- parts ------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.spec.store)
        return self._store

    def source(self) -> Source:
        return open_source(self.spec, self.store)

    def desired(self, pipelines: tuple[str, ...] | None = None) -> Desired:
        """The desired state of every enabled pipeline, or of ``pipelines`` alone."""
        return desired_state(self.spec, pipelines=pipelines)

    @contextmanager
    def writer_lock(
        self, *, progress: Progress | None = None, command: str = "apply", budget: Budget | None = None
    ) -> Iterator[locks.WriterLease]:
        """Hold the store's single-writer lock for the block (re-entrant within this project).

        Waits for another holder or fails at once, as ``reconcile.lock`` says; a stop
        requested on ``budget`` (the daemon's SIGTERM) ends the wait.

        Raises:
            StoreLocked: another process holds it (``fail``), or the wait timed out.
        """
        if self._lease is not None:
            yield self._lease
            return

        def waiting(holder: dict[str, Any]) -> None:
            if progress is not None:
                progress.note(f"waiting for {locks.describe(holder)} to finish writing the store")

        lease = locks.acquire(
            self.store,
            mode=self.spec.reconcile.lock,
            timeout_s=self.spec.reconcile.lock_timeout_s,
            command=command,
            on_wait=waiting,
            retry=lambda fn: self.guard.call("database", fn),
            cancel=(lambda: budget.stop_reason) if budget is not None else None,
        )
        self._lease = lease
        try:
            yield lease
        finally:
            self._lease = None
            lease.release()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- stages -----------------------------------------------------------------------

    def observe(self, *, depth: str = "shallow", desired: Desired | None = None) -> tuple[Desired, Observed]:
        # Kinds a rollback holds are observed (and planned, built, verified) under the recipe held.
        desired = pinned(self.spec, desired or self.desired(), self.store)
        return desired, observe(self.spec, desired, self.store, self.source(), depth=depth)

    def plan(self, *, depth: str = "shallow") -> Plan:
        """What drifted and what ``apply`` would do. Reads only: against a store that does
        not exist yet it plans from an empty one and creates nothing (a note says so). A kind
        that feeds a model and has no measured rate times the model on a short batch, for
        the estimate."""
        with self._reading() as note:
            desired, observed = self.observe(depth=depth)
            plan = diff(self.spec, self.spec_hash, desired, with_calibration(self.spec, desired, observed))
        return replace(plan, notes=(*plan.notes, note)) if note else plan

    @contextmanager
    def _reading(self) -> Iterator[str]:
        """For ``plan`` and ``status``: yields "" when the store exists; otherwise observe a
        scratch copy of the empty store apply would start from, so a mistyped path leaves no
        file (nor lock) behind, and yield a note saying so."""
        real = self.store
        if real.exists():
            yield ""
            return
        with tempfile.TemporaryDirectory(prefix="ragstate-scratch-") as folder:
            scratch = open_scratch(self.spec.store, Path(folder))
            scratch.description = real.description  # messages keep naming the store of the spec
            self._store = scratch
            try:
                yield f"the store {real.description} does not exist yet: apply creates it (nothing was created)"
            finally:
                scratch.close()
                self._store = real

    def apply(
        self,
        plan: Plan | None = None,
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
            plan: a saved plan; refused if a fresh plan would differ from it.
            allow_destructive: carry out deletions beyond ``reconcile.max_delete_share``.
            depth: how closely to observe when computing the plan (``plan.depth`` wins).
            progress: receives progress events.
            budget: stops the work early, at a batch boundary (items, seconds, or a
                stop request); the run is then ``partial``.
            run_id: the id to record the run under (default: a new one).
            daemon: what the daemon says about this run (cycle, trigger, wait), kept
                in the record.
            pipelines: limit the work to the kinds these pipelines read (a query's heal).

        Returns:
            The run record (also stored in ``runs``), status ``converged``,
            ``not_converged`` (the source changed while applying) or ``partial`` (the
            budget stopped it); ``quarantined`` counts the items left in quarantine
            (the CLI exits 4 when there are any).

        Raises:
            PreflightError: a start-up check (``doctor``'s cheap part) failed.
            StoreLocked: another process is writing the store (``reconcile.lock``).
            StalePlanError: the saved plan no longer matches the store and source.
            DestructiveRefused: the plan deletes too much and ``allow_destructive`` is off.
            RagstateError: anything else that stopped the run; committed batches stay.
        """
        started = time.time()
        record = RunRecord(
            run_id=run_id or new_run_id(), command=command, spec_hash=self.spec_hash, started_at=started, daemon=daemon
        )
        budget = budget or Budget()
        self.preflight()
        with (
            self.writer_lock(progress=progress, command=command, budget=budget) as lease,
            self.guard.recording(FaultLog()) as log,
        ):
            return self._apply(plan, record, lease, log, allow_destructive, depth, progress, budget, pipelines)

    def _apply(
        self,
        plan: Plan | None,
        record: RunRecord,
        lease: locks.WriterLease,
        log: FaultLog,
        allow_destructive: bool,
        depth: str,
        progress: Progress | None,
        budget: Budget,
        pipelines: tuple[str, ...] | None = None,
    ) -> RunRecord:
        t0 = time.perf_counter()
        safety = Safety(self.guard, fence=lease.fence)
        if plan is None and depth != "deep" and safety.read(self._audit_pending):
            depth = "deep"  # an audit found rows no apply rebuilt yet: observe as closely as it did
        desired, observed = safety.read(
            lambda: self.observe(depth=plan.depth if plan is not None else depth, desired=self.desired(pipelines))
        )
        observed = with_calibration(self.spec, desired, observed)
        fresh = diff(self.spec, self.spec_hash, desired, observed)
        for note in source_notes(self.spec, observed, blocked=bool(fresh.schema or fresh.source_schema)):
            logging.getLogger(__name__).warning("%s", note)  # files left out, an empty source: never silent
        if plan is not None and plan.fingerprint != fresh.fingerprint:
            raise StalePlanError("the store or source changed since this plan was computed; run `ragstate plan` again")
        command = record.command
        record.schema_repaired = [describe_applied(lease.migrated)] if lease.migrated else []
        lease.migrated = []
        if fresh.schema or fresh.source_schema:
            if fresh.schema:
                record.schema_repaired += safety.read(lambda: repair(self.store))
            source = self.source()
            if fresh.source_schema and isinstance(source, InPlaceSource):
                # Raises MappingError, before any run is recorded, when the table no
                # longer fits the mapping.
                record.schema_repaired += source.repair()
            desired, observed = safety.read(lambda: self.observe(depth=fresh.depth, desired=desired))
            observed = with_calibration(self.spec, desired, observed)
            fresh = diff(self.spec, self.spec_hash, desired, observed)
        record.drift = fresh.drift
        record.timings["plan_s"] = round(time.perf_counter() - t0, 4)
        if "seconds" in observed.source_timing:
            record.timings["source_observe_s"] = observed.source_timing["seconds"]
        summary = _plan_summary(fresh)

        def start() -> None:
            with self.store.session() as s:
                records.start(self.store, s, record.run_id, command, self.spec_hash, summary)

        safety.read(start)
        self._record_state(fresh, observed, desired)
        if fresh.destructive and not allow_destructive:
            record.status = REFUSED
            record.error = "; ".join(fresh.destructive_reasons)
            self._finish(record, log)
            deletions = sum(len(k.delete) for k in fresh.kinds)
            raise DestructiveRefused(
                "refusing destructive plan (use --allow-destructive): " + record.error,
                deletions=deletions,
                share=0.0,
                limit=self.spec.reconcile.max_delete_share,
            )
        documents = len({doc_id for k in fresh.kinds for doc_id in k.build_ids})
        limit = self.spec.reconcile.max_documents_per_run
        if limit is not None and documents > limit:
            record.status = REFUSED
            record.error = (
                f"the plan builds {documents} documents; reconcile.max_documents_per_run is {limit} "
                "(raise it, or grow the scope in steps with scope: {first: N})"
            )
            self._finish(record, log)
            raise RunTooLarge("refusing the run: " + record.error, documents=documents, limit=limit)
        max_cost, cost = self.spec.reconcile.max_cost, fresh.estimate.cost
        if max_cost is not None and cost is not None and cost > max_cost:
            record.status = REFUSED
            record.error = (
                f"the plan's embedding would cost ~{format_cost(cost)} ({fresh.estimate.tokens} tokens at the models' "
                f"price_per_million_tokens); reconcile.max_cost is {max_cost:g} (raise it, or grow the scope in steps)"
            )
            self._finish(record, log)
            raise CostLimitExceeded("refusing the run: " + record.error, cost=cost, limit=max_cost)
        try:
            apply_plan(
                fresh,
                ApplyContext(self.spec, self.store, self.source(), safety, progress or NullProgress(), budget),
                record,
            )
            t1 = time.perf_counter()
            if fresh.in_sync:  # nothing was to be done: the plan is what a new look would see
                after, remaining = observed, fresh
            else:
                _, after = safety.read(lambda: self.observe(depth="shallow", desired=desired))
                remaining = diff(self.spec, self.spec_hash, desired, after)
            record.timings["check_s"] = round(time.perf_counter() - t1, 4)
            record.quarantined = dict(remaining.quarantine.get("quarantined", {}))
            record.remaining = remaining.drift
            record.budget = budget.to_dict()
            record.status = CONVERGED if remaining.in_sync else PARTIAL if budget.stopped else NOT_CONVERGED
            if record.rejected:
                record.status = REJECTED
                record.error = (
                    "a new generation failed verification and was not switched in (the active one is untouched): "
                    + "; ".join(record.rejected)
                )
            elif budget.stopped and not remaining.in_sync:
                record.error = budget.describe() + "; the next run continues (left: " + _drift_words(remaining.drift)
                record.error += ")"
            elif not remaining.in_sync:
                record.error = "drift remains after apply (the source changed while applying): " + _drift_words(
                    remaining.drift
                )
        except KeyboardInterrupt:
            record.status, record.error, record.error_type = INTERRUPTED, "interrupted", "KeyboardInterrupt"
            self._finish(record, log)
            raise
        except BaseException as exc:
            record.status = FAILED
            record.error = redact(str(exc)) or type(exc).__name__
            record.error_type = type(exc).__name__
            record.error_class = log.stopped_by = classify(exc).family
            record.budget = budget.to_dict()
            self._finish(record, log)
            raise
        self._finish(record, log)
        self._record_state(remaining, after, desired)
        return record

    def verify(self) -> VerifyReport:
        """Deep audit: re-read the source, check every vector, re-embed a sample."""
        t0 = time.perf_counter()
        desired, observed = self.observe(depth="deep")
        plan = diff(self.spec, self.spec_hash, desired, observed)
        report = verify_report(plan, observed, desired)
        report.checked["seconds"] = round(time.perf_counter() - t0, 3)
        self._record_state(plan, observed, desired)
        return report

    def reconcile(
        self,
        *,
        allow_destructive: bool = False,
        progress: Progress | None = None,
        budget: Budget | None = None,
        run_id: str | None = None,
        daemon: dict[str, Any] | None = None,
        command: str = "reconcile",
    ) -> RunRecord:
        """Plan and apply deeply, then verify; one more pass if the source moved meanwhile.

        With a ``budget`` that stops the apply early, the run is ``partial`` and not
        verified (``budget``, ``run_id``, ``daemon`` and ``command`` as for ``apply``).
        """
        budget = budget or Budget()
        with self.writer_lock(progress=progress, command=command, budget=budget):
            return self._reconcile(allow_destructive, progress, budget, run_id, daemon, command)

    def _reconcile(
        self,
        allow_destructive: bool,
        progress: Progress | None,
        budget: Budget,
        run_id: str | None,
        daemon: dict[str, Any] | None,
        command: str,
    ) -> RunRecord:
        options: dict[str, Any] = dict(
            allow_destructive=allow_destructive, depth="deep", progress=progress, command=command, budget=budget
        )
        record = self.apply(run_id=run_id, daemon=daemon, **options)
        if record.status == PARTIAL:
            return record
        report = self.verify()
        if not report.in_sync and record.status != REJECTED:  # a rejected generation would be rejected again
            record = self.apply(daemon=daemon, **options)
            if record.status == PARTIAL:
                return record
            report = self.verify()
        record.verify = report.to_dict()
        if not report.in_sync and record.status != REJECTED:
            record.status = NOT_CONVERGED
            record.error = "drift remains after reconcile: " + _drift_words(report.drift)
        with self.store.session() as s:
            records.finish(self.store, s, record.run_id, record.status, record.counts(), record.timings, record.error)
        return record

    def duplicates(self) -> dict[str, list[tuple[str, ...]]]:
        """Groups of documents holding identical vectors of one model input, by kind (the
        same article in two formats): duplicates, not drift (``observe.duplicates``)."""
        desired, observed = self.observe(depth="shallow")
        return {} if observed.schema else duplicate_groups(self.spec, desired, self.store)

    def status(self) -> StatusReport:
        """Readiness of each pipeline, generations per kind, the last and any running run.

        Reads only: a store that does not exist yet is reported so, and not created.
        """
        with self._reading() as note:
            report = self._status()
        return replace(report, notes=[note]) if note else report

    def _status(self) -> StatusReport:
        desired, observed = self.observe(depth="shallow")
        plan = diff(self.spec, self.spec_hash, desired, observed)
        kinds: dict[str, KindStatus] = {}
        with self.store.session() as s:
            gens = ledger.generations(self.store, s) if not observed.schema else []
            counts = ledger.counts(s) if not observed.schema else {}
            items = ledger.item_counts(s) if not observed.schema else {}
            runs = records.recent(self.store, s, limit=20) if not observed.schema else []
        for k in plan.kinds:
            obs = observed.kinds[k.kind]
            target = obs.target.generation if obs.target else None
            active = [g for g in gens if g.kind == k.kind and g.generation == k.active_generation]
            kinds[k.kind] = KindStatus(
                # the active generation's own recipe (after a rollback, not the spec's)
                recipe_fp=active[0].recipe_fp if active else k.recipe_fp,
                spec_recipe_fp=desired.kind(k.kind).asked_fp,  # what the spec asks for, even while held
                active_generation=k.active_generation,
                target_generation=target,
                built=counts.get((k.kind, target), 0) if target is not None else 0,
                items=items.get((k.kind, target), 0) if target is not None else 0,
                note=desired.kind(k.kind).recipe.note,
                complete=completeness_of(k, obs, plan.scope_size),
                held=obs.held,
                in_scope=plan.scope_size,
                drift={c: n for c, n in k.drift.items() if n},
                generations=[
                    {
                        "generation": g.generation,
                        "state": g.state,
                        "recipe_fp": g.recipe_fp,
                        "documents": counts.get((g.kind, g.generation), 0),
                        "created_at": g.created_at,
                        "activated_at": g.activated_at,
                    }
                    for g in gens
                    if g.kind == k.kind
                ],
            )
        finished = [r for r in runs if r.status != "running"]
        stamp = time.time()
        running = [
            {
                "run_id": r.run_id,
                "command": r.command,
                "started_at": r.started_at,
                "progress": r.progress,
                "live": live_progress(r, stamp),
                "heartbeat_at": r.heartbeat_at,
                "host": r.host,
                "pid": r.pid,
                "alive": cond.process_alive(r),
            }
            for r in runs
            if r.status == "running"
        ]
        last = finished[0] if finished else None
        conditions = self._record_state(plan, observed, desired)
        with self.store.session() as s:
            daemon = records.daemon_state(self.store, s) if not observed.schema else None
        return StatusReport(
            quarantine=plan.quarantine,
            store=self.store.description,
            source=self.source().description,
            scope_size=plan.scope_size,
            pipelines=pipeline_readiness(plan, observed, desired, cond.audit_of(conditions)),
            kinds=kinds,
            schema=list(plan.schema),
            source_schema=list(plan.source_schema),
            last_run=(
                {
                    "run_id": last.run_id,
                    "command": last.command,
                    "status": last.status,
                    "started_at": last.started_at,
                    "finished_at": last.finished_at,
                    "error": last.error,
                }
                if last
                else None
            ),
            running=running,
            conditions=cond.as_dict(conditions),
            daemon=daemon,
            spec_hash=self.spec_hash,
            source_observe=dict(observed.source_timing),
        )

    # --- the daemon and the report ------------------------------------------------------

    def daemon(self, *, once: bool = False, metrics_port: int | None = None, allow_destructive: bool = False) -> int:
        """Reconcile on the spec's ``daemon`` schedule until SIGTERM/SIGINT (``reconcile.daemon``).

        Args:
            once: run one cycle and return.
            metrics_port: serve metrics and health here (overrides ``daemon.metrics_port``).
            allow_destructive: carry out destructive plans (else they are refused, and the
                kinds concerned are Stalled).

        Returns:
            The exit code (``Daemon.run``).

        Raises:
            DaemonRunning: another daemon runs on the store (``daemon.on_conflict: fail``).
        """
        from ragstate import __version__

        return Daemon(
            self, once=once, metrics_port=metrics_port, allow_destructive=allow_destructive, version=__version__
        ).run()

    def report(self, *, runs: int = 30) -> Report:
        """Status (with conditions) and the last ``runs`` runs, oldest first, for ``ragstate report``."""
        with self._reading() as note:
            status = self._status()
            with self.store.session() as s:
                rows = records.recent(self.store, s, limit=runs) if not status.schema else []
        status = replace(status, notes=[note]) if note else status
        return Report(status=status, runs=[RunPoint.from_row(r) for r in reversed(rows)], generated_at=time.time())

    # --- generations --------------------------------------------------------------------

    def history(self, *, kind: str | None = None, limit: int = 20) -> HistoryReport:
        """Every generation of each kind (or of ``kind``) and the ``limit`` most recent runs,
        with their recipes and outcomes. Reads only.

        Raises:
            SchemaError: the store's tables need a migration first (``apply`` does it).
        """
        return history_report(self.store, kind=kind, limit=limit)

    def rollback(self, kind: str, *, to: int | None = None) -> RunRecord:
        """Switch ``kind`` back to generation ``to`` (default: the one active before the
        current), together with the kinds built from it, in one transaction and without
        recomputing anything. The run is recorded (command ``rollback``).

        While the spec still asks for the recipe rolled back from, the kinds are held there:
        apply keeps them in sync with the source under the recipe rolled back to and never
        switches back; changing the spec (or rolling forward with ``to``) releases them.

        Holds the writer lock, like apply: a rollback never interleaves with a build.

        Raises:
            StoreLocked: another process is writing the store (``reconcile.lock``).
            RollbackError: nothing to roll back to, or the generations do not fit
                together; nothing was switched.
        """
        with self.writer_lock(command="rollback") as lease:  # migrates the store when it takes the lock
            return self._rollback(kind, to, Safety(self.guard, fence=lease.fence))

    def _rollback(self, kind: str, to: int | None, safety: Safety) -> RunRecord:
        desired = self.desired()
        record = RunRecord(run_id=new_run_id(), command="rollback", spec_hash=self.spec_hash, started_at=time.time())

        def start() -> set[str]:
            with self.store.session() as s:
                records.start(self.store, s, record.run_id, "rollback", self.spec_hash, {"kind": kind, "to": to})
                return {g.kind for g in ledger.generations(self.store, s)}

        kinds = safety.read(start)
        depends = {name: _depends_on(name) for name in kinds | {kind}}
        try:
            record.rollback = rollback_generations(
                self.store,
                depends,
                kind,
                to,
                desired_fps={d.name: d.recipe.fingerprint for d in desired.kinds},
                run_id=record.run_id,
                safety=safety,
            )
        except BaseException as exc:
            record.status, record.error, record.error_type = FAILED, redact(str(exc)), type(exc).__name__
            self._finish(record)
            raise
        for name, change in record.rollback["switched"].items():
            record.kinds[name] = KindCounts(generation=change["to"], switched=True)
        record.status = CONVERGED
        self._finish(record)
        return record

    # --- queries ----------------------------------------------------------------------

    def pipeline(self, name: str) -> Pipeline:
        """The query side of the enabled pipeline ``name``: ``.retrieve(query, k)``.

        Raises:
            QueryError: the pipeline is not enabled in the spec.
        """
        return Pipeline(
            name,
            spec=self.spec,
            spec_hash=self.spec_hash,
            store=self.store,
            source=self.source,
            heal=lambda pipelines: self.apply(command="heal", pipelines=pipelines),
        )

    def query(self, pipeline: str, text: str, k: int | None = None, *, readiness: str | None = None) -> Retrieval:
        """``pipeline(pipeline).retrieve(text, k)``; see ``Pipeline.retrieve``."""
        return self.pipeline(pipeline).retrieve(text, k, readiness_mode=readiness)

    # --- in-place sources --------------------------------------------------------------

    def map_table(
        self, mapping: TableSourceSpec | Mapping[str, Any] | None = None, *, dry_run: bool = False
    ) -> MappingReport:
        """Check a user's table against a mapping; if it fits, create its view and record it.

        Args:
            mapping: the table source (``table``, ``id``, ``text``, ``title``, ``abstract``,
                ``metadata``, ``where``, ``name``, as in the spec); default: the spec's source.
            dry_run: check only; create nothing.

        Returns:
            The report: each mapped column (direct, converted, missing), id counts,
            problems (none when compatible), whether the view was created, and the
            spec's ``source`` section for this mapping. Nothing is created when it has
            problems.

        Raises:
            SpecError: a field of the mapping is invalid (names it).
        """
        return map_table(self.store, self._table_source(mapping), create=not dry_run)

    def check_source(self, name: str | None = None) -> MappingReport:
        """Re-check a table mapping against the table as it is now; creates nothing.

        Args:
            name: a mapping recorded in the store (by ``map-table``); default: the spec's source.

        Raises:
            SpecError: no name given and the spec's source is not a table.
            MappingError: no mapping of that name is recorded.
        """
        if name is not None:
            return check_recorded(self.store, name)
        return map_table(self.store, self._table_source(None), create=False)

    def _table_source(self, mapping: TableSourceSpec | Mapping[str, Any] | None) -> TableSourceSpec:
        if mapping is not None:
            return table_source_from(mapping)
        if isinstance(self.spec.source, TableSourceSpec):
            return self.spec.source
        raise SpecError("the spec's source is a folder, not a table: give the table to map (or a mapping's name)")

    # --- quarantine -------------------------------------------------------------------

    def quarantine_list(self) -> list[Entry]:
        """Every item in quarantine (states quarantined, retry and dropped), by kind and item."""
        with self.store.session() as s:
            if self.store.columns(s, QUARANTINE.name) is None:
                return []
            return quarantine_store.entries(s)

    def quarantine_retry(
        self,
        items: Sequence[str] = (),
        *,
        all_items: bool = False,
        allow_destructive: bool = False,
        progress: Progress | None = None,
    ) -> RunRecord:
        """Try quarantined items again now: mark them ``retry``, then apply.

        Args:
            items: document ids, quarantine items or source paths (see ``quarantine_list``).
            all_items: every item in state ``quarantined`` instead.

        Returns:
            The run record of the apply; items that fail again are back in quarantine.

        Raises:
            QuarantineNotFound: an item named is not in quarantine, or none was named.
        """
        with self.writer_lock(progress=progress, command="quarantine retry"):
            chosen = self._select(items, all_items, "retry")
            with self.store.transaction() as s:
                quarantine_store.set_state(s, [e.key for e in chosen], RETRY)
                # A file that could not be read is read again only if its stat is forgotten.
                quarantine_store.forget_files(s, [e.path for e in chosen if e.kind == SOURCE and e.path])
            return self.apply(allow_destructive=allow_destructive, progress=progress, command="quarantine retry")

    def quarantine_drop(self, items: Sequence[str] = (), *, all_items: bool = False) -> list[Entry]:
        """Leave items out on purpose: state ``dropped``, no longer counted (apply exits 0).

        A dropped item stays unbuilt until its content changes (then it is tried again)
        or ``quarantine_retry`` names it.

        Raises:
            QuarantineNotFound: an item named is not in quarantine, or none was named.
        """
        with self.writer_lock(command="quarantine drop"):
            chosen = self._select(items, all_items, "drop")
            with self.store.transaction() as s:
                quarantine_store.set_state(s, [e.key for e in chosen], DROPPED)
        return [replace(e, state=DROPPED) for e in chosen]

    def _select(self, items: Sequence[str], all_items: bool, verb: str) -> list[Entry]:
        entries = self.quarantine_list()
        if all_items:
            return [e for e in entries if e.state in (QUARANTINED, RETRY)]
        if not items:
            raise QuarantineNotFound(
                f"name the items to {verb} (see `ragstate quarantine list`) or pass --all", items=[]
            )
        chosen = [e for e in entries if {e.item, e.doc_id, e.path} & set(items)]
        unknown = sorted(i for i in items if not any(i in (e.item, e.doc_id, e.path) for e in entries))
        if unknown:
            raise QuarantineNotFound(
                "not in quarantine: " + ", ".join(unknown) + " (see `ragstate quarantine list`)", items=unknown
            )
        return chosen

    # --- start-up checks ------------------------------------------------------------------

    def doctor(self, *, cheap: bool = False) -> DoctorReport:
        """Check the store, models and machine against the spec; changes nothing.

        Opens its own connection without preparing the store, so a missing extension
        or right is reported (with its fix) rather than raised.
        """
        return doctor(self.spec, store=self._store, cheap=cheap)

    def preflight(self) -> None:
        """The cheap checks of ``doctor``, once per project (apply and the daemon start
        with them).

        Raises:
            PreflightError: a check failed; the message names each one and its fix.
        """
        if self._preflight_done:
            return
        report = doctor(self.spec, store=self.store, cheap=True)
        if not report.ok:
            lines = [f"{c.name}: {c.detail}; fix: {c.fix}" for c in report.failures]
            raise PreflightError(
                "ragstate cannot work here yet (`ragstate doctor` shows every check):\n  - " + "\n  - ".join(lines),
                checks=[c.name for c in report.failures],
            )
        self._preflight_done = True

    # --- the embedding cache ------------------------------------------------------------

    def cache_status(self) -> CacheReport:
        """How big the embedding cache is, per embedding recipe, and how recent runs used it."""
        with self.store.session() as s:
            if self.store.columns(s, EMBEDDING_CACHE.name) is None:  # never migrated: empty
                return CacheReport(enabled=self.spec.cache.enabled, max_bytes=int(self.spec.cache.max_mb * 2**20))
        return self._cache_report()

    def evict_cache(self, mode: str = "limit") -> CacheReport:
        """Evict embedding-cache entries (holding the writer lock); report what is left.

        Args:
            mode: ``limit``: entries no artifact references, least recently used first,
                until the cache fits ``cache.max_mb`` (what every apply does);
                ``unreferenced``: every entry no artifact references; ``everything``:
                every entry (the next builds embed their texts again).

        Raises:
            SpecError: an unknown mode.
            StoreLocked: another process is writing the store (``reconcile.lock``).
        """
        if mode not in ("limit", "unreferenced", "everything"):
            raise SpecError(f"unknown eviction mode {mode!r}: use limit, unreferenced or everything")
        with self.writer_lock(command="cache evict"):
            if mode == "everything":
                with self.store.transaction() as s:
                    before = embedding_cache.stats(s)
                    evicted, freed = embedding_cache.clear(s), before.bytes
            else:
                evicted, freed = cache_evict(self.store, self.spec.cache.max_mb, everything=mode == "unreferenced")
            return self._cache_report(evicted, freed)

    def _cache_report(self, evicted: int = 0, freed: int = 0) -> CacheReport:
        with self.store.session() as s:
            stats = embedding_cache.stats(s)
            unreferenced = embedding_cache.unreferenced(s, cache_references(self.store, s))
            runs = records.recent(self.store, s, limit=10)
        return CacheReport(
            enabled=self.spec.cache.enabled,
            entries=stats.entries,
            bytes=stats.bytes,
            max_bytes=int(self.spec.cache.max_mb * 2**20),
            per_recipe={fp: {"entries": n, "bytes": b} for fp, (n, b) in stats.per_recipe.items()},
            unreferenced=unreferenced,
            evicted=evicted,
            evicted_bytes=freed,
            recent_runs=[
                {
                    "run_id": r.run_id,
                    "command": r.command,
                    **{k: (r.counts or {}).get("cache", {}).get(k, 0) for k in ("hits", "misses", "evicted")},
                }
                for r in runs
                if r.status != "running"
            ],
        )

    # --- internals --------------------------------------------------------------------

    def _finish(self, record: RunRecord, fault_log: FaultLog | None = None) -> None:
        record.finished_at = time.time()
        record.timings["total_s"] = round(record.finished_at - record.started_at, 4)
        if fault_log is not None:
            record.faults = fault_log.to_dict()

        def write() -> None:
            with self.store.session() as s:
                records.finish(
                    self.store, s, record.run_id, record.status, record.counts(), record.timings, record.error
                )

        try:
            self.guard.call("database", write)
        except RagstateError as exc:  # the store may be what failed; the run's own error matters more
            log.warning("could not record the end of run %s: %s", record.run_id, exc)

    def _audit_pending(self) -> bool:
        """Whether the recorded conditions hold an audit's finding no run has rebuilt yet."""
        with self.store.session() as s:
            return cond.audited(cond.from_rows(conditions_store.read(self.store, s)))

    def _record_state(self, plan: Plan, observed: Observed, desired: Desired) -> cond.Conditions:
        """Evaluate the conditions of every pipeline and kind, record them (with the
        pipelines' readiness), and return them. Transition times carry over from the
        recorded ones; a store whose tables need repair records nothing."""
        with self.store.session() as s:
            runs = records.recent(self.store, s, limit=20) if not plan.schema else []
            previous = cond.from_rows(conditions_store.read(self.store, s)) if not plan.schema else {}
        audit = cond.audit_findings(plan, previous, runs)
        current = cond.evaluate(plan, observed, desired, runs, spec_hash=self.spec_hash, now=time.time(), audit=audit)
        current = cond.merge(previous, current)
        if plan.schema:
            return current
        readiness = pipeline_readiness(plan, observed, desired, audit)
        states = {name: (p.ready, p.reasons) for name, p in readiness.items()}
        with self.store.session() as s:
            records.set_pipeline_states(self.store, s, states, self.spec_hash)
            conditions_store.replace_all(self.store, s, cond.to_rows(current))
        return current


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


def _depends_on(kind: str) -> tuple[str, ...]:
    try:
        return get_kind(kind).depends_on
    except RagstateError:  # a plugin kind no longer installed: nothing is built from it here
        return ()


def _drift_words(drift: dict[str, dict[str, int]]) -> str:
    return "; ".join(f"{kind}: " + ", ".join(f"{n} {c}" for c, n in classes.items()) for kind, classes in drift.items())
