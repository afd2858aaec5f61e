"""The façade: a ``Project`` is a spec bound to its store and source.

Each method composes the stages (observe → diff → apply → verify) and nothing more;
the CLI calls exactly one of them per command.

====================  ===================================================================
``plan()``            what drifted and what applying would do (read-only)
``apply(plan)``       carry out a plan (or a fresh one), then check convergence
``verify()``          deep audit; remaining drift must be zero
``reconcile()``       plan, apply, verify: the main job
``status()``          readiness of each pipeline, generations, last and running runs
``map_table(...)``    check a user's table against a mapping; if it fits, create its view
``check_source()``    re-check the spec's (or a recorded) table mapping
====================  ===================================================================
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ragstate.apply.apply import apply_plan
from ragstate.apply.progress import Progress
from ragstate.apply.record import CONVERGED, FAILED, INTERRUPTED, NOT_CONVERGED, REFUSED, RunRecord
from ragstate.errors import DestructiveRefused, RagstateError, SpecError, StalePlanError
from ragstate.observe.observe import Observed, observe
from ragstate.plan.desired import Desired, desired_state
from ragstate.plan.diff import diff
from ragstate.plan.model import Plan
from ragstate.reconcile.reports import (
    KindStatus,
    StatusReport,
    VerifyReport,
    completeness_of,
    pipeline_readiness,
    verify_report,
)
from ragstate.redact import redact
from ragstate.sources import InPlaceSource, Source, open_source
from ragstate.sources.table import MappingReport, check_recorded, map_table
from ragstate.spec import Spec, TableSourceSpec, load_spec, spec_hash, table_source_from
from ragstate.stores import Store, ledger, open_store, records
from ragstate.stores.migrations import repair

log = logging.getLogger(__name__)


def new_run_id() -> str:
    """Sortable and unique: UTC time, then random hex."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class Project:
    """One spec, its store and its source. Open it, call methods, close it."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.spec_hash = spec_hash(spec)
        self._store: Store | None = None

    @classmethod
    def from_file(cls, path: str | Path, *, profile: str | None = None) -> Project:
        """Load the spec at ``path`` (see ``ragstate.spec.load_spec``)."""
        return cls(load_spec(path, profile=profile))

    # --- parts ------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.spec.store)
        return self._store

    def source(self) -> Source:
        return open_source(self.spec, self.store)

    def desired(self) -> Desired:
        return desired_state(self.spec)

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
        desired = desired or self.desired()
        return desired, observe(self.spec, desired, self.store, self.source(), depth=depth)

    def plan(self, *, depth: str = "shallow") -> Plan:
        """What drifted and what ``apply`` would do. Reads only."""
        desired, observed = self.observe(depth=depth)
        return diff(self.spec, self.spec_hash, desired, observed)

    def apply(
        self,
        plan: Plan | None = None,
        *,
        allow_destructive: bool = False,
        depth: str = "audit",
        progress: Progress | None = None,
        command: str = "apply",
    ) -> RunRecord:
        """Carry out ``plan``, or a plan computed now, and check that the store converged.

        Args:
            plan: a saved plan; refused if a fresh plan would differ from it.
            allow_destructive: carry out deletions beyond ``reconcile.max_delete_share``.
            depth: how closely to observe when computing the plan (``plan.depth`` wins).
            progress: receives progress events.

        Returns:
            The run record (also stored in ``runs``), status ``converged`` or
            ``not_converged`` (the source changed while applying).

        Raises:
            StalePlanError: the saved plan no longer matches the store and source.
            DestructiveRefused: the plan deletes too much and ``allow_destructive`` is off.
            RagstateError: anything else that stopped the run; committed batches stay.
        """
        started = time.time()
        t0 = time.perf_counter()
        desired, observed = self.observe(depth=plan.depth if plan is not None else depth)
        fresh = diff(self.spec, self.spec_hash, desired, observed)
        if plan is not None and plan.fingerprint != fresh.fingerprint:
            raise StalePlanError("the store or source changed since this plan was computed; run `ragstate plan` again")
        record = RunRecord(run_id=new_run_id(), command=command, spec_hash=self.spec_hash, started_at=started)
        if fresh.schema or fresh.source_schema:
            record.schema_repaired = repair(self.store) if fresh.schema else []
            source = self.source()
            if fresh.source_schema and isinstance(source, InPlaceSource):
                # Raises MappingError, before any run is recorded, when the table no
                # longer fits the mapping.
                record.schema_repaired += source.repair()
            desired, observed = self.observe(depth=fresh.depth, desired=desired)
            fresh = diff(self.spec, self.spec_hash, desired, observed)
        record.drift = fresh.drift
        record.timings["plan_s"] = round(time.perf_counter() - t0, 4)
        with self.store.session() as s:
            records.start(self.store, s, record.run_id, command, self.spec_hash, _plan_summary(fresh))
        if fresh.destructive and not allow_destructive:
            record.status = REFUSED
            record.error = "; ".join(fresh.destructive_reasons)
            self._finish(record)
            deletions = sum(len(k.delete) for k in fresh.kinds)
            raise DestructiveRefused(
                "refusing destructive plan (use --allow-destructive): " + record.error,
                deletions=deletions,
                share=0.0,
                limit=self.spec.reconcile.max_delete_share,
            )
        try:
            apply_plan(
                fresh,
                observed,
                spec=self.spec,
                desired=desired,
                store=self.store,
                source=self.source(),
                record=record,
                progress=progress,
            )
            t1 = time.perf_counter()
            _, after = self.observe(depth="shallow", desired=desired)
            remaining = diff(self.spec, self.spec_hash, desired, after)
            record.timings["check_s"] = round(time.perf_counter() - t1, 4)
            record.status = CONVERGED if remaining.in_sync else NOT_CONVERGED
            if not remaining.in_sync:
                record.error = "drift remains after apply (the source changed while applying): " + _drift_words(
                    remaining.drift
                )
        except KeyboardInterrupt:
            record.status, record.error, record.error_type = INTERRUPTED, "interrupted", "KeyboardInterrupt"
            self._finish(record)
            raise
        except BaseException as exc:
            record.status = FAILED
            record.error = redact(str(exc)) or type(exc).__name__
            record.error_type = type(exc).__name__
            self._finish(record)
            raise
        self._finish(record)
        return record

    def verify(self) -> VerifyReport:
        """Deep audit: re-read the source, check every vector, re-embed a sample."""
        t0 = time.perf_counter()
        desired, observed = self.observe(depth="deep")
        plan = diff(self.spec, self.spec_hash, desired, observed)
        report = verify_report(plan, observed, desired)
        report.checked["seconds"] = round(time.perf_counter() - t0, 3)
        self._record_readiness(plan, observed, desired)
        return report

    def reconcile(self, *, allow_destructive: bool = False, progress: Progress | None = None) -> RunRecord:
        """Plan and apply deeply, then verify; one more pass if the source moved meanwhile."""
        record = self.apply(allow_destructive=allow_destructive, depth="deep", progress=progress, command="reconcile")
        report = self.verify()
        if not report.in_sync:
            record = self.apply(
                allow_destructive=allow_destructive, depth="deep", progress=progress, command="reconcile"
            )
            report = self.verify()
        record.verify = report.to_dict()
        if not report.in_sync:
            record.status = NOT_CONVERGED
            record.error = "drift remains after reconcile: " + _drift_words(report.drift)
        with self.store.session() as s:
            records.finish(self.store, s, record.run_id, record.status, record.counts(), record.timings, record.error)
        return record

    def status(self) -> StatusReport:
        """Readiness of each pipeline, generations per kind, the last and any running run."""
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
            kinds[k.kind] = KindStatus(
                recipe_fp=k.recipe_fp,
                active_generation=k.active_generation,
                target_generation=target,
                built=counts.get((k.kind, target), 0) if target is not None else 0,
                items=items.get((k.kind, target), 0) if target is not None else 0,
                note=desired.kind(k.kind).recipe.note,
                complete=completeness_of(k, obs, plan.scope_size),
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
        running = [
            {
                "run_id": r.run_id,
                "command": r.command,
                "started_at": r.started_at,
                "progress": r.progress,
                "heartbeat_at": r.heartbeat_at,
                "host": r.host,
                "pid": r.pid,
            }
            for r in runs
            if r.status == "running"
        ]
        last = finished[0] if finished else None
        self._record_readiness(plan, observed, desired)
        return StatusReport(
            store=self.store.description,
            source=self.source().description,
            scope_size=plan.scope_size,
            pipelines=pipeline_readiness(plan, observed, desired),
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
        )

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

    # --- internals --------------------------------------------------------------------

    def _finish(self, record: RunRecord) -> None:
        record.finished_at = time.time()
        record.timings["total_s"] = round(record.finished_at - record.started_at, 4)
        try:
            with self.store.session() as s:
                records.finish(
                    self.store, s, record.run_id, record.status, record.counts(), record.timings, record.error
                )
        except RagstateError as exc:  # the store may be what failed; the run's own error matters more
            log.warning("could not record the end of run %s: %s", record.run_id, exc)

    def _record_readiness(self, plan: Plan, observed: Observed, desired: Desired) -> None:
        if plan.schema:
            return
        states = {name: (p.ready, p.reasons) for name, p in pipeline_readiness(plan, observed, desired).items()}
        with self.store.session() as s:
            records.set_pipeline_states(self.store, s, states, self.spec_hash)


def _plan_summary(plan: Plan) -> dict[str, Any]:
    """What a run row keeps of its plan: counts and estimate, not every document id."""
    return {
        "drift": plan.drift,
        "estimate": asdict(plan.estimate),
        "destructive": plan.destructive,
        "fingerprint": plan.fingerprint,
        "depth": plan.depth,
        "scope_size": plan.scope_size,
    }


def _drift_words(drift: dict[str, dict[str, int]]) -> str:
    return "; ".join(f"{kind}: " + ", ".join(f"{n} {c}" for c, n in classes.items()) for kind, classes in drift.items())
