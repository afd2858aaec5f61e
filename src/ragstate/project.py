"""The façade: a ``Project`` is a spec bound to its store and source.

Each method composes the stages (observe → diff → apply → verify) and nothing more;
the CLI calls exactly one of them per command. The run itself is ``reconcile.run``.

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
``context()``         the run context (spec, store, source, guard) the stages work over
====================  ===================================================================

Every method that writes artifacts holds the writer lock for its whole duration, so two
processes never apply to one store at once (``reconcile.lock``: the second waits or
fails), and retries its store work through ``self.guard`` (``faults.retry``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ragstate.apply.budget import Budget
from ragstate.apply.progress import Progress
from ragstate.apply.record import RunRecord
from ragstate.artifacts.desired import Desired
from ragstate.errors import SpecError
from ragstate.faults import Guard
from ragstate.observe.duplicates import duplicate_groups
from ragstate.observe.observe import Observed
from ragstate.pipelines.base import Retrieval
from ragstate.pipelines.query import Pipeline
from ragstate.plan.model import Plan
from ragstate.reconcile import cache, quarantine, run
from ragstate.reconcile import status as status_report
from ragstate.reconcile.daemon import Daemon
from ragstate.reconcile.doctor import DoctorReport, doctor
from ragstate.reconcile.history import HistoryReport, history_report
from ragstate.reconcile.reports import CacheReport, Report, StatusReport, VerifyReport
from ragstate.reconcile.rollback import rollback
from ragstate.reconcile.run import Held, RunContext
from ragstate.sources import Source
from ragstate.sources.table import MappingReport, check_recorded, map_table
from ragstate.spec import Spec, TableSourceSpec, load_spec, spec_hash, table_source_from
from ragstate.stores import Store, locks, open_store
from ragstate.stores.quarantine import Entry
from ragstate.version import __version__


class Project:
    """One spec, its store and its source. Open it, call methods, close it."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.spec_hash = spec_hash(spec)
        self._store: Store | None = None
        #: retries and circuit breakers; kept for the project's life (a daemon's cycles share them)
        self.guard = Guard(spec.reconcile.retry, spec.reconcile.breaker)
        #: the writer lease while held, and whether the start-up checks passed (shared by contexts)
        self._held = Held()
        self._context: RunContext | None = None
        #: the spec file and profile the spec was loaded from (``from_file``), for ``reload``
        self.origin: tuple[Path, str | None] | None = None
        #: when the project took its current spec (``reload`` moves it when the file changed)
        self.spec_since = time.time()
        #: live mode: the source paths a change notification named; while set, observations
        #: look at them alone (``observe.narrow``; the daemon sets it for one cycle)
        self.hinted_paths: frozenset[str] | None = None

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
        self._held.preflight_done = False
        self._context = None
        return True

    # --- parts ------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.spec.store)
        return self._store

    def context(self) -> RunContext:
        """What a run works over (``reconcile.run``): built once per spec and store, narrowed
        to ``hinted_paths`` while the daemon's live mode sets them."""
        if self._context is None or self._context.store is not self.store:
            self._context = RunContext(self.spec, self.spec_hash, self.store, self.guard, self._held)
        if self.hinted_paths is not None:
            return replace(self._context, hinted_paths=self.hinted_paths)
        return self._context

    def source(self) -> Source:
        return self.context().source()

    def desired(self, pipelines: tuple[str, ...] | None = None) -> Desired:
        """The desired state of every enabled pipeline, or of ``pipelines`` alone."""
        return self.context().desired(pipelines)

    @property
    def _lease(self) -> locks.WriterLease | None:
        return self._held.lease

    def writer_lock(
        self, *, progress: Progress | None = None, command: str = "apply", budget: Budget | None = None
    ) -> AbstractContextManager[locks.WriterLease]:
        """Hold the store's single-writer lock for the block, re-entrant within this project
        (``reconcile.run.writer_lock``: waits or fails as ``reconcile.lock`` says)."""
        return run.writer_lock(self.context(), progress=progress, command=command, budget=budget)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
            self._context = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- stages -----------------------------------------------------------------------

    def observe(self, *, depth: str = "shallow", desired: Desired | None = None) -> tuple[Desired, Observed]:
        return self.context().observe(depth=depth, desired=desired)

    def plan(self, *, depth: str = "shallow") -> Plan:
        """What drifted and what ``apply`` would do. Reads only: against a store that does
        not exist yet it plans from an empty one and creates nothing (a note says so). A kind
        that feeds a model and has no measured rate times the model on a short batch, for
        the estimate."""
        return run.plan(self.context(), depth=depth)

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

        Arguments, the record returned (its status: ``reconcile.run``'s table of outcomes)
        and the errors raised: ``reconcile.run.apply``.
        """
        options = dict(progress=progress, command=command, budget=budget, run_id=run_id, daemon=daemon)
        return run.apply(
            self.context(), plan, allow_destructive=allow_destructive, depth=depth, pipelines=pipelines, **options
        )

    def verify(self) -> VerifyReport:
        """Deep audit: re-read the source, check every vector, re-embed a sample."""
        return run.verify(self.context())

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
        options = dict(progress=progress, budget=budget, run_id=run_id, daemon=daemon, command=command)
        return run.reconcile(self.context(), allow_destructive=allow_destructive, **options)

    def duplicates(self) -> dict[str, list[tuple[str, ...]]]:
        """Groups of documents holding identical vectors of one model input, by kind (the
        same article in two formats): duplicates, not drift (``observe.duplicates``)."""
        desired, observed = self.observe(depth="shallow")
        return {} if observed.schema else duplicate_groups(self.spec, desired, self.store)

    def status(self) -> StatusReport:
        """Readiness of each pipeline, generations per kind, the last and any running run.

        Reads only: a store that does not exist yet is reported so, and not created.
        """
        return status_report.status(self.context())

    # --- the daemon and the report ------------------------------------------------------

    def daemon(
        self,
        *,
        once: bool = False,
        metrics_port: int | None = None,
        allow_destructive: bool = False,
        live: bool | None = None,
    ) -> int:
        """Reconcile on the spec's ``daemon`` schedule until SIGTERM/SIGINT: ``once`` runs one
        cycle; ``live`` reacts to the source's change notifications (None: ``daemon.live``).
        The other arguments, the exit code and the errors: ``reconcile.daemon.Daemon``."""
        options = dict(once=once, metrics_port=metrics_port, allow_destructive=allow_destructive, live=live)
        return Daemon(self, version=__version__, **options).run()

    def report(self, *, runs: int = 30) -> Report:
        """Status (with conditions) and the last ``runs`` runs, oldest first, for ``ragstate report``."""
        return status_report.report(self.context(), runs=runs)

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
        current), with the kinds built from it, holding the writer lock; recorded as a run.
        See ``reconcile.rollback.rollback``."""
        return rollback(self.context(), kind, to)

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
        return quarantine.entries(self.context())

    def quarantine_retry(
        self,
        items: Sequence[str] = (),
        *,
        all_items: bool = False,
        allow_destructive: bool = False,
        progress: Progress | None = None,
    ) -> RunRecord:
        """Try quarantined items again now: mark them ``retry``, then apply; the run
        record of that apply (arguments and errors: ``reconcile.quarantine.retry``)."""
        options = dict(all_items=all_items, allow_destructive=allow_destructive, progress=progress)
        return quarantine.retry(self.context(), items, **options)

    def quarantine_drop(self, items: Sequence[str] = (), *, all_items: bool = False) -> list[Entry]:
        """Leave items out on purpose: state ``dropped``, no longer counted (apply exits 0).

        A dropped item stays unbuilt until its content changes (then it is tried again)
        or ``quarantine_retry`` names it.

        Raises:
            QuarantineNotFound: an item named is not in quarantine, or none was named.
        """
        return quarantine.drop(self.context(), items, all_items=all_items)

    # --- start-up checks ------------------------------------------------------------------

    def doctor(self, *, cheap: bool = False) -> DoctorReport:
        """Check the store, models and machine against the spec; changes nothing.

        Opens its own connection without preparing the store, so a missing extension
        or right is reported (with its fix) rather than raised.
        """
        return doctor(self.spec, store=self._store, cheap=cheap)

    def preflight(self) -> None:
        """The cheap checks of ``doctor``, once per spec (apply and the daemon start with
        them); raises ``PreflightError`` naming each failed check and its fix."""
        run.preflight(self.context())

    # --- the embedding cache ------------------------------------------------------------

    def cache_status(self) -> CacheReport:
        """How big the embedding cache is, per embedding recipe, and how recent runs used it."""
        return cache.status(self.context())

    def evict_cache(self, mode: str = "limit") -> CacheReport:
        """Evict embedding-cache entries (holding the writer lock); report what is left.
        ``mode``: ``limit`` (what every apply does), ``unreferenced`` or ``everything``
        (``reconcile.cache.evict`` says what each evicts and what it raises)."""
        return cache.evict(self.context(), mode)
